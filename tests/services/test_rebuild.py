"""``camvault rebuild``: the file index and versions come back from git, users and locks stay."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from helpers import Vault, checkin, mcam, upload
from sqlalchemy import delete, select, update

from camvault.core import Camvault
from camvault.history.repo import MAIN_REF
from camvault.services.auth import Role
from camvault.services.rebuild import rebuild
from camvault.store.models import events, files, locks, versions

pytestmark = pytest.mark.anyio

NC = b"%\nO1000\nG0 X0 Y0\nM30\n%\n"


async def build_history(vault: Vault) -> None:
    """Uploads, check-ins, a revert, a delete, a re-upload, a description and a held lock."""
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        assert (
            await upload(admin, "1234567_A1.mcam", mcam(b"v1"), description="bracket")
        ).is_success
        assert (await upload(bob, "7654321.nc", NC, message="program")).is_success
        assert (await upload(admin, "gone.vnc", b"old")).is_success
        await bob.post("/api/files/1234567_A1.mcam/checkout", json={"message": "edit"})
        assert (await checkin(bob, "1234567_A1.mcam", mcam(b"v2"), keep_locked="true")).is_success
        assert (await checkin(bob, "1234567_A1.mcam", mcam(b"v3"), keep_locked="true")).is_success
        reverted = await bob.post(
            "/api/files/1234567_A1.mcam/revert", json={"version": 1, "message": "back"}
        )
        assert reverted.is_success, reverted.text
        assert (await admin.delete("/api/files/gone.vnc")).status_code == 204
        assert (await upload(admin, "GONE.vnc", b"new life")).is_success
        await admin.post("/api/files/7654321.nc/checkout", json={"message": "mine"})


async def state(vault: Vault) -> dict[str, Any]:
    """Everything the API says about the files: records and every version of each."""
    async with await vault.login("admin") as admin:
        listing = (await admin.get("/api/files")).json()["groups"]
        out: dict[str, Any] = {"groups": listing, "versions": {}, "content": {}}
        for group in listing.values():
            for record in group:
                name = record["filename"]
                history = (await admin.get(f"/api/files/{name}/versions")).json()
                out["versions"][name] = history
                for v in history:
                    got = await admin.get(f"/api/files/{name}/content?version={v['version']}")
                    assert got.status_code == 200, got.text
                    assert hashlib.sha256(got.content).hexdigest() == v["sha256"]
    return out


def run_rebuild(camvault: Camvault) -> Any:
    vault = camvault.vault
    return rebuild(camvault.db, vault.repo, vault.store)


def event_types(camvault: Camvault, after: int = 0) -> list[str]:
    """The log's event types after ``after``, without logins (the test's own)."""
    with camvault.db.read() as conn:
        query = select(events.c.type).where(events.c.seq > after).order_by(events.c.seq)
        return [t for t in conn.execute(query).scalars() if not t.startswith("user.")]


def last_seq(camvault: Camvault) -> int:
    with camvault.db.read() as conn:
        return int(conn.execute(select(events.c.seq).order_by(events.c.seq.desc())).scalar() or 0)


async def test_a_rebuild_of_a_healthy_index_changes_nothing(vault: Vault) -> None:
    await build_history(vault)
    before = await state(vault)
    seq = last_seq(vault.camvault)
    report = run_rebuild(vault.camvault)
    assert await state(vault) == before
    assert report.changed == [] and report.removed == [] and report.locks_dropped == []
    assert report.locks_kept == 2
    # 4 versions of the .mcam, 1 of the .nc, 2 of the .vnc (deleted and uploaded again).
    assert (report.live_files, report.deleted_files, report.versions) == (3, 0, 7)
    # Nothing changed, so nothing is broadcast: only the audit line of the rebuild.
    assert event_types(vault.camvault, seq) == ["index.rebuilt"]


async def test_a_dropped_index_is_rebuilt_equal_to_the_original(vault: Vault) -> None:
    await build_history(vault)
    before = await state(vault)
    camvault = vault.camvault
    with camvault.db.write() as conn:
        # Drop the index but keep the file rows, which locks and descriptions hang on.
        conn.execute(delete(versions))
        conn.execute(update(files).values(version=99, sha256="0" * 64, size=1, deleted=True))
    seq = last_seq(camvault)
    report = run_rebuild(camvault)
    assert await state(vault) == before
    assert sorted(report.changed) == ["1234567_A1.mcam", "7654321.nc", "GONE.vnc"]
    # Each file the list lost comes back to running servers' clients as one event.
    assert sorted(event_types(camvault, seq)) == ["file.recovered"] * 3 + ["index.rebuilt"]


async def test_a_rebuild_into_an_empty_database_recovers_everything_but_locks_and_notes(
    vault: Vault,
) -> None:
    await build_history(vault)
    before = await state(vault)
    camvault = vault.camvault
    with camvault.db.write() as conn:
        conn.execute(delete(locks))
        conn.execute(delete(versions))
        conn.execute(delete(files))
    run_rebuild(camvault)
    after = await state(vault)
    assert after["versions"] == before["versions"]
    for group, records in before["groups"].items():
        for old, new in zip(records, after["groups"][group], strict=True):
            # Descriptions and locks live only in the database.
            assert {**old, "description": "", "lock": None} == new


async def test_a_lock_on_a_file_git_does_not_have_is_dropped_and_its_holder_told(
    vault: Vault,
) -> None:
    camvault = vault.camvault
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        assert (await upload(admin, "1111111.mcam", mcam(b"keep"))).is_success
        head = camvault.vault.repo.head
        assert (await upload(admin, "2222222.mcam", mcam(b"lost"))).is_success
        taken = await bob.post("/api/files/2222222.mcam/checkout", json={"message": "x"})
        assert taken.status_code == 200
        await bob.post("/api/files/1111111.mcam/checkout", json={"message": "y"})
    # git was restored from a copy older than the database (e.g. a mirror behind by one).
    repo_path = camvault.vault.repo.path
    (repo_path / MAIN_REF).write_text(f"{head}\n")

    seq = last_seq(camvault)
    report = run_rebuild(camvault)
    assert report.removed == ["2222222.mcam"]
    assert report.locks_dropped == [("2222222.mcam", "bob")]
    assert report.locks_kept == 1
    async with await vault.login("admin") as admin:
        listing = (await admin.get("/api/files")).json()["groups"]
    assert [r["filename"] for g in listing.values() for r in g] == ["1111111.mcam"]
    assert listing["11XXXXX"][0]["lock"]["user"] == "bob"
    with camvault.db.read() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.data).where(events.c.seq > seq).order_by(events.c.seq)
        ).all()
    notes = [r.data for r in rows if r.type == "notification"]
    assert [(n["to"], n["kind"], n["filename"]) for n in notes] == [
        ("bob", "lock_dropped", "2222222.mcam")
    ]
    assert [r.data["filename"] for r in rows if r.type == "file.deleted"] == ["2222222.mcam"]
    # The next write builds on git's main as it is now.
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "3333333.mcam", mcam(b"next"))).status_code == 201


async def test_users_sessions_and_the_event_log_survive_a_rebuild(vault: Vault) -> None:
    await build_history(vault)
    camvault = vault.camvault
    before_events = event_types(camvault)
    users_before = camvault.auth.list_users()
    async with await vault.login("bob") as bob:
        run_rebuild(camvault)
        assert (await bob.get("/api/files")).status_code == 200, "the session still works"
    assert camvault.auth.list_users() == users_before
    assert event_types(camvault)[: len(before_events)] == before_events
    camvault.auth.create_user("carol", Role.USER, "carol-password-1")


async def test_plain_content_missing_from_the_store_is_restored_from_git(vault: Vault) -> None:
    camvault = vault.camvault
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "7654321.nc", NC)).is_success
        assert (await upload(admin, "1234567.mcam", mcam(b"lfs"))).is_success
    store = camvault.vault.store
    nc_sha = hashlib.sha256(NC).hexdigest()
    mcam_sha = hashlib.sha256(mcam(b"lfs")).hexdigest()
    store.path_for(nc_sha).unlink()
    store.path_for(mcam_sha).unlink()
    report = run_rebuild(camvault)
    assert report.restored_content == [("7654321.nc", 1)]
    assert store.path_for(nc_sha).read_bytes() == NC
    assert report.missing_content == [("1234567.mcam", 1, mcam_sha)]
