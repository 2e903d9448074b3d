"""/api/auth: log in (cookie + token), log out, who am I; and the unauthenticated health."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from camvault.api.errors import responses
from camvault.api.schemas import Credentials, Health, LoginOut, PasswordChangeIn, UserOut
from camvault.api.security import (
    COOKIE_NAME,
    CurrentPrincipal,
    CurrentUser,
    check_csrf,
    get_camvault,
)
from camvault.services.auth import User

router = APIRouter(prefix="/api", tags=["auth"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or the vault is unreachable"}},
    summary="Whether this instance can reach its database and vault (no authentication)",
)
async def health(request: Request) -> JSONResponse:
    checks = await to_thread.run_sync(get_camvault(request).health)
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ok else "unavailable", **checks}
    # A load balancer takes an instance out of rotation on 503 and back on 200.
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.post(
    "/auth/login",
    response_model=LoginOut,
    responses=responses(400, 401, 403, 413, 429),
    summary="Log in: sets the session cookie and returns a bearer token",
)
async def login(request: Request, body: Credentials, response: Response) -> dict[str, Any]:
    camvault = get_camvault(request)
    # A cross-site page must not log the browser into someone else's account.
    if request.headers.get("origin") is not None:
        check_csrf(request, camvault.shop.current.ws_allowed_origins)
    client = request.client.host if request.client else "unknown"
    user, token = await camvault.auth.login(body.username, body.password, client)
    settings = camvault.settings
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(camvault.shop.current.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure or request.url.scheme == "https",
    )
    return {"user": user.public(), "token": token}


@router.post(
    "/auth/logout",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403),
    summary="End this session or token",
)
async def logout(request: Request, principal: CurrentPrincipal) -> Response:
    camvault = get_camvault(request)
    await to_thread.run_sync(camvault.auth.logout, principal.token, principal.user)
    camvault.hub.drop_token(principal.token)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


@router.get(
    "/auth/me", response_model=UserOut, responses=responses(401), summary="The logged-in user"
)
async def me(user: CurrentUser) -> dict[str, str]:
    return User.public(user)


@router.post(
    "/auth/password",
    status_code=204,
    response_class=Response,
    responses=responses(400, 401, 403, 413, 429),
    summary="Change your own password (your other sessions end; this one stays)",
)
async def change_password(
    request: Request, body: PasswordChangeIn, principal: CurrentPrincipal
) -> Response:
    client = request.client.host if request.client else "unknown"
    await get_camvault(request).auth.change_own_password(
        principal.user, principal.token, body.current, body.new, client
    )
    return Response(status_code=204)
