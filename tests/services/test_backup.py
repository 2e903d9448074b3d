"""Backup and restore: a consistent copy of a live vault, checked whole before it comes back."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
from anyio import from_thread, to_thread
from helpers import PASSWORD, Vault, checkin, fresh_postgres_database, mcam, upload
from sqlalchemy import Table, func, inspect, select

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.errors import BackupError
from camvault.events.log import get_meta
from camvault.services.auth import Role
from camvault.services.backup import (
    DUMP,
    MANIFEST,
    OBJECT_LIST,
    OBJECTS_DIR,
    PARTIAL_MARKER,
    NoProgress,
    create_backup,
    object_path,
)
from camvault.services.restore import restore_backup
from camvault.settings import Settings
from camvault.store.db import null_pool_engine
from camvault.store.models import events, locks, sessions, users
from camvault.store.queries import aware

pytestmark = pytest.mark.anyio

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")
TARGETS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]

Contents = dict[tuple[str, int], bytes]


@pytest.fixture(params=TARGETS)
def target_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Where a restore goes: SQLite in the new data dir, or another fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    assert PG_URL is not None
    with fresh_postgres_database(PG_URL) as url:
        yield url


def target_settings(tmp_path: Path, url: str | None, name: str = "restored") -> Settings:
    return Settings(data=tmp_path / name, database_url=url, admin_password=PASSWORD)


async def populate(vault: Vault) -> tuple[Contents, str]:
    """Versions of every kind (LFS and plain, check-in, revert, delete), a held lock and
    a live session; returns each version's bytes and that session's token."""
    contents: Contents = {}
    await to_thread.run_sync(vault.camvault.auth.create_user, "bob", Role.USER, PASSWORD)
    async with await vault.login("admin") as admin, await vault.login("bob") as bob:
        plan = {
            "1234567_A1.mcam": [mcam(os.urandom(3000)), mcam(b"\0" * 5000), mcam(b"v3")],
            "7654321_B2.nc": [b"%\nO1000\nG0 X0\nM30\n%\n", b"%\nO1000\nG0 X1\nM30\n%\n"],
            "fixture.vnc": [os.urandom(2000)],
            "gone.nc": [b"G0 X9\n"],
        }
        for name, versions in plan.items():
            first, *later = versions
            response = await upload(admin, name, first, description=f"about {name}")
            assert response.status_code == 201, response.text
            contents[(name, 1)] = first
            for number, content in enumerate(later, start=2):
                assert (await admin.post(f"/api/files/{name}/checkout", json={})).status_code == 200
                response = await checkin(admin, name, content, message=f"v{number}")
                assert response.status_code == 200, response.text
                contents[(name, number)] = content
        assert (await admin.post("/api/files/fixture.vnc/checkout", json={})).status_code == 200
        reverted = await admin.post("/api/files/fixture.vnc/revert", json={"version": 1})
        assert reverted.status_code == 200, reverted.text
        contents[("fixture.vnc", 2)] = contents[("fixture.vnc", 1)]
        assert (
            await admin.post("/api/files/fixture.vnc/cancel-checkout", json={})
        ).status_code == 200
        assert (await admin.delete("/api/files/gone.nc")).status_code == 204
        held = await bob.post("/api/files/7654321_B2.nc/checkout", json={"message": "edit"})
        assert held.status_code == 200, held.text
        token = bob.headers["Authorization"].removeprefix("Bearer ")
    return contents, token


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Vault]:
    camvault = Camvault(settings)
    app = create_app(settings, camvault)
    async with app.router.lifespan_context(app):
        yield Vault(app, camvault)


async def state_of(vault: Vault, contents: Contents) -> dict[str, object]:
    """What a user sees: the list, every version, and every version's bytes."""
    async with await vault.login("admin") as admin:
        groups = (await admin.get("/api/files")).json()["groups"]
        names = sorted({name for name, _ in contents})
        history = {}
        for name in names:
            if name == "gone.nc":
                continue
            history[name] = (await admin.get(f"/api/files/{name}/versions")).json()
            for entry in history[name]:
                response = await admin.get(f"/api/files/{name}/content?version={entry['version']}")
                assert response.status_code == 200, response.text
                assert response.content == contents[(name, entry["version"])], (name, entry)
    return {"groups": groups, "history": history}


def table_rows(camvault: Camvault, table: Table) -> list[tuple[object, ...]]:
    """Rows in key order, times made aware (SQLite hands them back naive), comparable
    across backends."""
    with camvault.db.read() as conn:
        rows = conn.execute(select(table).order_by(*table.primary_key.columns))
        return [tuple(aware(v) if isinstance(v, datetime) else v for v in row) for row in rows]


