"""``camvault watch``: print the live event stream; reconnects and resumes like the browser.

Handy for operators ("who is checking what out right now?") and for tests.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import websockets

BASE_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 10.0


def backoff_delay(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(30 s, 1 s * 2^attempt))."""
    return float(draw()) * min(MAX_DELAY, BASE_DELAY * 2.0 ** min(attempt, 30))


def login(server: str, username: str, password: str) -> str:
    """A bearer token for ``username``."""
    response = httpx.post(
        f"{server.rstrip('/')}/api/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    if response.status_code != 200:
        message = response.json().get("error", {}).get("message", response.text)
        raise SystemExit(f"login failed: {message}")
    return str(response.json()["token"])


def ws_url(server: str, after: int | None, epoch: str | None) -> str:
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = {k: v for k, v in {"after": after, "epoch": epoch}.items() if v is not None}
    return f"{scheme}://{parts.netloc}/ws" + (f"?{urlencode(query)}" if query else "")


def describe(frame: dict[str, Any]) -> str:
    """One readable line per frame."""
    kind = frame.get("type")
    payload = frame.get("payload", {})
    seq = frame.get("seq")
    head = f"[{seq}] {kind}" if seq is not None else str(kind)
    if kind == "FILE_LIST_UPDATED":
        count = sum(len(v) for v in payload.values())
        return f"{head}: {count} files in {len(payload)} groups"
    if kind == "FILE_UPDATED":
        f = payload["file"]
        lock = f"checked out by {f['lock']['user']}" if f["lock"] else "free"
        return f"{head}: {f['filename']} v{f['version']} ({f['revision']}) {lock}"
    if kind == "PRESENCE":
        return f"{head}: online {', '.join(payload['online']) or 'nobody'}"
    return f"{head}: {json.dumps(payload, sort_keys=True)}"


async def watch(
    server: str,
    token: str,
    *,
    emit: Callable[[dict[str, Any]], None],
    count: int | None = None,
) -> None:
    """Stream frames to ``emit`` forever (or until ``count`` frames), reconnecting."""
    after: int | None = None
    epoch: str | None = None
    attempt = 0
    seen = 0
    loop = asyncio.get_running_loop()
    while True:
        try:
            async with websockets.connect(
                ws_url(server, after, epoch),
                additional_headers={"Authorization": f"Bearer {token}"},
                max_size=None,
            ) as socket:
                opened = loop.time()
                async for raw in socket:
                    if loop.time() - opened > STABLE_AFTER:
                        attempt = 0
                    try:
                        frame = json.loads(raw)
                    except json.JSONDecodeError:
                        continue
                    if not isinstance(frame, dict):
                        continue
                    if isinstance(frame.get("seq"), int) and (
                        frame["type"] == "FILE_LIST_UPDATED" or "prev" in frame
                    ):
                        after = frame["seq"]
                    epoch = frame.get("epoch", epoch)
                    emit(frame)
                    seen += 1
                    if count is not None and seen >= count:
                        return
        except websockets.InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise SystemExit("the server refused the connection: log in again") from exc
        except (OSError, websockets.ConnectionClosed):
            pass
        delay = backoff_delay(attempt)
        attempt += 1
        emit({"type": "RECONNECTING", "payload": {"in_seconds": round(delay, 2)}})
        await asyncio.sleep(delay)
