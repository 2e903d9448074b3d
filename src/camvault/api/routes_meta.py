"""The page itself, the client's view of the settings, and name checks before upload."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from camvault.api.errors import responses
from camvault.api.security import CurrentUser, get_camvault

router = APIRouter()

# The page loads only its own scripts and styles; user data never becomes markup.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class PublicGroupRule(BaseModel):
    digits: int
    keep: int


class PublicConfig(BaseModel):
    allowed_extensions: list[str]
    name_pattern: str | None
    max_upload_mb: float
    max_upload_bytes: int
    stale_lock_hours: float
    group_rule: PublicGroupRule


class NamesIn(BaseModel):
    names: list[str] = Field(max_length=1000)


class NameCheck(BaseModel):
    name: str
    ok: bool
    code: str | None
    message: str | None


class NamesOut(BaseModel):
    results: list[NameCheck]


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    page = resources.files("camvault.web").joinpath("static/index.html").read_text()
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )


@router.get(
    "/api/config",
    response_model=PublicConfig,
    responses=responses(401),
    tags=["meta"],
    summary="The shop settings a client needs (extensions, name pattern, limits)",
)
async def config(request: Request, _user: CurrentUser) -> dict[str, Any]:
    return get_camvault(request).vault.public_config()


@router.post(
    "/api/names/check",
    response_model=NamesOut,
    responses=responses(400, 401, 403, 413),
    tags=["meta"],
    summary="Check names for new files with the upload rules, before uploading",
)
async def check_names(request: Request, body: NamesIn, _user: CurrentUser) -> dict[str, Any]:
    return {"results": await get_camvault(request).vault.check_names(body.names)}
