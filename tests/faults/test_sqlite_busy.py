"""SQLite busy: another process holds the write lock longer than the busy timeout."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from anyio import to_thread
from helpers import PASSWORD, Vault, checkin, mcam, upload
from pydantic import SecretStr

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings

pytestmark = pytest.mark.anyio
NAME = "1234567_A1.mcam"


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    """A vault on SQLite whose writes give up after 0.3 s behind another writer."""
    settings = Settings(
        data=tmp_path / "data", admin_password=SecretStr(PASSWORD), sqlite_busy_timeout=0.3
    )
    camvault = Camvault(settings)
    app = create_app(settings, camvault)
    async with app.router.lifespan_context(app):
        await to_thread.run_sync(camvault.bootstrap_admin)
        yield Vault(app, camvault)


async def test_writes_behind_a_held_sqlite_lock_are_503_then_succeed(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    async with await vault.login("admin") as admin:
        assert (await upload(admin, NAME, mcam(b"v1"))).status_code == 201
        assert (await upload(admin, "7654321.mcam", mcam(b"other"))).status_code == 201
        assert (await admin.post(f"/api/files/{NAME}/checkout", json={})).status_code == 200

        # Another process (a backup, a second instance) holds the write lock.
        holder = sqlite3.connect(vault.camvault.settings.db_path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with caplog.at_level(logging.WARNING, logger="camvault.api"):
                refused = await checkin(admin, NAME, mcam(b"v2"), keep_locked="true")
                other = await admin.post("/api/files/7654321.mcam/checkout", json={})
            # Reads do not wait for a writer (WAL).
            listed = await admin.get("/api/files")
            assert listed.status_code == 200
        finally:
            holder.rollback()
            holder.close()

        for response in (refused, other):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert int(response.headers["retry-after"]) > 0
        assert "database unavailable" in caplog.text and "database is locked" in caplog.text

        # Nothing changed: no version, the lock as it was, no temp file left.
        record = (await admin.get(f"/api/files/{NAME}")).json()
        assert record["version"] == 1 and record["lock"]["user"] == "admin"
        other_record = (await admin.get("/api/files/7654321.mcam")).json()
        assert other_record["lock"] is None
        tmp = vault.camvault.tmp_dir
        assert sorted(p.name for p in tmp.iterdir()) == [".lock"]

        # The lock released, the same requests succeed without a restart.
        again = await checkin(admin, NAME, mcam(b"v2"), keep_locked="true")
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 2
        assert again.json()["sha256"] == hashlib.sha256(mcam(b"v2")).hexdigest()
        taken = await admin.post("/api/files/7654321.mcam/checkout", json={})
        assert taken.status_code == 200, taken.text
    commits = vault.camvault.vault.repo.all_commits()
    assert [(c.filename, c.version) for c in commits] == [
        (NAME, 1),
        ("7654321.mcam", 1),
        (NAME, 2),
    ]
