"""The one place errors become HTTP answers: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import compile_path

from camvault.errors import CamvaultError, InsufficientStorage, StorageError, Unavailable
from camvault.store.failures import (
    RETRY_AFTER_SECONDS,
    Failure,
    database_failure,
    describe,
    is_disk_full,
    outcome_unknown,
)

log = logging.getLogger("camvault.api")
E = TypeVar("E", bound=Exception)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    416: "range_not_satisfiable",
    429: "rate_limited",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The shape of every error answer."""

    error: ErrorDetail


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _allowed_methods(request: Request, allow: str) -> str:
    """Every method the requested path answers. Starlette's 405 names only the methods of
    the first route that matched the path, but one path often has several routes (GET and
    DELETE of a file), and RFC 9110 wants them all in ``Allow``: add the methods the API
    document lists for the path."""
    methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        if compile_path(template)[0].match(request.scope["path"]):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _expect(exc: Exception, kind: type[E]) -> E:
    # Starlette types handlers as taking any Exception; each is registered for one kind.
    if not isinstance(exc, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(exc).__name__}") from exc
    return exc


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type the app can raise to the one error shape."""

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        exc = _expect(exc, CamvaultError)
        if isinstance(exc, StorageError) and is_disk_full(exc):
            return disk_full(request, exc)
        if isinstance(exc, StorageError):
            # The detail names paths and commits on the server: the log gets it, not the client.
            log.error("storage error on %s %s: %s", request.method, request.url.path, exc.message)
            return error_response(
                exc.status, exc.code, "the vault could not store this change; nothing was saved"
            )
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def on_disconnect(request: Request, _exc: Exception) -> JSONResponse:
        # The client hung up mid-upload (e.g. "Cancel upload"): nothing to report to anyone.
        log.debug("client disconnected during %s %s", request.method, request.url.path)
        return error_response(400, "client_disconnected", "the client disconnected")

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        exc = _expect(exc, RequestValidationError)
        return error_response(400, "bad_request", _describe_validation(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        exc = _expect(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
        return error_response(exc.status_code, code, message, headers)

    def disk_full(request: Request, detail: object) -> JSONResponse:
        # Whatever was written is content-addressed or rolled back: nothing half-saved.
        log.error("disk full on %s %s: %s", request.method, request.url.path, detail)
        error = InsufficientStorage("the server's disk is full; nothing was saved")
        return error_response(error.status, error.code, error.message)

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        exc = _expect(exc, SQLAlchemyError)
        failure = database_failure(exc)
        if failure is None:
            return await on_unexpected(request, exc)
        # Never str(exc): it carries the SQL, its parameters (tokens) and maybe the URL.
        what = describe(exc, request.app.state.camvault.db.url)
        if failure is Failure.FULL:
            return disk_full(request, what)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, what)
        if outcome_unknown(exc):
            # The connection was lost after git took the change: it may be saved.
            error = Unavailable(
                "the database connection was lost while saving: the change may have been "
                "saved; reload and check before you retry"
            )
        else:
            error = Unavailable("the database is busy or unreachable; nothing was changed, retry")
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(error.status, error.code, error.message, headers)

    async def on_os_error(request: Request, exc: Exception) -> JSONResponse:
        if is_disk_full(exc):
            return disk_full(request, exc)
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback for the operator; the client gets no internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal server error; see the server log")

    app.add_exception_handler(CamvaultError, on_domain)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(SQLAlchemyError, on_database)
    app.add_exception_handler(OSError, on_os_error)
    app.add_exception_handler(Exception, on_unexpected)


def responses(
    *statuses: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses an endpoint can answer, 503
    always (``descriptions`` overrides the generic text where a route means something
    narrower)."""
    generic = {
        400: "Invalid input (bad_request, invalid_name, invalid_type, bad_content, empty)",
        401: "Not authenticated (unauthorized)",
        403: "Not allowed (forbidden), or a cross-site cookie request (csrf)",
        404: "No such file or version (not_found)",
        409: "Conflict (exists, locked, not_lock_holder)",
        413: "Body larger than the limit (too_large): uploads by setting, JSON bodies 1 MiB",
        416: "Range not satisfiable",
        429: "Too many attempts (rate_limited); see Retry-After",
        500: "Storage failure (storage_error) or internal error",
        503: "The database is busy or unreachable for a moment (unavailable); nothing was "
        "changed: retry after Retry-After seconds",
        507: "The server's disk is full (insufficient_storage); nothing was saved",
    }
    described = {**generic, **(descriptions or {})}
    # Every endpoint reads or writes the database, so every one may answer 503.
    return {s: {"model": ErrorBody, "description": described[s]} for s in (*statuses, 503)}
