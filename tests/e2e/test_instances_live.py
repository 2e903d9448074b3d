"""Two instances on one database: a change made through one reaches the other's WebSocket
clients. On PostgreSQL the wake-up is LISTEN/NOTIFY (the poll is set to 30 s here, so
only a notification can be this fast); a killed listening connection is noticed and
followed by a catch-up from the log. On SQLite the instances share the file and the poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from e2e.live import LiveClient
from e2e.server import Launcher, Server, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "instances-test-password"
HDF5 = b"\x89HDF\r\n\x1a\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def checkout_seen_by(watcher: LiveClient, api_server: Server, token: str, name: str) -> float:
    """Seconds from a checkout's 200 on ``api_server`` to its frame at ``watcher``."""
    with api_server.client(token) as api:
        taken = api.post(f"/api/files/{name}/checkout", json={})
        answered = time.monotonic()
        assert taken.status_code == 200, taken.text
    seq = taken.json()  # the record; its frame is the next FILE_UPDATED for this name
    del seq
    count = len(watcher.frames)
    deadline = answered + 10
    while time.monotonic() < deadline:
        for frame, at in zip(
            watcher.frames[count - 1 :], watcher.received_at[count - 1 :], strict=True
        ):
            if frame["type"] == "FILE_UPDATED" and frame["payload"]["file"]["lock"]:
                if frame["payload"]["file"]["filename"] == name:
                    return max(0.0, at - answered)
        await asyncio.sleep(0.005)
    raise AssertionError(f"the checkout of {name} never reached the other instance's client")


def terminate_listeners(database_url: str) -> int:
    """pg_terminate_backend on every camvault LISTEN connection of that database."""
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'camvault-listen-%' "
                        "AND datname = current_database()"
                    )
                ).all()
            )
    finally:
        engine.dispose()


async def test_a_change_on_one_instance_reaches_clients_of_the_other(
    launch: Launcher, server_database_url: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # On PostgreSQL only a notification can wake the other hub within the 1 s asserted.
    env = {"CAMVAULT_WS_POLL_INTERVAL": "30"} if server_database_url else {}
    first = launch.start(data, admin_password=PASSWORD, database_url=server_database_url, env=env)
    second = launch.start(data, admin_password=PASSWORD, database_url=server_database_url, env=env)
    token = first.login("admin", PASSWORD)
    names = [f"765432{i}_A.mcam" for i in range(3)]
    with first.client(token) as api:
        for name in names:
            assert upload(api, name, HDF5 + name.encode()).status_code == 201
    watcher = await LiveClient(second.base_url, token).connect()
    await watcher.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")

    delay = await checkout_seen_by(watcher, first, token, names[0])
    assert delay < (1.0 if server_database_url else 1.6), delay

    if server_database_url is not None:
        assert terminate_listeners(server_database_url) == 2
        # Both listeners reconnect (backoff starts at a fraction of a second) and catch up.
        await asyncio.sleep(0.2)
        delay = await checkout_seen_by(watcher, first, token, names[1])
        assert delay < 5.0, delay
        await asyncio.sleep(1.5)
        delay = await checkout_seen_by(watcher, first, token, names[2])
        assert delay < 1.0, f"after reconnecting, notifications are fast again: {delay}"
        for server in (first, second):
            assert "event listener lost its connection" in server.stderr(), server.logs()
    await watcher.close()
