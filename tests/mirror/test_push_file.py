"""The mirror pushes to a bare repository over file://: every version, LFS objects first."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from e2e.server import git
from helpers import Vault
from protocol_schema import validate_frame

from camvault.events.hub import Connection
from mirror.util import (
    MIRROR,
    Versions,
    clone_and_check,
    diverge,
    remote_lfs_objects,
    synced_at,
    vault_head,
    wait_status,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(path))
    return path


async def test_every_version_reaches_the_remote_and_a_clone_is_byte_for_byte(
    vault: Vault, remote: Path, tmp_path: Path
) -> None:
    async with await vault.login("admin") as admin:
        versions = Versions(admin)
        await versions.some(4)
        response = await admin.put(MIRROR, json={"url": f"file://{remote}"})
        assert response.status_code == 200, response.text
        await versions.some(5, start=4)
        head = vault_head(vault.camvault.settings.data)
        status = await wait_status(admin, synced_at(head))
    assert status["last_error"] is None and status["failures"] == 0
    assert git("--git-dir", str(remote), "rev-parse", "main").strip() == head
    assert versions.lfs_sha256 <= remote_lfs_objects(remote), "old versions' objects too"
    clone_and_check(f"file://{remote}", tmp_path / "clone", versions.current, head)


async def test_a_remote_that_goes_away_is_retried_and_caught_up_with_nothing_lost(
    vault: Vault, remote: Path, tmp_path: Path
) -> None:
    data = vault.camvault.settings.data
    async with await vault.login("admin") as admin:
        versions = Versions(admin)
        assert (await admin.put(MIRROR, json={"url": f"file://{remote}"})).status_code == 200
        await versions.some(3)
        await wait_status(admin, synced_at(vault_head(data)))

        away = remote.with_name("away.git")
        remote.rename(away)
        await versions.some(4, start=3)  # check-ins go on while the remote is gone
        failing = await wait_status(admin, lambda s: s["failures"] >= 3)
        assert failing["state"] == "failing" and failing["error_kind"] == "unreachable"
        assert failing["next_retry_at"] is not None and failing["pending"] >= 1
        assert "does not appear to be a git repository" in failing["last_error"]

        away.rename(remote)
        await versions.some(2, start=7)
        head = vault_head(data)
        status = await wait_status(admin, synced_at(head))
    assert status["last_error"] is None and status["next_retry_at"] is None
    assert versions.lfs_sha256 <= remote_lfs_objects(remote)
    clone_and_check(f"file://{remote}", tmp_path / "clone", versions.current, head)


async def next_mirror_frame(conn: Connection, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await conn.queue.get())
            validate_frame(frame)
            if frame["type"] == "MIRROR_STATUS":
                return frame


async def test_a_diverged_remote_is_an_error_admins_see_live_and_in_get(
    vault: Vault, remote: Path, tmp_path: Path
) -> None:
    hub = vault.camvault.hub
    watcher = Connection("admin", "t1", 256, is_admin=True)
    bystander = Connection("ann", "t2", 256, is_admin=False)
    for conn in (watcher, bystander):
        await hub.attach(conn, None, None)
    async with await vault.login("admin") as admin:
        versions = Versions(admin)
        await versions.some(2)
        assert (await admin.put(MIRROR, json={"url": f"file://{remote}"})).status_code == 200
        await wait_status(admin, synced_at(vault_head(vault.camvault.settings.data)))

        stray = diverge(f"file://{remote}", tmp_path / "elsewhere")
        await versions.some(1, start=2)
        status = await wait_status(admin, lambda s: s["error_kind"] == "diverged")
        assert status["state"] == "failing" and status["pending"] == 1
        assert stray[:12] in status["last_error"]
        assert git("--git-dir", str(remote), "rev-parse", "main").strip() == stray

        frame = await next_mirror_frame(watcher)
        while frame["payload"]["error_kind"] != "diverged":
            frame = await next_mirror_frame(watcher)
        assert frame["payload"]["last_error"] == status["last_error"]
        assert isinstance(frame["seq"], int) and "prev" not in frame

        # The shop's IT puts the remote back; "push now" skips the backoff.
        git("--git-dir", str(remote), "update-ref", "refs/heads/main", status["last_pushed"])
        response = await admin.post(f"{MIRROR}/push")
        assert response.status_code == 202
        head = vault_head(vault.camvault.settings.data)
        await wait_status(admin, synced_at(head))
        frame = await next_mirror_frame(watcher)
        while frame["payload"]["state"] != "synced":
            frame = await next_mirror_frame(watcher)
        assert frame["payload"]["last_pushed"] == head
    while not bystander.queue.empty():
        assert json.loads(bystander.queue.get_nowait())["type"] != "MIRROR_STATUS"
    for conn in (watcher, bystander):
        hub.detach(conn)


async def test_a_failing_mirror_clears_by_itself_once_the_remote_exists(
    vault: Vault, tmp_path: Path
) -> None:
    later = tmp_path / "later.git"
    async with await vault.login("admin") as admin:
        await Versions(admin).some(2)
        assert (await admin.put(MIRROR, json={"url": f"file://{later}"})).status_code == 200
        await wait_status(admin, lambda s: s["failures"] >= 2)
        git("init", "--quiet", "--bare", "--initial-branch=main", str(later))
        # No new commit, no "push now": the retry alone brings it in sync.
        await wait_status(admin, synced_at(vault_head(vault.camvault.settings.data)))
