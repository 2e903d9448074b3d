"""Git is the history of record: a commit the database missed is applied on the next start."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from helpers import Vault, mcam, upload
from sqlalchemy import select

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings
from camvault.store.models import events

pytestmark = pytest.mark.anyio


def commit_behind_the_databases_back(
    camvault: Camvault, name: str, content: bytes, *, keep_lock: bool = False
) -> None:
    """What a crash between the git commit and the DB commit leaves behind."""
    vault = camvault.vault
    sha = vault.store.put_bytes(content)
    vault.repo.commit_change(
        filename=name, action="checkin", version=2, revision="1.1", sha256=sha,
        size=len(content), lfs=True, blob_id=None, author="admin", message="lost ack",
        when=datetime.now(UTC), expected_head=vault.repo.head, keep_lock=keep_lock,
    )  # fmt: skip


async def test_a_git_commit_the_database_missed_is_recovered_at_startup(
    vault: Vault, settings: Settings
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"v1"))
    commit_behind_the_databases_back(vault.camvault, "1234567.mcam", mcam(b"v2"))

    again = Camvault(settings)
    app = create_app(settings, again)
    async with app.router.lifespan_context(app):
        reopened = Vault(app, again)
        async with await reopened.login("admin") as admin:
            record = (await admin.get("/api/files/1234567.mcam")).json()
            assert (record["version"], record["revision"]) == (2, "1.1")
            assert record["sha256"] == hashlib.sha256(mcam(b"v2")).hexdigest()
            content = await admin.get("/api/files/1234567.mcam/content")
            assert content.content == mcam(b"v2")
            versions = (await admin.get("/api/files/1234567.mcam/versions")).json()
            assert [(v["version"], v["message"]) for v in versions] == [
                (2, "lost ack"),
                (1, "Add 1234567.mcam"),
            ]
        with again.db.read() as conn:
            types = conn.execute(select(events.c.type).order_by(events.c.seq)).scalars().all()
        assert types.count("file.recovered") == 1


async def test_the_next_write_catches_up_before_committing(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"v1"))
        commit_behind_the_databases_back(vault.camvault, "1234567.mcam", mcam(b"v2"))
        response = await upload(admin, "7654321.mcam", mcam(b"other"))
        assert response.status_code == 201
        record = (await admin.get("/api/files/1234567.mcam")).json()
        assert record["version"] == 2
    commits = vault.camvault.vault.repo.all_commits()
    assert [(c.filename, c.version) for c in commits] == [
        ("1234567.mcam", 1),
        ("1234567.mcam", 2),
        ("7654321.mcam", 1),
    ]


async def test_a_refused_upload_keeps_what_its_catch_up_replayed(vault: Vault) -> None:
    """An import killed between its git commit and its database commit, then run again:
    the new upload of that name is refused (it exists), and the replayed version stays."""
    camvault = vault.camvault
    content = mcam(b"imported")
    sha = camvault.vault.store.put_bytes(content)
    camvault.vault.repo.commit_change(
        filename="1234567.mcam", action="import", version=1, revision="1.0", sha256=sha,
        size=len(content), lfs=True, blob_id=None, author="admin", message="Import share",
        when=datetime.now(UTC), expected_head=camvault.vault.repo.head,
    )  # fmt: skip
    async with await vault.login("admin") as admin:
        refused = await upload(admin, "1234567.mcam", content)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "exists"
        record = (await admin.get("/api/files/1234567.mcam")).json()
        assert (record["version"], record["sha256"]) == (1, sha)


async def test_a_ref_lock_left_by_a_killed_writer_does_not_block_writes(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"v1"))
        # What kill -9 between libgit2's lock and rename leaves behind.
        lock = vault.camvault.vault.repo.path / "refs" / "heads" / "main.lock"
        lock.write_bytes(b"")
        response = await upload(admin, "7654321.mcam", mcam(b"v1"))
        assert response.status_code == 201, response.text
        assert not lock.exists()


@pytest.mark.parametrize("keep_lock", [False, True])
async def test_a_recovered_checkin_releases_the_lock_unless_it_was_kept(
    vault: Vault, keep_lock: bool
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"v1"))
        await admin.post("/api/files/1234567.mcam/checkout", json={})
        commit_behind_the_databases_back(
            vault.camvault, "1234567.mcam", mcam(b"v2"), keep_lock=keep_lock
        )
        await upload(admin, "7654321.mcam", mcam())  # the next write catches up
        record = (await admin.get("/api/files/1234567.mcam")).json()
    assert record["version"] == 2
    assert (record["lock"] is not None) == keep_lock
