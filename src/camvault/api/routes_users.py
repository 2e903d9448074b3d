"""/api/admin/users: the admin's view of accounts (create, change role, disable, reset)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request

from camvault.api.errors import responses
from camvault.api.schemas import AccountIn, AccountOut, AccountPatch
from camvault.api.security import AdminUser, get_camvault
from camvault.services.auth import Role

router = APIRouter(prefix="/api/admin/users", tags=["admin"])


@router.get(
    "",
    response_model=list[AccountOut],
    responses=responses(401, 403),
    summary="Admin: every account",
)
async def list_accounts(request: Request, _admin: AdminUser) -> list[dict[str, Any]]:
    return await to_thread.run_sync(get_camvault(request).auth.list_users)


@router.post(
    "",
    status_code=201,
    response_model=AccountOut,
    responses=responses(400, 401, 403, 409, 413),
    summary="Admin: create an account",
)
async def create_account(request: Request, body: AccountIn, _admin: AdminUser) -> dict[str, Any]:
    auth = get_camvault(request).auth
    user = await to_thread.run_sync(auth.create_user, body.username, Role(body.role), body.password)
    return await to_thread.run_sync(auth.get_user, user.username)


@router.patch(
    "/{name}",
    response_model=AccountOut,
    responses=responses(400, 401, 403, 404, 409, 413),
    summary="Admin: change role, disable or enable, or set a new password",
)
async def update_account(
    request: Request, name: str, body: AccountPatch, admin: AdminUser
) -> dict[str, Any]:
    auth = get_camvault(request).auth
    return await to_thread.run_sync(
        lambda: auth.update_user(
            admin,
            name,
            role=Role(body.role) if body.role else None,
            disabled=body.disabled,
            password=body.password,
        )
    )
