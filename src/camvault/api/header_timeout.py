"""A deadline for request headers, which uvicorn does not have (slowloris).

uvicorn's only read timeout is ``timeout_keep_alive``, armed after a response, and any byte
disarms it: a connection that never completes its first request head, or sends the next
one a byte at a time, is kept for ever. Each such connection holds a socket (a file
descriptor) and a buffer, so a client opening thousands of them would exhaust the process's
descriptors and lock everyone else out. This protocol gives every request head
``header_timeout`` seconds from its first byte (from the connection's start for the first
request); a late one gets 408 and the connection is closed.

``limit_concurrency`` was the other candidate and is not used: it counts connections, so a
slow client holding that many would make uvicorn answer 503 to everyone else.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("camvault.limits")


def _timeout_answer(seconds: float) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"the request headers did not arrive within {seconds:g} s",
            }
        }
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a ``seconds`` deadline on every request head."""
    answer = _timeout_answer(seconds)

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _head_timer: TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:  # the first request's clock started on connect
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            log.info("request headers too slow from %r; closed", self.client)
            self.transport.write(answer)
            self.transport.close()

    return HeaderTimeoutProtocol
