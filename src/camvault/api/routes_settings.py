"""/api/admin/settings: the shop settings, read and changed at runtime by an admin."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request

from camvault.api.errors import responses
from camvault.api.schemas import ShopSettingsAnswer, ShopSettingsPatch
from camvault.api.security import AdminUser, get_camvault
from camvault.errors import BadRequest
from camvault.services.shop import defaults

router = APIRouter(prefix="/api/admin/settings", tags=["admin"])


@router.get(
    "",
    response_model=ShopSettingsAnswer,
    responses=responses(401, 403),
    summary="Admin: the shop settings in force, and the defaults from the settings file",
)
async def read_settings(request: Request, _admin: AdminUser) -> dict[str, Any]:
    camvault = get_camvault(request)
    shop = camvault.shop
    return {
        "settings": shop.current.model_dump(mode="json"),
        "defaults": type(shop.current)
        .model_validate(defaults(camvault.settings))
        .model_dump(mode="json"),
    }


@router.patch(
    "",
    response_model=ShopSettingsAnswer,
    responses=responses(400, 401, 403, 413),
    summary="Admin: change some shop settings (applied at once, logged, sent to every page)",
)
async def change_settings(
    request: Request,
    body: ShopSettingsPatch,
    admin: AdminUser,
    dry_run: Annotated[
        bool, Query(description="Only validate and report the effects; change nothing")
    ] = False,
) -> dict[str, Any]:
    patch = body.model_dump(exclude_unset=True)
    if not patch:
        raise BadRequest("send at least one setting to change")
    shop = get_camvault(request).shop
    if dry_run:
        config, effects = await to_thread.run_sync(shop.preview, patch)
    else:
        config, effects = await to_thread.run_sync(shop.update, admin.username, patch)
    return {"settings": config.model_dump(mode="json"), "effects": effects, "saved": not dry_run}
