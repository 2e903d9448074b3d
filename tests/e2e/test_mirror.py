"""A real ``camvault serve`` mirroring over smart HTTP: admins' sockets get MIRROR_STATUS
frames, users' sockets do not, and the process's output never shows the token."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from git_server import GitHttpServer

from e2e.live import LiveClient
from e2e.server import Launcher, Server, git, run_cli, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "mirror-e2e-password"
TOKEN = "glpat-e2eE2Ee2eE2Ee2eE2E"
HDF5 = b"\x89HDF\r\n\x1a\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitHttpServer]:
    (tmp_path / "srv").mkdir()
    with GitHttpServer(tmp_path / "srv", TOKEN) as running:
        running.create_repo("vault.git")
        yield running


@pytest.fixture
def server(launch: Launcher, tmp_path: Path) -> Server:
    key = tmp_path / "etc" / "mirror.key"
    key.parent.mkdir()
    key.write_text(secrets.token_urlsafe(32))
    env = {
        "CAMVAULT_MIRROR_KEY_FILE": str(key),
        "CAMVAULT_MIRROR_RETRY_SECONDS": "0.1",
        "CAMVAULT_MIRROR_RETRY_MAX_SECONDS": "0.5",
        "CAMVAULT_MIRROR_POLL_SECONDS": "0.3",
        "CAMVAULT_MIRROR_BATCH_SECONDS": "0.05",
    }
    return launch.start(tmp_path / "data", admin_password=PASSWORD, env=env)


def mirror_frame(state: str, **expect: Any) -> Any:
    def match(frame: dict[str, Any]) -> bool:
        payload = frame["payload"] if frame["type"] == "MIRROR_STATUS" else {}
        return payload.get("state") == state and all(payload[k] == v for k, v in expect.items())

    return match


def head_of(server: Server) -> str:
    return git("--git-dir", str(server.data / "vault.git"), "rev-parse", "main").strip()


async def test_admins_see_pushes_and_failures_live_and_the_token_never_shows(
    server: Server, remote: GitHttpServer
) -> None:
    added = run_cli("user", "add", "ann", "--password-stdin", "--data", str(server.data),
                    stdin="ann-password-1\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    admin_token = server.login("admin", PASSWORD)
    admin_live = await LiveClient(server.base_url, admin_token).connect()
    user_live = await LiveClient(server.base_url, server.login("ann", "ann-password-1")).connect()
    with server.client(admin_token) as admin:
        response = admin.put(
            "/api/admin/mirror", json={"url": remote.url("vault.git"), "token": TOKEN}
        )
        assert response.status_code == 200, response.text
        assert upload(admin, "1234567_A1.mcam", HDF5 + b"first").status_code == 201
        await admin_live.wait_for(mirror_frame("synced", last_pushed=head_of(server)), 20)

        remote.stop()
        assert upload(admin, "1234567_A2.mcam", HDF5 + b"second").status_code == 201
        failing = await admin_live.wait_for(mirror_frame("failing", error_kind="unreachable"), 20)
        assert failing["payload"]["pending"] == 1

        remote.start()
        await admin_live.wait_for(mirror_frame("synced", last_pushed=head_of(server)), 20)
        status = admin.get("/api/admin/mirror").json()
        assert status["state"] == "synced" and status["failures"] == 0
    await asyncio.sleep(0.5)  # anything in flight to the user's socket has arrived
    assert "MIRROR_STATUS" not in user_live.types(), "only admins get mirror frames"
    assert "FILE_UPDATED" in user_live.types()
    for client in (admin_live, user_live):
        await client.close()
    server.stop()
    said = server.stdout() + server.stderr()
    assert "mirror push to" in said, "the failure was logged"
    assert TOKEN not in said and remote.auth_header().removeprefix("Basic ") not in said
    assert remote.unauthorized() == []