async def test_restore_brings_back_files_versions_users_locks_and_the_event_log(
    vault: Vault, settings: Settings, target_url: str | None, tmp_path: Path
) -> None:
    contents, token = await populate(vault)
    before = await state_of(vault, contents)
    backup = tmp_path / "backup"
    result = await to_thread.run_sync(create_backup, settings, backup)
    assert result.commits == 9 and result.objects == 7 and result.bytes > 0

    restored_settings = target_settings(tmp_path, target_url)
    done = await to_thread.run_sync(restore_backup, restored_settings, backup)
    assert (done.commits, done.replayed, done.objects) == (9, 0, 7)

    async with opened(restored_settings) as restored:
        for table in (users, locks, events):
            assert table_rows(restored.camvault, table) == table_rows(vault.camvault, table)
        assert table_rows(restored.camvault, sessions) == []
        assert await state_of(restored, contents) == before
        groups = before["groups"]
        assert isinstance(groups, dict)
        (program,) = [f for f in groups["76XXXXX"] if f["filename"] == "7654321_B2.nc"]
        assert program["lock"]["user"] == "bob", "locks are live state and are kept"
        with restored.camvault.db.read() as new, vault.camvault.db.read() as old:
            assert get_meta(new, "git_head") == get_meta(old, "git_head")
            assert get_meta(new, "epoch") != get_meta(old, "epoch"), "clients must resync"
        async with restored.client(token) as stale:
            assert (await stale.get("/api/files")).status_code == 401, "sessions stay behind"
        async with await restored.login("bob") as bob:
            response = await checkin(bob, "7654321_B2.nc", b"%\nO1000\nG0 X2\nM30\n%\n")
            assert response.status_code == 200, response.text
            assert response.json()["version"] == 3, "ids and sequences continue after restore"


