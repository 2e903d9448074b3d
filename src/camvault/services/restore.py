"""``camvault restore``: check a backup as a whole, then bring it back into a new data dir.

Nothing is written before the manifest, the checksums of the database dump, the git bundle
and the object list, and the presence and size of every object have been checked. The data
dir is assembled in ``NEWDIR.partial`` and renamed into place at the end; a PostgreSQL
target is loaded in one transaction. So a failure leaves no half-restored vault behind.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Integer, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from camvault.errors import BackupError, CamvaultError
from camvault.events.log import set_meta
from camvault.history.lfs import ContentStore, check_sha256
from camvault.history.repo import MAIN_REF, VaultRepo
from camvault.services.backup import (
    DUMP,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    OBJECTS_DIR,
    PARTIAL_MARKER,
    NoProgress,
    Progress,
    copy_verified,
    file_sha256,
    object_path,
    run_git,
    staged_dir,
)
from camvault.services.recovery import catch_up
from camvault.settings import Settings
from camvault.store.db import MIGRATION_LOCK_KEY, Database, alembic_config, null_pool_engine
from camvault.store.dump import DumpError, load_dump
from camvault.store.models import files, metadata, versions


@dataclass(frozen=True)
class Manifest:
    """What a backup says it holds; every field checked when read."""

    created_at: str
    camvault_version: str
    revision: str
    dump_sha256: str
    dump_bytes: int
    rows: dict[str, int]
    bundle: str | None
    bundle_sha256: str | None
    bundle_bytes: int
    head: str | None
    commits: int
    object_list: str
    object_list_sha256: str
    objects: int
    object_bytes: int


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    seconds: float
    commits: int
    replayed: int
    objects: int
    rows: int


def read_manifest(src: Path) -> Manifest:
    """Parse ``src/manifest.json``; BackupError if it is missing, malformed or too new."""
    path = src / MANIFEST
    if not src.is_dir():
        raise BackupError(f"{src} is not a backup directory")
    if (src / PARTIAL_MARKER).exists() or not path.is_file():
        raise BackupError(f"{src} is not a complete backup (no {MANIFEST}): an interrupted one?")
    try:
        raw = orjson.loads(path.read_bytes())
        if raw["format"] != FORMAT_NAME:
            raise BackupError(f"{path} is not a camvault backup manifest")
        if not isinstance(raw["format_version"], int) or raw["format_version"] > FORMAT_VERSION:
            raise BackupError(
                f"the backup's format version {raw['format_version']} is newer than this "
                f"camvault understands ({FORMAT_VERSION}): restore it with a newer camvault"
            )
        database, git, lfs = raw["database"], raw["git"], raw["lfs"]
        manifest = Manifest(
            created_at=str(raw["created_at"]),
            camvault_version=str(raw["camvault_version"]),
            revision=_str(database["alembic_revision"]),
            dump_sha256=check_sha256(database["sha256"]),
            dump_bytes=_int(database["bytes"]),
            rows={str(k): _int(v) for k, v in database["rows"].items()},
            bundle=None if git["file"] is None else _str(git["file"]),
            bundle_sha256=None if git["file"] is None else check_sha256(git["sha256"]),
            bundle_bytes=0 if git["file"] is None else _int(git["bytes"]),
            head=None if git["head"] is None else _str(git["head"]),
            commits=_int(git["commits"]),
            object_list=_str(lfs["list"]),
            object_list_sha256=check_sha256(lfs["list_sha256"]),
            objects=_int(lfs["objects"]),
            object_bytes=_int(lfs["bytes"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackupError(f"{path} is damaged or malformed: {exc!r}") from exc
    for name in (DUMP, manifest.bundle, manifest.object_list):
        if name is not None and ("/" in name or name.startswith(".")):
            raise BackupError(f"{path} names a part outside the backup: {name!r}")
    if (manifest.bundle is None) != (manifest.head is None):
        raise BackupError(f"{path} is inconsistent: a git head without a bundle or back")
    _check_revision(manifest.revision)
    return manifest


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _check_revision(revision: str) -> None:
    """A schema this code knows can be migrated forward; an unknown one is newer: refuse."""
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = script.get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"the backup's database schema (revision {revision}) is newer than this camvault "
            f"(revision {script.get_current_head()}): restore it with a newer camvault"
        )


def verify_backup(src: Path, progress: Progress | None = None) -> tuple[Manifest, dict[str, int]]:
    """Check the manifest, each part's sha256 and each object's presence and size.

    Returns the manifest and the objects (sha256 -> size). Object contents are hashed again
    while a restore copies them.
    """
    progress = progress or NoProgress()
    src = Path(src).absolute()
    manifest = read_manifest(src)
    parts = [(DUMP, manifest.dump_sha256, manifest.dump_bytes)]
    if manifest.bundle is not None and manifest.bundle_sha256 is not None:
        parts.append((manifest.bundle, manifest.bundle_sha256, manifest.bundle_bytes))
    progress.stage("verifying", sum(size for _n, _s, size in parts), "bytes")
    for name, sha256, size in parts:
        path = src / name
        if not path.is_file():
            raise BackupError(f"the backup is incomplete: {name} is missing")
        if path.stat().st_size != size or file_sha256(path) != sha256:
            raise BackupError(f"the backup is damaged: {name} does not match its checksum")
        progress.advance(size)
    listing_path = src / manifest.object_list
    if not listing_path.is_file():
        raise BackupError(f"the backup is incomplete: {manifest.object_list} is missing")
    listing = listing_path.read_bytes()
    if hashlib.sha256(listing).hexdigest() != manifest.object_list_sha256:
        raise BackupError(f"the backup is damaged: {manifest.object_list} does not match")
    objects: dict[str, int] = {}
    try:
        for line in listing.decode("ascii").splitlines():
            sha256, _, count = line.partition(" ")
            objects[check_sha256(sha256)] = int(count)
    except ValueError as exc:
        raise BackupError(f"the backup is damaged: {manifest.object_list}: {exc}") from exc
    if len(objects) != manifest.objects or sum(objects.values()) != manifest.object_bytes:
        raise BackupError("the backup is damaged: its object list disagrees with the manifest")
    for sha256, size in objects.items():
        path = object_path(src / OBJECTS_DIR, sha256)
        if not path.is_file():
            raise BackupError(f"the backup is incomplete: content object {sha256} is missing")
        if path.stat().st_size != size:
            raise BackupError(f"the backup is damaged: content object {sha256} has the wrong size")
    return manifest, objects


def restore_backup(
    settings: Settings, src: Path, progress: Progress | None = None
) -> RestoreResult:
    """Restore the backup at ``src`` into ``settings.data`` (absent or empty) and database."""
    progress = progress or NoProgress()
    started = time.monotonic()
    src = Path(src).absolute()
    manifest, objects = verify_backup(src, progress)
    target = settings.data.absolute()
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BackupError(f"{target} is not a directory")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: restore into a new data directory")
    if settings.is_postgres:
        _require_empty_database(settings.sqlalchemy_url())
    with staged_dir(target, "restore") as stage:
        repo = _restore_git(stage / "vault.git", src, manifest, settings)
        work = stage / "tmp"
        work.mkdir()
        store = ContentStore(stage / "vault.git" / "lfs" / "objects", work)
        progress.stage("content", manifest.object_bytes, "bytes")
        for sha256, size in sorted(objects.items()):
            _restore_object(store, object_path(src / OBJECTS_DIR, sha256), sha256, size, progress)
        url = (
            settings.sqlalchemy_url()
            if settings.is_postgres
            else f"sqlite:///{stage / settings.db_path.name}"
        )
        progress.stage("database", sum(manifest.rows.values()), "rows")
        replayed = _restore_database(url, settings, src / DUMP, manifest, repo, objects, progress)
        work.rmdir()
    return RestoreResult(
        path=target,
        seconds=time.monotonic() - started,
        commits=manifest.commits,
        replayed=replayed,
        objects=len(objects),
        rows=sum(manifest.rows.values()),
    )


def _restore_git(path: Path, src: Path, manifest: Manifest, settings: Settings) -> VaultRepo:
    repo = VaultRepo.open_or_init(path, settings.lfs_extensions)
    if manifest.bundle is None:
        return repo
    run_git(
        path,
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
        str(src / manifest.bundle), f"{MAIN_REF}:{MAIN_REF}",
        config=("core.fsync=loose-object,pack,reference", "core.fsyncMethod=fsync"),
    )  # fmt: skip
    if repo.head != manifest.head:
        raise BackupError(f"the bundle's {MAIN_REF} is {repo.head}, not {manifest.head}")
    return repo


def _restore_object(
    store: ContentStore, source: Path, sha256: str, size: int, progress: Progress
) -> None:
    fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="restore-")
    tmp = Path(name)
    try:
        with source.open("rb") as src, open(fd, "wb") as out:
            copy_verified(src, out, sha256, size, progress)
        store.adopt(tmp, sha256)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy's own message lists the statement's parameters (password hashes among
    # them); the driver's first line says what went wrong without them.
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _require_empty_database(url: str) -> None:
    engine = null_pool_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot open the target database: {_first_line(exc)}") from exc
    finally:
        engine.dispose()
    if names:
        raise BackupError(
            f"the target database is not empty (tables: {', '.join(sorted(names)[:6])}): "
            "restore needs a new, empty database"
        )


def _restore_database(
    url: str,
    settings: Settings,
    dump: Path,
    manifest: Manifest,
    repo: VaultRepo,
    objects: dict[str, int],
    progress: Progress,
) -> int:
    """Load the dump into its own schema revision, migrate to head, replay later commits.

    One transaction: on PostgreSQL a failure leaves the database as empty as it was.
    """
    db = Database(url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with db.engine.connect() as conn, conn.begin():
            if not db.is_sqlite:
                # A server starting on this database meanwhile waits instead of migrating.
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                if inspect(conn).get_table_names():
                    raise BackupError("the target database is not empty")
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, manifest.revision)
            with gzip.open(dump, "rb") as lines:
                rows = load_dump(conn, lines, progress.advance)
            if rows != manifest.rows:
                raise BackupError("the database dump's row counts disagree with the manifest")
            command.upgrade(config, "head")
            if not db.is_sqlite:
                _reset_sequences(conn)
            # A new log epoch: a browser that saw seqs from the old server must take a
            # fresh snapshot, never wait for (or skip) seqs this restored log reuses.
            set_meta(conn, "epoch", secrets.token_hex(8))
            replayed = catch_up(conn, repo)
            _check_content(conn, objects)
            return replayed
    except (DumpError, OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"the database dump cannot be loaded: {exc}") from exc
    except CamvaultError as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"the backup is inconsistent: {exc.message}") from exc
    except SQLAlchemyError as exc:
        raise BackupError(f"the database dump cannot be loaded: {_first_line(exc)}") from exc
    finally:
        db.dispose()


def _reset_sequences(conn: Connection) -> None:
    """Rows came with their ids; move each serial sequence past them (PostgreSQL)."""
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        column = keys[0]
        sequence = func.pg_get_serial_sequence(table.name, column.name)
        following = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
        conn.execute(select(func.setval(sequence, following, False)))


def _check_content(conn: Connection, objects: dict[str, int]) -> None:
    """Every version the restored database lists must have its bytes in the content store."""
    needed = set(conn.execute(select(versions.c.sha256).distinct()).scalars())
    needed |= set(conn.execute(select(files.c.sha256).distinct()).scalars())
    missing = needed - objects.keys()
    if missing:
        raise BackupError(
            f"the backup is inconsistent: {len(missing)} version(s) have no content "
            f"(e.g. {sorted(missing)[0]})"
        )
