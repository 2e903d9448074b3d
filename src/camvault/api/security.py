"""Authentication (session cookie or bearer token) and CSRF protection for the API.

A browser sends the cookie by itself, so a cookie-authenticated unsafe request must come
from our own page: its ``Origin`` (or, failing that, ``Referer``) must name this server or
an allowed origin. Bearer tokens are never sent by a browser on its own, so they need no
such check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from anyio import to_thread
from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from camvault.core import Camvault
from camvault.errors import Forbidden, Unauthorized
from camvault.services.auth import User

COOKIE_NAME = "camvault_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The authenticated user and how they proved it."""

    user: User
    token: str
    via_cookie: bool


def get_camvault(conn: HTTPConnection) -> Camvault:
    app_state: Camvault = conn.app.state.camvault
    return app_state


def credentials(conn: HTTPConnection) -> tuple[str, bool] | None:
    """The token a request carries and whether it came from the cookie."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = conn.cookies.get(COOKIE_NAME)
    if cookie:
        return cookie, True
    return None


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(conn: HTTPConnection, origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Same host as the request (as the client addressed it), or an allowed origin."""
    if origin is None:
        return False
    host = conn.headers.get("host", "").lower()
    if host and urlsplit(origin).netloc == host:
        return True
    return origin.rstrip("/") in {a.lower().rstrip("/") for a in allowed}


def check_csrf(request: Request, allowed: tuple[str, ...]) -> None:
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        origin = origin_of(referer) if referer else None
    if not origin_allowed(request, origin, allowed):
        raise Forbidden("cross-site request refused: the Origin does not match this server")


async def authenticate(conn: HTTPConnection) -> Principal | None:
    """The principal behind a request or WebSocket, or None."""
    found = credentials(conn)
    if found is None:
        return None
    token, via_cookie = found
    auth = get_camvault(conn).auth
    user = auth.cached(token) or await to_thread.run_sync(auth.authenticate, token)
    if user is None:
        return None
    return Principal(user, token, via_cookie)


async def require_principal(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        raise Unauthorized("log in first: no valid session or token")
    if principal.via_cookie:
        check_csrf(request, get_camvault(request).shop.current.ws_allowed_origins)
    return principal


# The two below call require_principal themselves instead of depending on it: one level of
# dependency less for FastAPI to resolve on every request.
async def require_user(request: Request) -> User:
    return (await require_principal(request)).user


async def require_admin(request: Request) -> User:
    user = (await require_principal(request)).user
    if not user.is_admin:
        raise Forbidden("this needs an admin")
    return user


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
CurrentUser = Annotated[User, Depends(require_user)]
AdminUser = Annotated[User, Depends(require_admin)]
