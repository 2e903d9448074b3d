"""Several instances on one database: one pushes at a time, all report the same status."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e.server import git
from helpers import Vault, mcam, upload

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.mirror.state import PushLock
from camvault.settings import Settings
from mirror.util import MIRROR, Versions, synced_at, vault_head, wait_status

pytestmark = pytest.mark.anyio


def test_the_push_lock_admits_one_process_at_a_time(settings: Settings) -> None:
    first, second = Camvault(settings), Camvault(settings)
    first.open_sync()
    second.open_sync()
    try:
        one, two = PushLock(first.db, settings.data), PushLock(second.db, settings.data)
        held = one.acquire()
        assert held is not None
        assert two.acquire() is None, "a second pusher must wait its turn"
        one.release(held)
        again = two.acquire()
        assert again is not None, "released means free"
        assert one.acquire() is None
        two.release(again)
    finally:
        first.close()
        second.close()


async def test_every_instance_reports_the_same_status(
    vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    other = Camvault(settings)
    app = create_app(settings, other)
    async with app.router.lifespan_context(app):
        second = Vault(app, other)
        async with await vault.login("admin") as admin, await second.login("admin") as admin2:
            assert (await admin.put(MIRROR, json={"url": f"file://{remote}"})).status_code == 200
            versions = Versions(admin)
            await versions.some(3)
            head = vault_head(settings.data)
            here = await wait_status(admin, synced_at(head))
            there = await wait_status(admin2, synced_at(head))
            assert here == there
            # A commit through the second instance is pushed as well (by either of them).
            response = await upload(admin2, "9999999_Z.mcam", mcam(b"via the second"))
            assert response.status_code == 201, response.text
            head = vault_head(settings.data)
            assert await wait_status(admin, synced_at(head)) == await wait_status(
                admin2, synced_at(head)
            )
    assert git("--git-dir", str(remote), "rev-parse", "main").strip() == head
