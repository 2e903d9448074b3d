"""A flood of WebSockets from one account is bounded by ``ws_max_per_user``: the extra
sockets are held, then closed with 4429 one at a time, and everyone else, that user's
admitted sockets included, keeps receiving events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PASSWORD, mcam

from camvault.events.hub import REFUSE_DELAY_S, REFUSE_SPACING_S
from e2e.live import LiveClient
from e2e.server import Launcher, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

LIMIT = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def is_checkout(frame: dict[str, object]) -> bool:
    payload = frame.get("payload")
    return (
        frame["type"] == "FILE_UPDATED"
        and isinstance(payload, dict)
        and payload["file"]["lock"] is not None
    )


async def test_sockets_over_the_per_user_limit_are_refused_and_the_others_stay_live(
    launch: Launcher, tmp_path: Path
) -> None:
    env = {"CAMVAULT_WS_MAX_PER_USER": str(LIMIT)}
    server = launch.start(tmp_path / "data", admin_password=PASSWORD, env=env)
    admin = server.login("admin", PASSWORD)
    with server.client(admin) as api:
        created = api.post(
            "/api/admin/users", json={"username": "ann", "role": "user", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        assert upload(api, "1234567_A1.mcam", mcam(b"v1")).status_code == 201
    ann = server.login("ann", PASSWORD)

    admitted = [await LiveClient(server.base_url, ann).connect() for _ in range(LIMIT)]
    for live in admitted:
        await live.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    started = time.monotonic()
    flood = await asyncio.gather(*(LiveClient(server.base_url, ann).connect() for _ in range(20)))
    codes = await asyncio.gather(*(live.wait_closed() for live in flood))
    assert codes == [4429] * 20
    assert all(live.frames == [] for live in flood)
    # Held, then closed one at a time: a client that reconnects at once cannot make the
    # server refuse more than a few handshakes a second.
    assert time.monotonic() - started >= REFUSE_DELAY_S + 19 * REFUSE_SPACING_S

    # Another user is not affected, and every admitted socket still gets the events.
    admin_live = await LiveClient(server.base_url, admin).connect()
    await admin_live.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    with server.client(admin) as api:
        assert api.post("/api/files/1234567_A1.mcam/checkout", json={}).status_code == 200
    for live in [*admitted, admin_live]:
        await live.wait_for(is_checkout)
        assert live.close_code is None

    # A place freed by a closed socket can be taken again. The server answers the close
    # frame before its handler lets go of the place, so wait until it has.
    await admitted.pop().close()
    await wait_until(lambda: server.websockets_open(admin) == LIMIT)
    again = await LiveClient(server.base_url, ann).connect()
    await again.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    refused = await LiveClient(server.base_url, ann).connect()
    assert await refused.wait_closed() == 4429

    # Refusals still held at shutdown do not keep the server waiting: they get 1001 at once.
    held = [await LiveClient(server.base_url, ann).connect() for _ in range(30)]
    await asyncio.sleep(REFUSE_DELAY_S + 0.5)  # some are closed, the rest queued behind
    stopping = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert time.monotonic() - stopping < 5, server.logs()
    codes = await asyncio.gather(*(live.wait_closed() for live in held))
    assert 1001 in codes and set(codes) <= {4429, 1001}, codes
    assert "Cancel" not in server.stderr(), server.logs()
    for live in [*admitted, again, admin_live, refused, *flood, *held]:
        await live.close()
