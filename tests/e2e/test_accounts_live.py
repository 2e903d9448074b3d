"""Account changes reach open sockets: disabling a user cuts their WebSocket, on this
instance at once and through the event log whoever made the change (here: the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.live import LiveClient
from e2e.server import Launcher, Server, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "accounts-test-password"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(launch: Launcher, tmp_path: Path) -> Server:
    return launch.start(tmp_path / "data", admin_password=PASSWORD)


async def test_disabling_a_user_cuts_their_cookie_token_and_socket(server: Server) -> None:
    admin = server.login("admin", PASSWORD)
    with server.client(admin) as api:
        created = api.post(
            "/api/admin/users", json={"username": "ann", "role": "user", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
    token = server.login("ann", PASSWORD)
    ann_socket = await LiveClient(server.base_url, token).connect()
    admin_socket = await LiveClient(server.base_url, admin).connect()
    await ann_socket.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    with server.client(admin) as api:
        assert api.patch("/api/admin/users/ann", json={"disabled": True}).status_code == 200
    assert await ann_socket.wait_closed(timeout=3) == 1008
    with server.client(token) as ann:
        assert ann.get("/api/files").status_code == 401
    assert admin_socket.close_code is None
    await admin_socket.close()


async def test_a_password_set_by_the_cli_closes_that_users_sockets(server: Server) -> None:
    token = server.login("admin", PASSWORD)
    live = await LiveClient(server.base_url, token).connect()
    await live.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    done = run_cli("user", "passwd", "admin", "--password-stdin", "--data", str(server.data),
                   stdin="another-admin-secret\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The server learns it from the event log (polled once a second on SQLite).
    assert await live.wait_closed(timeout=5) == 1008
    with server.client(token) as api:
        assert api.get("/api/files").status_code == 401


async def test_a_role_change_reopens_that_users_sockets_with_the_new_role(
    server: Server,
) -> None:
    admin = server.login("admin", PASSWORD)
    with server.client(admin) as api:
        created = api.post(
            "/api/admin/users", json={"username": "eve", "role": "admin", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
    eve = server.login("eve", PASSWORD)
    live = await LiveClient(server.base_url, eve).connect()
    await live.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    with server.client(admin) as api:
        assert api.patch("/api/admin/users/eve", json={"role": "user"}).status_code == 200
    # Closed so the client reconnects as what it is now; the session itself stays valid.
    assert await live.wait_closed(timeout=3) == 1008
    with server.client(eve) as api:
        assert api.get("/api/auth/me").json() == {"username": "eve", "role": "user"}
