"""PostgreSQL gone for a moment under a real server: every request touching the database
answers 503 with Retry-After, /ws closes new sockets with 1011, and once the database is
back the same check-in succeeds and live updates resume, all without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.live import LiveClient
from e2e.server import Launcher, checkin, free_port, isolated_git_env, upload
from sqlalchemy.engine import make_url

from faults.proxy import TcpProxy
from faults.state import check_vault, mcam

pytestmark = [pytest.mark.slow, pytest.mark.anyio, pytest.mark.postgresql]

PASSWORD = "gone-test-password"
# Trust auth ignores it; it is here so the test can prove it never reaches a log line.
DB_SECRET = "pg-secret-never-logged"
NAME = "1234567_A1.mcam"
OTHER = "7654321.mcam"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# PostgreSQL only: SQLite is a file, it cannot go away (its busy case is test_sqlite_busy).
@pytest.fixture
def proxied_database(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh PostgreSQL database reached through a proxy the test can cut."""
    real = make_url(postgres_url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432), free_port())
    proxy.start()
    try:
        via = real.set(host="127.0.0.1", port=proxy.port, password=DB_SECRET)
        yield via.render_as_string(hide_password=False), proxy
    finally:
        proxy.stop()


def is_checked_in(version: int) -> object:
    def match(frame: dict[str, object]) -> bool:
        payload = frame.get("payload")
        if frame["type"] != "FILE_UPDATED" or not isinstance(payload, dict):
            return False
        file = payload["file"]
        return bool(file["filename"] == NAME and file["version"] == version)

    return match


async def test_postgresql_gone_for_a_moment_is_503_then_recovers_without_restart(
    launch: Launcher, proxied_database: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    database_url, proxy = proxied_database
    server = launch.start(tmp_path / "data", admin_password=PASSWORD, database_url=database_url)
    token = server.login("admin", PASSWORD)
    v1, v2, other = mcam(1), mcam(2), mcam(3)
    with server.client(token) as api:
        assert upload(api, NAME, v1).status_code == 201
        assert upload(api, OTHER, other).status_code == 201
        assert api.post(f"/api/files/{NAME}/checkout", json={}).status_code == 200
    watcher = await LiveClient(server.base_url, token).connect()
    await watcher.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    unchecked = server.login("admin", PASSWORD)  # never used: its check needs the database

    proxy.stop()
    with server.client(token) as api:
        refused = [
            checkin(api, NAME, v2, message="while away", keep_locked=True),
            api.post(f"/api/files/{OTHER}/checkout", json={}),
            api.get(f"/api/files/{NAME}/versions"),
        ]
        health = api.get("/api/health")
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert int(response.headers["retry-after"]) > 0
    assert health.status_code == 503 and health.json()["database"] == "unavailable"
    # Sockets opened now are closed cleanly with the documented 1011 (reconnect later),
    # whether the session check or the snapshot is what needs the database.
    for late_token in (unchecked, token):
        late = await LiveClient(server.base_url, late_token).connect()
        assert await late.wait_closed() == 1011
    assert "WebSocket handshake could not check the session" in server.stderr()
    assert server.alive()

    proxy.start()
    with server.client(token) as api:
        again = checkin(api, NAME, v2, message="back", keep_locked=True)
        assert again.status_code == 200, f"{again.text}\n{server.logs()}"
        assert again.json()["version"] == 2
        assert api.get("/api/health").status_code == 200
    # The hub read the log again: the socket opened before the outage sees the check-in.
    await watcher.wait_for(is_checked_in(2), timeout=20)
    fresh = await LiveClient(server.base_url, token).connect()
    await fresh.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    await fresh.close()
    await watcher.close()

    check_vault(
        server,
        token,
        isolated_git_env(tmp_path / "home"),
        {NAME: [v1, v2], OTHER: [other]},
        {NAME: "admin", OTHER: None},
    )
    logs = server.stdout() + server.stderr()
    assert "database unavailable" in logs
    assert DB_SECRET not in logs
    assert "Exception in ASGI application" not in logs, logs[-4000:]
