"""/api/admin: the git mirror's configuration and status (admins only)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from camvault.api.errors import responses
from camvault.api.security import AdminUser, get_camvault

router = APIRouter(prefix="/api/admin", tags=["admin"])

NO_MIRROR = {404: "No mirror is configured (not_found)"}


class MirrorIn(BaseModel):
    url: str = Field(
        max_length=2048,
        description="https://, http://, ssh:// or file:// URL (or user@host:path), "
        "without credentials.",
        examples=["https://gitlab.example.com/shop/vault.git"],
    )
    token: str | None = Field(
        default=None,
        max_length=4096,
        description="Access token for an https/http remote (GitLab: a project or personal "
        "access token with write_repository). Stored encrypted; never shown again. Left "
        "out: the stored token is kept if the URL is unchanged; null: no token.",
    )
    username: str | None = Field(
        default=None,
        max_length=255,
        description="User name sent with the token; default 'oauth2'.",
    )


class MirrorStatus(BaseModel):
    configured: bool
    state: Literal["unconfigured", "synced", "pending", "failing"] = Field(
        description="synced: the remote has every commit; pending: commits wait to be "
        "pushed; failing: the last attempt failed (see last_error, next_retry_at)."
    )
    url: str | None
    username: str | None
    token: Literal["stored", "environment"] | None = Field(
        description="Where the token comes from (its value is never shown)."
    )
    last_pushed: str | None = Field(description="The commit the remote's main was pushed to.")
    last_pushed_at: str | None
    pending: int | None = Field(description="Commits on main not pushed yet.")
    last_attempt_at: str | None
    last_error: str | None
    error_kind: str | None = Field(
        description="rejected, diverged, auth, unreachable, timeout, config or failed."
    )
    failures: int = Field(description="Failed attempts in a row.")
    next_retry_at: str | None
    configured_at: str | None
    configured_by: str | None


@router.get(
    "/mirror",
    response_model=MirrorStatus,
    responses=responses(401, 403),
    summary="The git mirror's configuration and push status",
)
async def get_mirror(request: Request, _admin: AdminUser) -> dict[str, Any]:
    return await get_camvault(request).mirror.status()


@router.put(
    "/mirror",
    response_model=MirrorStatus,
    responses=responses(
        400,
        401,
        403,
        413,
        descriptions={
            400: "Invalid input: a URL with credentials or an unsupported scheme "
            "(invalid_mirror_url), or a token while no key to encrypt it is configured "
            "(mirror_key_missing)"
        },
    ),
    summary="Set the git remote the vault is mirrored to (replaces any previous one)",
)
async def put_mirror(request: Request, body: MirrorIn, admin: AdminUser) -> dict[str, Any]:
    keep = "token" not in body.model_fields_set
    return await get_camvault(request).mirror.configure(
        admin.username, body.url, body.token, body.username, keep_token=keep
    )


@router.delete(
    "/mirror",
    status_code=204,
    responses=responses(401, 403, 404, descriptions=NO_MIRROR),
    summary="Stop mirroring and forget the remote and its token",
)
async def delete_mirror(request: Request, admin: AdminUser) -> Response:
    await get_camvault(request).mirror.remove(admin.username)
    return Response(status_code=204)


@router.post(
    "/mirror/push",
    status_code=202,
    response_model=MirrorStatus,
    responses=responses(401, 403, 404, descriptions=NO_MIRROR),
    summary="Push now, skipping any retry delay (the push runs in the background)",
)
async def push_mirror(request: Request, _admin: AdminUser) -> dict[str, Any]:
    return await get_camvault(request).mirror.push_now()
