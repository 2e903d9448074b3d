"""Bounds on what one request can make the server hold: body size and body pace.

FastAPI reads a JSON body whole before validating it, so without a cap a client (even an
unauthenticated one, on /api/auth/login) could make the server hold any amount of memory.
Only the streamed multipart uploads may be large, and they have their own limit.

A body that trickles in (slowloris) would hold its connection, its task and, for an
upload, a temp file for as long as the client likes: ``BodyTimeout`` cuts it.
"""

from __future__ import annotations

import logging
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camvault.api.errors import error_response
from camvault.errors import CamvaultError, RequestTimeout, TooLarge

MAX_JSON_BODY = 1024 * 1024
DISCONNECT: Message = {"type": "http.disconnect"}

log = logging.getLogger("camvault.limits")


class _Refusal:
    """Lets a middleware answer a request itself while the app is still reading its body.

    The framework would turn an exception raised from ``receive`` into a generic 400, so the
    middleware sends the error itself and then tells the app the client is gone: the app
    cleans up as after any disconnect (an upload removes its temp file) and whatever it
    tries to send afterwards is dropped.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.refused = False
        self.started = False

    async def refuse(self, error: CamvaultError) -> Message:
        first = not self.refused
        self.refused = True
        if first and not self.started:
            # Connection: close: the rest of the body, if it ever comes, is not a request.
            headers = {"Connection": "close", **error.headers}
            response = error_response(error.status, error.code, error.message, headers)
            await response(self.scope, self.receive, self._send)
        return DISCONNECT

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.lower().startswith(b"multipart/form-data"))
    return False


class BodyLimit:
    """Refuse non-multipart request bodies over ``limit`` bytes with 413 (JSON error)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_multipart(scope):
            # Multipart bodies stream to disk, limited by the upload code.
            await self.app(scope, receive, send)
            return
        too_large = TooLarge(f"the request body is larger than {self.limit // 1024} KiB")
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            response = error_response(too_large.status, too_large.code, too_large.message)
            await response(scope, receive, send)
            return
        refusal = _Refusal(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            if refusal.refused:
                return DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    return await refusal.refuse(too_large)
            return message

        await self.app(scope, counted, refusal.send)


class _Pace:
    """The body's pace rule: ``quota`` bytes within every ``window`` seconds of waiting.

    Only time spent waiting for the client counts: while the app is busy (writing to a slow
    disk, waiting for the writer) the bytes pile up in the transport, which is not the
    client's fault. A window closes as soon as its quota arrived, so a client that stops
    altogether is cut ``window`` seconds later, and one that trickles is cut when a window
    ends short of the quota.
    """

    def __init__(self, window: float, min_rate: int) -> None:
        self.window = window
        self.quota = max(1, int(min_rate * window))
        self.waited = 0.0
        self.got = 0

    def budget(self) -> float:
        return self.window - self.waited

    def record(self, waited: float, size: int) -> None:
        self.waited += waited
        self.got += size
        if self.got >= self.quota:
            self.waited, self.got = 0.0, 0


class BodyTimeout:
    """Answer 408 to a request whose body arrives slower than the pace rule allows.

    Applies only while a body is still coming: afterwards ``receive`` only reports the
    disconnect a streaming download listens for, which may take as long as the download.
    """

    def __init__(self, app: ASGIApp, window: float, min_rate: int) -> None:
        self.app = app
        self.window = window
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _Refusal(scope, receive, send)
        pace = _Pace(self.window, self.min_rate)
        body_done = False

        async def paced() -> Message:
            nonlocal body_done
            if refusal.refused:
                return DISCONNECT
            if body_done:
                return await receive()
            started = time.monotonic()
            with anyio.move_on_after(max(pace.budget(), 0.0)):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_done = True
                pace.record(time.monotonic() - started, len(message.get("body", b"")))
                return message
            log.warning("request body too slow from %s; answered 408", _client(scope))
            return await refusal.refuse(RequestTimeout(self._message()))

        await self.app(scope, paced, refusal.send)

    def _message(self) -> str:
        if self.min_rate == 0:
            return f"the request body stopped arriving for {self.window:g} s"
        return (
            f"the request body arrived slower than {self.min_rate} bytes/s "
            f"over {self.window:g} s of waiting"
        )


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return repr(client[0]) if client else "an unknown client"
