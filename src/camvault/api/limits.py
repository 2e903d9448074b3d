"""Bounded request bodies: only the streamed multipart uploads may be large.

FastAPI reads a JSON body whole before validating it, so without a cap a client (even an
unauthenticated one, on /api/auth/login) could make the server hold any amount of memory.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camvault.api.errors import error_response
from camvault.errors import TooLarge

MAX_JSON_BODY = 1024 * 1024


class BodyLimit:
    """Refuse non-multipart request bodies over ``limit`` bytes with 413 (JSON error)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)  # streamed to disk, limited by the upload code
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            response = error_response(413, TooLarge.code, self._message())
            await response(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer 413 ourselves (the framework would turn an exception here into
                    # a generic 400), then tell the app the client is gone.
                    refused = True
                    response = error_response(413, TooLarge.code, self._message())
                    await response(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded_send)

    def _message(self) -> str:
        return f"the request body is larger than {self.limit // 1024} KiB"
