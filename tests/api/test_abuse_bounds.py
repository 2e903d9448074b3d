"""Abuse is bounded without costing the others: a brute force from one client leaves other
clients able to log in, and a body that stalls is answered 408 while a finished one (a
download waiting for the client) is never timed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from helpers import PASSWORD, Vault
from starlette.types import Message, Receive, Scope, Send

from camvault.api.limits import BodyTimeout

pytestmark = pytest.mark.anyio


def client_at(vault: Vault, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=vault.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=vault.base_url)


async def test_a_brute_force_from_one_client_does_not_lock_out_another(vault: Vault) -> None:
    async with client_at(vault, "10.0.0.66") as attacker:
        for i in range(10):
            await attacker.post("/api/auth/login", json={"username": "admin", "password": f"{i}"})
        refused = await attacker.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
    assert refused.status_code == 429
    async with client_at(vault, "10.0.0.7") as colleague:
        allowed = await colleague.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
    assert allowed.status_code == 200, allowed.text


async def run(app: BodyTimeout, messages: list[Message], hang: bool) -> list[Message]:
    """Drive ``app`` with ``messages`` as the request, then (``hang``) a client that stalls."""
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if hang:
            await asyncio.Event().wait()
        await asyncio.sleep(0.6)  # a download's client, a while later
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": [],
                    "client": ("10.0.0.66", 1)}  # fmt: skip
    await app(scope, receive, send)
    return sent


async def test_a_stalled_body_is_answered_408_and_the_app_sees_a_disconnect() -> None:
    seen: list[Message] = []

    async def reader(_scope: Scope, receive: Receive, send: Send) -> None:
        while (message := await receive())["type"] == "http.request":
            seen.append(message)
        seen.append(message)
        await send({"type": "http.response.start", "status": 400, "headers": []})

    app = BodyTimeout(reader, window=0.2, min_rate=0)
    sent = await run(app, [{"type": "http.request", "body": b"x", "more_body": True}], hang=True)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b'"code":"request_timeout"' in sent[1]["body"]
    assert len(sent) == 2  # the app's own late answer is dropped


async def test_once_the_body_is_complete_nothing_is_timed() -> None:
    answered: list[Message] = []

    async def download(_scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the (empty) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        answered.append(await receive())  # waits for the disconnect, longer than the window

    app = BodyTimeout(download, window=0.2, min_rate=0)
    sent = await run(app, [{"type": "http.request", "body": b"", "more_body": False}], hang=False)
    assert [m.get("status") for m in sent] == [200]
    assert answered == [{"type": "http.disconnect"}]


async def test_a_trickle_under_the_minimum_rate_is_cut_even_though_it_never_stops() -> None:
    async def reader(_scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] == "http.request":
            pass

    chunks = 0

    async def trickle() -> Message:
        nonlocal chunks
        chunks += 1
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    app = BodyTimeout(reader, window=0.5, min_rate=1000)  # 500 bytes per 0.5 s; 20 B/s come
    scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await app(scope, trickle, send)
    # The trickle never pauses longer than 0.05 s, so only the rate rule can cut it.
    assert sent[0]["status"] == 408
    assert chunks > 1
