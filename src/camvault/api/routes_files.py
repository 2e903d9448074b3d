"""/api/files: the vault's list, content, versions and the lock/version operations."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from camvault.api.errors import responses
from camvault.api.schemas import (
    BreakLockIn,
    CheckoutIn,
    FileList,
    FileRecord,
    LinkIn,
    RevertIn,
    UnlockRequestIn,
    UnlockRequestOut,
    VersionOut,
    multipart_body,
)
from camvault.api.security import AdminUser, CurrentUser, get_camvault
from camvault.errors import BadRequest, RangeNotSatisfiable, TooLarge
from camvault.services.vault import VaultService

router = APIRouter(prefix="/api/files", tags=["files"])
links = APIRouter(prefix="/api/links", tags=["files"])

# Multipart framing (boundaries, part headers, small fields) on top of the file itself.
MULTIPART_OVERHEAD = 256 * 1024


def _vault(request: Request) -> VaultService:
    return get_camvault(request).vault


def check_range(header: str | None, size: int) -> None:
    """Refuse a malformed or unsatisfiable Range in the JSON error shape, before the file
    response would answer it in plain text."""
    if header is None:
        return
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise BadRequest("the Range header must look like 'bytes=START-END'")
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if not dash or not (first + last) or not all(p.isdigit() for p in (first, last) if p):
            raise BadRequest("the Range header must look like 'bytes=START-END'")
        if first and last and int(first) > int(last):
            raise BadRequest("a Range must not end before it starts")
        if (first and int(first) >= size) or (not first and int(last) == 0):
            raise RangeNotSatisfiable(f"the file has {size} bytes; that range is outside it")


def _upload_stream(request: Request) -> tuple[Any, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("send the file as multipart/form-data with a 'file' part")
    limit = get_camvault(request).shop.current.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise TooLarge(f"the upload is larger than the limit of {limit // (1024 * 1024)} MB")
    return request.stream(), content_type


@router.get(
    "",
    response_model=FileList,
    responses={200: {"model": FileList}, **responses(401)},
    summary="Every file, grouped by part number",
)
async def list_files(request: Request, _user: CurrentUser) -> Response:
    _seq, body = await _vault(request).list_files()
    return Response(body, media_type="application/json")


@router.post(
    "",
    status_code=201,
    response_model=FileRecord,
    responses=responses(400, 401, 403, 409, 413, 500, 507),
    openapi_extra=multipart_body(with_description=True, checkin=False),
    summary="Upload a new file (version 1)",
)
async def upload_file(request: Request, user: CurrentUser) -> dict[str, Any]:
    chunks, content_type = _upload_stream(request)
    return await _vault(request).upload(user, chunks, content_type)


@router.get(
    "/{name}",
    response_model=FileRecord,
    responses=responses(401, 404),
    summary="One file's record",
)
async def get_file(request: Request, name: str, _user: CurrentUser) -> dict[str, Any]:
    return await _vault(request).get_file(name)


@router.get(
    "/{name}/content",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes"},
        206: {"content": {"application/octet-stream": {}}, "description": "A byte range"},
        **responses(
            400,
            401,
            404,
            416,
            descriptions={400: "A version out of range, or a malformed Range header"},
        ),
    },
    summary="Download the newest or a given version (streamed; Range supported)",
)
async def download(
    request: Request,
    name: str,
    _user: CurrentUser,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> FileResponse:
    content = await _vault(request).content(name, version)
    check_range(request.headers.get("range"), content.size)
    return FileResponse(
        content.path,
        filename=content.filename,
        media_type="application/octet-stream",
        headers={
            "ETag": f'"{content.sha256}"',
            "X-Camvault-Version": str(content.version),
            "Cache-Control": "private, no-cache",
        },
    )


@router.get(
    "/{name}/versions",
    response_model=list[VersionOut],
    responses=responses(401, 404),
    summary="Every version, newest first",
)
async def list_versions(request: Request, name: str, _user: CurrentUser) -> list[dict[str, Any]]:
    return await _vault(request).list_versions(name)


@router.post(
    "/{name}/checkout",
    response_model=FileRecord,
    responses=responses(400, 401, 403, 404, 409, 413),
    summary="Take the exclusive lock (idempotent for the holder)",
)
async def checkout(
    request: Request, name: str, user: CurrentUser, body: CheckoutIn | None = None
) -> dict[str, Any]:
    return await _vault(request).checkout(user, name, body.message if body else "")


@router.post(
    "/{name}/checkin",
    response_model=FileRecord,
    responses=responses(400, 401, 403, 404, 409, 413, 500, 507),
    openapi_extra=multipart_body(with_description=True, checkin=True),
    summary="Upload a new version as the lock holder",
)
async def checkin(request: Request, name: str, user: CurrentUser) -> dict[str, Any]:
    chunks, content_type = _upload_stream(request)
    started = time.perf_counter()
    record = await _vault(request).checkin(user, name, chunks, content_type)
    metrics = request.app.state.metrics
    metrics.checkin_seconds.observe(time.perf_counter() - started)
    metrics.checkin_bytes.inc(record["size"])
    return record


@router.post(
    "/{name}/cancel-checkout",
    response_model=FileRecord,
    responses=responses(401, 403, 404, 409),
    summary="Release your lock without a new version",
)
async def cancel_checkout(request: Request, name: str, user: CurrentUser) -> dict[str, Any]:
    return await _vault(request).cancel_checkout(user, name)


@router.post(
    "/{name}/revert",
    response_model=FileRecord,
    responses=responses(400, 401, 403, 404, 409, 413, 500, 507),
    summary="New version with an older version's content (lock holder only)",
)
async def revert(request: Request, name: str, body: RevertIn, user: CurrentUser) -> dict[str, Any]:
    return await _vault(request).revert(user, name, body.version, body.message)


@router.post(
    "/{name}/request-unlock",
    response_model=UnlockRequestOut,
    responses=responses(400, 401, 403, 404, 409, 413, 429),
    summary="Ask the holder to release the file (a live notification to them)",
)
async def request_unlock(
    request: Request, name: str, user: CurrentUser, body: UnlockRequestIn | None = None
) -> dict[str, Any]:
    return await _vault(request).request_unlock(user, name, body.message if body else "")


@router.post(
    "/{name}/break-lock",
    response_model=FileRecord,
    responses=responses(400, 401, 403, 404, 413),
    summary="Admin: free someone's lock, with a reason they will see",
)
async def break_lock(
    request: Request, name: str, body: BreakLockIn, admin: AdminUser
) -> dict[str, Any]:
    return await _vault(request).break_lock(admin, name, body.reason)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404, 409, 500),
    summary="Admin: remove a file from the list (its history stays in git)",
)
async def delete_file(request: Request, name: str, admin: AdminUser) -> Response:
    await _vault(request).delete(admin, name)
    return Response(status_code=204)


@links.post(
    "",
    status_code=201,
    response_model=FileRecord,
    responses=responses(400, 401, 403, 409, 413, 500, 507),
    summary="Create a .link entry that stands for a master file",
)
async def create_link(request: Request, body: LinkIn, user: CurrentUser) -> dict[str, Any]:
    return await _vault(request).create_link(
        user, body.name, body.target, body.description, body.message
    )
