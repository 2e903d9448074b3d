"""Rebuild the file index and versions from git, the history of record (``camvault rebuild``).

Everything runs in ONE exclusive write transaction (``Database.write``): a running server's
writes wait for it (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory lock) and then see the
rebuilt index, never half of it. Users, sessions, events and shop settings are not in git and
are left alone. Descriptions and locks are not in git either: they are carried over by file
name. A lock whose file is no longer live in git cannot exist (a lock belongs to a file row);
it is dropped, reported, and its holder gets a NOTIFICATION. Every file whose record differs
afterwards gets a ``file.recovered`` event (or ``file.deleted`` if it is gone), so running
servers' list caches and their live clients follow without a restart.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from camvault.errors import StorageError
from camvault.events.log import EventType, append, set_meta
from camvault.history.lfs import ContentStore
from camvault.history.repo import CommitInfo, VaultRepo, git_env, git_program
from camvault.names import name_key
from camvault.services.recovery import index_commit
from camvault.store.db import Database
from camvault.store.models import files, locks, meta, users, versions
from camvault.store.queries import grouped_records

CHUNK = 1024 * 1024


@dataclass
class RebuildReport:
    """What a rebuild found and changed."""

    commits: int = 0
    live_files: int = 0
    deleted_files: int = 0
    versions: int = 0
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    locks_kept: int = 0
    locks_dropped: list[tuple[str, str]] = field(default_factory=list)  # (filename, holder)
    restored_content: list[tuple[str, int]] = field(default_factory=list)
    missing_content: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Before:
    """What the database knew about one file before the rebuild."""

    filename: str
    description: str
    lock: tuple[int, Any, str, str] | None  # user id, since, message, holder name


def rebuild(db: Database, repo: VaultRepo, store: ContentStore) -> RebuildReport:
    """Replace the file index and versions with what git's ``main`` says (blocking)."""
    report = RebuildReport()
    with db.write() as conn:
        _rebuild_in(conn, repo, report)
    _check_content(repo, store, report)
    return report


def _rebuild_in(conn: Connection, repo: VaultRepo, report: RebuildReport) -> None:
    # We hold the write lock, so a ref lock file can only be a dead process's leftover.
    repo.clear_stale_ref_lock()
    before = _read_before(conn)
    old_records = _records(conn)
    conn.execute(delete(locks))
    conn.execute(delete(versions))
    conn.execute(delete(files))

    ids: dict[str, int] = {}
    deleted: set[str] = set()
    for info in repo.all_commits():
        report.commits += 1
        _apply(conn, info, ids, deleted, before)

    for key, old in before.items():
        if old.lock is None:
            continue
        user_id, since, message, holder = old.lock
        if key in ids and key not in deleted:
            conn.execute(
                insert(locks).values(
                    file_id=ids[key], user_id=user_id, since=since, message=message
                )
            )
            report.locks_kept += 1
            continue
        report.locks_dropped.append((old.filename, holder))
        append(
            conn,
            EventType.NOTIFICATION,
            actor=None,
            filename=old.filename,
            data={
                "to": holder,
                "kind": "lock_dropped",
                "filename": old.filename,
                "message": f"Your checkout of {old.filename} ended: the index was rebuilt "
                "from git, where the file is not (or no longer) in the vault.",
            },
        )

    new_records = _records(conn)
    for key, record in new_records.items():
        if old_records.get(key) != record:
            report.changed.append(record["filename"])
            append(
                conn,
                EventType.FILE_RECOVERED,
                actor=None,
                filename=record["filename"],
                version=record["version"],
                data={"file": record, "action": "rebuild"},
            )
    for key, record in old_records.items():
        if key not in new_records:
            report.removed.append(record["filename"])
            append(
                conn,
                EventType.FILE_DELETED,
                actor=None,
                filename=record["filename"],
                version=record["version"],
                data={"filename": record["filename"], "message": "not in the git history"},
            )

    head = repo.head
    if head is None:
        conn.execute(delete(meta).where(meta.c.key == "git_head"))
    else:
        set_meta(conn, "git_head", head)
    report.live_files = len(new_records)
    report.deleted_files = len(deleted)
    report.versions = int(conn.execute(select(func.count()).select_from(versions)).scalar_one())
    append(
        conn,
        EventType.INDEX_REBUILT,
        actor=None,
        data={
            "head": head,
            "files": report.live_files,
            "versions": report.versions,
            "changed": len(report.changed),
            "removed": len(report.removed),
            "locks_dropped": [name for name, _holder in report.locks_dropped],
        },
    )


def _apply(
    conn: Connection,
    info: CommitInfo,
    ids: dict[str, int],
    deleted: set[str],
    before: dict[str, _Before],
) -> None:
    """One commit into the fresh index, as crash recovery applies it (without its events)."""
    key = name_key(info.filename)
    if info.action == "delete":
        if key not in ids:
            raise StorageError(
                f"commit {info.commit} deletes {info.filename}, which git never added"
            )
        conn.execute(update(files).where(files.c.id == ids[key]).values(deleted=True))
        deleted.add(key)
        return
    if key in ids:
        index_commit(conn, info, file_id=ids[key])
    else:
        old = before.get(key)
        ids[key] = index_commit(
            conn, info, file_id=None, description=old.description if old else ""
        )
    deleted.discard(key)


def _read_before(conn: Connection) -> dict[str, _Before]:
    rows = conn.execute(
        select(
            files.c.name_key,
            files.c.filename,
            files.c.description,
            locks.c.user_id,
            locks.c.since,
            locks.c.message,
            users.c.username,
        ).select_from(
            files.outerjoin(locks, locks.c.file_id == files.c.id).outerjoin(
                users, users.c.id == locks.c.user_id
            )
        )
    ).all()
    out: dict[str, _Before] = {}
    for row in rows:
        lock = None
        if row.user_id is not None:
            lock = (row.user_id, row.since, row.message, row.username)
        out[row.name_key] = _Before(row.filename, row.description, lock)
    return out


def _records(conn: Connection) -> dict[str, dict[str, Any]]:
    return {
        name_key(record["filename"]): record
        for group in grouped_records(conn).values()
        for record in group
    }


def _check_content(repo: VaultRepo, store: ContentStore, report: RebuildReport) -> None:
    """Every version's bytes must be in the content store. Plain (non-LFS) files can be
    restored from their git blobs; missing LFS objects can only be reported."""
    restored: set[str] = set()
    for info in repo.all_commits():
        if info.action == "delete" or info.sha256 in restored or store.has(info.sha256):
            continue
        if repo.wants_lfs(info.filename):
            report.missing_content.append((info.filename, info.version, info.sha256))
            continue
        blob = repo.blob_id(info.commit, info.filename)
        _restore_blob(repo, store, blob, info.sha256)
        restored.add(info.sha256)
        report.restored_content.append((info.filename, info.version))


def _restore_blob(repo: VaultRepo, store: ContentStore, blob: str, sha256: str) -> None:
    """Stream a git blob into the content store (memory bounded), checking its sha256."""
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = store.tmp_dir / f"restore-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    try:
        with (
            tmp.open("wb") as out,
            subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [git_program(), "cat-file", "blob", blob],
                env=git_env(repo.path),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            ) as proc,
        ):
            while chunk := proc.stdout.read(CHUNK):  # type: ignore[union-attr]
                digest.update(chunk)
                out.write(chunk)
            if proc.wait() != 0:
                raise StorageError(f"git cat-file could not read blob {blob}")
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise StorageError(f"blob {blob} does not have the sha256 its commit names")
        store.adopt(tmp, sha256)
    finally:
        Path(tmp).unlink(missing_ok=True)
