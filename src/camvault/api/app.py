"""``create_app(settings)``: the ASGI application. Nothing happens at import time."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import Message, Scope

from camvault.api import (
    routes_admin,
    routes_audit,
    routes_auth,
    routes_dashboard,
    routes_files,
    routes_meta,
    routes_settings,
    routes_users,
    ws,
)
from camvault.api.errors import install_error_handlers, responses
from camvault.api.limits import BodyLimit, BodyTimeout
from camvault.api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from camvault.api.security import AdminUser, CurrentUser
from camvault.core import Camvault
from camvault.logs import RequestIdMiddleware
from camvault.settings import Settings

log = logging.getLogger("camvault.api")
_PATH_PARAM = re.compile(r"\{[^}]*\}")


def create_app(settings: Settings, camvault: Camvault | None = None) -> FastAPI:
    """Build the app from explicit settings; the vault opens in the lifespan."""
    camvault = camvault or Camvault(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await camvault.open()
        try:
            await _warm_routes(_app)
            yield
        finally:
            await camvault.aclose()

    app = FastAPI(
        title="camvault",
        version="0.1.0",
        summary="Check CAM files out and in; every version kept in git.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.camvault = camvault
    app.state.metrics = metrics = Metrics(camvault)
    app.add_middleware(BodyLimit)
    app.add_middleware(BodyTimeout, window=settings.body_timeout, min_rate=settings.body_min_rate)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(ws.DirectSend)
    install_error_handlers(app)
    app.include_router(routes_auth.router)
    app.include_router(routes_files.router)
    app.include_router(routes_files.links)
    app.include_router(routes_users.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_dashboard.router)
    app.include_router(routes_settings.router)
    app.include_router(ws.router)
    app.include_router(routes_meta.router)
    app.include_router(routes_admin.router)

    @app.get(
        "/metrics",
        tags=["admin"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}, **responses(401, 403)},
        summary="Admin: Prometheus metrics (also on metrics_port without a session)",
    )
    async def prometheus(_admin: AdminUser) -> Response:
        body = await to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    static = Path(str(resources.files("camvault.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    _mount_docs(app)
    return app


async def _warm_routes(app: FastAPI) -> None:
    """Route every documented path once before the port opens.

    FastAPI prepares an included router's routes (dependencies, response models) the first
    time a request reaches that router: 20-30 ms that the first person after a restart would
    wait for. An OPTIONS request, refused (405) by the router alone, makes it do that now.
    No middleware, handler or dependency runs, so nothing is logged, counted or changed.
    """

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        pass

    try:
        paths = list(app.openapi()["paths"])
    except Exception:  # the same error will reach whoever asks for /api/openapi.json
        log.warning("could not list the routes to prepare ahead of time", exc_info=True)
        return
    for path in paths:
        concrete = _PATH_PARAM.sub("_", path)
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "OPTIONS",
            "scheme": "http",
            "path": concrete,
            "raw_path": concrete.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "client": None,
            "server": None,
            "app": app,
        }
        try:
            await app.router(scope, receive, send)
        except HTTPException:
            pass  # the 405 that the exception middleware would have turned into a response
        except Exception:  # only a warm-up: the real request will say what is wrong
            log.warning("could not prepare the route for %s ahead of time", path, exc_info=True)


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI served from the installed bundle: the docs work without internet."""
    import swagger_ui_bundle

    app.mount(
        "/api/docs-assets",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-assets",
    )

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(_user: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    async def docs(_user: CurrentUser) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="camvault API",
            swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-assets/swagger-ui.css",
            swagger_favicon_url="/api/docs-assets/favicon-32x32.png",
        )
