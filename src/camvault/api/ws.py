"""``/ws``: the live event stream. It authenticates, checks Origin, subscribes to the hub,
answers PING and RESUME, and reports bad frames; everything else is the hub's job.

Browsers authenticate with the session cookie and must send an allowed ``Origin``.
Non-browser clients send ``Authorization: Bearer <token>`` (and usually no Origin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from camvault.api.security import Principal, authenticate, get_camvault, origin_allowed
from camvault.events.frames import PONG, error_frame
from camvault.events.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_SERVER_ERROR,
    CLOSE_TOO_MANY,
    Connection,
    Hub,
)
from camvault.store.failures import database_failure

router = APIRouter()
log = logging.getLogger("camvault.ws")
DIRECT_SEND = "camvault.direct_send"  # scope key: see DirectSend


def _int_param(websocket: WebSocket, name: str) -> int | None:
    value = websocket.query_params.get(name)
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


class DirectSend:
    """Outermost middleware: hands /ws the server's own ``send`` for its frames.

    Each layer between the server and a handler wraps ``send`` in a coroutine of its own;
    for one frame fanned out to thousands of sockets, those layers cost about as much as
    the write itself. Only the frames take this path: the accept, the close and every HTTP
    message still go through the whole stack.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        scope[DIRECT_SEND] = send
        try:
            await self.app(scope, receive, send)
        finally:
            # The server's connection holds the scope and ``send`` is its bound method:
            # without this the pair is a cycle that only a full collection frees.
            del scope[DIRECT_SEND]


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    camvault = get_camvault(websocket)
    try:
        principal: Principal | None = await authenticate(websocket)
    except SQLAlchemyError as exc:
        if database_failure(exc) is None:
            raise
        # The database is away for a moment: say so with the documented 1011 (reconnect
        # later), not an HTTP 500 handshake. Nothing is sent before the close.
        camvault.hub.log_failure(exc, "WebSocket handshake could not check the session")
        await websocket.accept()
        await _close(websocket, CLOSE_SERVER_ERROR)
        return
    origin = websocket.headers.get("origin")
    allowed = camvault.shop.current.ws_allowed_origins
    # A browser always sends Origin; a cross-site page must not ride on the user's cookie.
    if (
        principal is None
        or (origin is not None and not origin_allowed(websocket, origin, allowed))
        or (principal.via_cookie and origin is None)
    ):
        await websocket.close(CLOSE_POLICY)  # before accept: the handshake gets HTTP 403
        return
    hub = camvault.hub
    user = principal.user
    if not hub.admit(user.username):
        # Accepted only to say why: a refused handshake reaches a browser as a bare 1006.
        log.info(
            "user %r already holds %d live sockets; refused one more",
            user.username,
            hub.max_per_user,
        )
        await websocket.accept()
        # Said after a pause, and this user's refusals one at a time (Hub.refusal_delay): a
        # client retrying in a tight loop on many connections then costs this event loop a
        # few handshakes a second, not one per connection. At shutdown: 1001 at once.
        await hub.hold_refused(user.username)
        await _close(websocket, CLOSE_GOING_AWAY if hub.stopped else CLOSE_TOO_MANY)
        return
    try:
        await websocket.accept()
        await _serve(
            websocket,
            hub,
            Connection(user.username, principal.token, hub.queue_size, is_admin=user.is_admin),
        )
    finally:
        hub.release(user.username)


async def _serve(websocket: WebSocket, hub: Hub, conn: Connection) -> None:
    writer = asyncio.create_task(_write(websocket, conn))
    reader = asyncio.create_task(_read(websocket, conn, hub))
    closed = asyncio.create_task(conn.closed.wait())
    try:
        await hub.attach(conn, _int_param(websocket, "after"), websocket.query_params.get("epoch"))
        await asyncio.wait([writer, reader, closed], return_when=asyncio.FIRST_COMPLETED)
    except SQLAlchemyError as exc:
        if database_failure(exc) is None:
            raise
        hub.log_failure(exc, "WebSocket could not be given its snapshot or replay")
    finally:
        try:
            for task in (reader, writer, closed):
                task.cancel()
            # gather(return_exceptions=True): a task that died of its own error (say the
            # database failed during a RESUME) must not skip the close and the detach.
            results = await asyncio.gather(reader, writer, closed, return_exceptions=True)
            for result in results:
                if isinstance(result, SQLAlchemyError):  # a RESUME's replay, say
                    hub.log_failure(result, "WebSocket could not be given its replay")
            await _close(websocket, conn.close_code or CLOSE_SERVER_ERROR)
        finally:
            # Detached only once the close frame is out: shutdown waits for this (1001 first).
            hub.detach(conn)


async def _write(websocket: WebSocket, conn: Connection) -> None:
    # The server's own send (see DirectSend), else the handler's: once per client per frame.
    send = websocket.scope.get(DIRECT_SEND) or websocket.send
    while True:
        text = await conn.queue.get()
        await send({"type": "websocket.send", "text": text})
        while not conn.queue.empty():  # a burst: no wake-up per frame
            await send({"type": "websocket.send", "text": conn.queue.get_nowait()})


async def _read(websocket: WebSocket, conn: Connection, hub: Hub) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            conn.close(message.get("code", 1000))
            return
        text = message.get("text")
        if text is None:
            conn.send(error_frame("binary_frame", "frames must be JSON text, not binary"))
            continue
        try:
            data: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            conn.send(error_frame("bad_json", "the frame is not valid JSON"))
            continue
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "PING":
            conn.send(PONG)
        elif kind == "RESUME" and type(data.get("after")) is int and 0 <= data["after"] < 2**62:
            await hub.resume(conn, data["after"])
        elif kind == "RESUME":
            conn.send(error_frame("bad_frame", "RESUME needs a non-negative integer 'after'"))
        else:
            conn.send(error_frame("unknown_type", f"unknown frame type {kind!r}"))


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    # A client that stopped reading may never take the close frame: don't wait forever.
    with contextlib.suppress(TimeoutError, RuntimeError, WebSocketDisconnect, OSError):
        await asyncio.wait_for(websocket.close(code), timeout=2)