async def test_commits_after_the_database_snapshot_are_replayed_on_restore(
    vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    contents, _token = await populate(vault)
    late = mcam(b"written while the backup ran")

    async def check_in_late() -> None:
        async with await vault.login("bob") as bob:
            response = await checkin(bob, "7654321_B2.nc", late, message="late")
            assert response.status_code == 200, response.text

    class BetweenSnapshotAndBundle(NoProgress):
        """Checks in right after the database was dumped and before git is bundled."""

        def stage(self, description: str, total: int | None, unit: str) -> None:
            if description == "git history":
                from_thread.run(check_in_late)

    backup = tmp_path / "backup"
    await to_thread.run_sync(create_backup, settings, backup, BetweenSnapshotAndBundle())
    manifest = json.loads((backup / MANIFEST).read_text())
    assert manifest["database"]["git_head"] != manifest["git"]["head"]

    restored_settings = target_settings(tmp_path, None)
    done = await to_thread.run_sync(restore_backup, restored_settings, backup)
    assert done.replayed == 1
    async with opened(restored_settings) as restored:
        async with await restored.login("bob") as bob:
            record = (await bob.get("/api/files/7654321_B2.nc")).json()
            assert record["version"] == 3 and record["lock"] is None, "check-in replayed"
            content = await bob.get("/api/files/7654321_B2.nc/content")
            assert content.content == late


async def test_a_backup_is_readable_by_its_owner_only(
    vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    await populate(vault)
    backup = tmp_path / "backup"
    await to_thread.run_sync(create_backup, settings, backup)
    entries = [backup, *backup.rglob("*")]
    assert {p.name for p in backup.iterdir()} == {
        MANIFEST,
        DUMP,
        "vault.bundle",
        OBJECT_LIST,
        "lfs",
    }
    for path in entries:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"
    with gzip.open(backup / DUMP, "rt") as dump:
        tables = [json.loads(line)["table"] for line in dump if line.startswith('{"table"')]
    assert "users" in tables and "sessions" not in tables


async def test_a_backup_never_overwrites_and_an_interrupted_one_is_never_complete(
    vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    await populate(vault)
    backup = tmp_path / "backup"
    backup.mkdir()
    with pytest.raises(BackupError, match="already exists"):
        await to_thread.run_sync(create_backup, settings, backup)
    backup.rmdir()

    class Interrupt(NoProgress):
        def stage(self, description: str, total: int | None, unit: str) -> None:
            if description == "content":
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await to_thread.run_sync(create_backup, settings, backup, Interrupt())
    assert not backup.exists() and not (tmp_path / "backup.partial").exists()

    # What kill -9 leaves: a marked partial directory. Restore refuses it; backup clears it.
    partial = tmp_path / "backup.partial"
    partial.mkdir()
    (partial / PARTIAL_MARKER).touch()
    with pytest.raises(BackupError, match="not a complete backup"):
        restore_backup(target_settings(tmp_path, None), partial)
    await to_thread.run_sync(create_backup, settings, backup)
    assert (backup / MANIFEST).is_file() and not partial.exists()


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def first_object(backup: Path) -> Path:
    listing = (backup / OBJECT_LIST).read_text().split()
    return object_path(backup / OBJECTS_DIR, listing[0])


def rewrite_manifest(backup: Path, change: dict[str, object]) -> None:
    manifest = json.loads((backup / MANIFEST).read_text())
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = manifest
        for part in parents:
            node = node[part]
        node[key] = value
    (backup / MANIFEST).write_text(json.dumps(manifest))


DAMAGE = {
    "no manifest": (lambda b: (b / MANIFEST).unlink(), "not a complete backup"),
    "manifest not json": (lambda b: (b / MANIFEST).write_text("{"), "damaged or malformed"),
    "dump bit flip": (lambda b: flip_byte(b / DUMP, 40), "database.jsonl.gz does not match"),
    "bundle truncated": (
        lambda b: (b / "vault.bundle").write_bytes((b / "vault.bundle").read_bytes()[:-20]),
        "vault.bundle does not match",
    ),
    "object missing": (lambda b: first_object(b).unlink(), "is missing"),
    "object bit flip": (lambda b: flip_byte(first_object(b)), "is damaged"),
    "object list edited": (
        lambda b: (b / OBJECT_LIST).write_text(""),
        "lfs-objects.txt does not match",
    ),
    "newer format": (lambda b: rewrite_manifest(b, {"format_version": 99}), "newer camvault"),
    "newer schema": (
        lambda b: rewrite_manifest(b, {"database.alembic_revision": "9999_from_the_future"}),
        "newer than this camvault",
    ),
}


# Damage is found before any database work, so one backend shows it.
@pytest.mark.parametrize("database_url", [None])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
async def test_a_damaged_backup_is_refused_and_nothing_is_restored(
    vault: Vault, settings: Settings, tmp_path: Path, damage: str
) -> None:
    await populate(vault)
    backup = tmp_path / "backup"
    await to_thread.run_sync(create_backup, settings, backup)
    spoil, message = DAMAGE[damage]
    spoil(backup)
    target = target_settings(tmp_path, None)
    with pytest.raises(BackupError, match=message):
        await to_thread.run_sync(restore_backup, target, backup)
    assert not target.data.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "data"], "no left-overs"


async def test_a_dump_that_fails_to_load_leaves_the_target_untouched(
    vault: Vault, settings: Settings, target_url: str | None, tmp_path: Path
) -> None:
    """Checksums match (the manifest was rewritten too), but the rows do not fit: the load
    fails half-way and is rolled back as a whole."""
    await populate(vault)
    backup = tmp_path / "backup"
    await to_thread.run_sync(create_backup, settings, backup)
    with gzip.open(backup / DUMP, "rt") as dump:
        lines = dump.read().splitlines(keepends=True)
    # Duplicate the last versions row: a primary key clash after several tables loaded.
    end = next(i for i, line in enumerate(lines) if line.startswith('{"end":"versions"'))
    lines.insert(end, lines[end - 1])
    spoiled = gzip.compress("".join(lines).encode())
    (backup / DUMP).write_bytes(spoiled)
    rewrite_manifest(
        backup,
        {"database.sha256": hashlib.sha256(spoiled).hexdigest(), "database.bytes": len(spoiled)},
    )
    target = target_settings(tmp_path, target_url)
    with pytest.raises(BackupError, match="cannot be loaded"):
        await to_thread.run_sync(restore_backup, target, backup)
    assert not target.data.exists() and not (tmp_path / "restored.partial").exists()
    if target_url is not None:
        engine = null_pool_engine(target.sqlalchemy_url())
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == [], "the load is one transaction"
        engine.dispose()


async def test_restore_refuses_a_data_dir_or_database_in_use(
    vault: Vault, settings: Settings, target_url: str | None, tmp_path: Path
) -> None:
    await populate(vault)
    backup = tmp_path / "backup"
    await to_thread.run_sync(create_backup, settings, backup)

    busy = target_settings(tmp_path, target_url)
    busy.data.mkdir()
    (busy.data / "camvault.db").write_bytes(b"someone's data")
    with pytest.raises(BackupError, match="not empty"):
        await to_thread.run_sync(restore_backup, busy, backup)
    assert (busy.data / "camvault.db").read_bytes() == b"someone's data"

    if target_url is not None:
        # A database that already holds a vault: refused, and left as it was.
        first = target_settings(tmp_path, target_url, "first")
        await to_thread.run_sync(restore_backup, first, backup)
        second = target_settings(tmp_path, target_url, "second")
        with pytest.raises(BackupError, match="target database is not empty"):
            await to_thread.run_sync(restore_backup, second, backup)
        assert not second.data.exists()
        async with opened(first) as restored:
            with restored.camvault.db.read() as conn:
                assert conn.execute(select(func.count()).select_from(users)).scalar_one() == 2


async def test_an_empty_vault_backs_up_and_restores(
    vault: Vault, settings: Settings, target_url: str | None, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    result = await to_thread.run_sync(create_backup, settings, backup)
    assert (result.commits, result.objects) == (0, 0)
    assert not (backup / "vault.bundle").exists()
    restored_settings = target_settings(tmp_path, target_url)
    restored_settings.data.mkdir()  # an empty data dir is as good as none
    await to_thread.run_sync(restore_backup, restored_settings, backup)
    async with opened(restored_settings) as restored:
        async with await restored.login("admin") as admin:
            response = await upload(admin, "1234567.mcam", mcam(b"first"))
            assert response.status_code == 201, response.text
