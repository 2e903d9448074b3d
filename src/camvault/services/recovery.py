"""Git is the history of record: replay into the database what git has and it lacks.

A process killed between its git commit and its database commit leaves a complete version
that only git knows. ``catch_up`` runs at startup and at the start of every git-writing
transaction and applies such commits from their trailers. A rebuild of the index from git
can replay the whole history the same way.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, delete, insert, select, update

from camvault.events.log import EventType, append, get_meta, set_meta
from camvault.history.repo import CommitInfo, VaultRepo
from camvault.names import group_of, name_key
from camvault.services.shop import stored_group_rule
from camvault.store.models import files, locks, users, versions
from camvault.store.queries import file_row, record_of

log = logging.getLogger("camvault.recovery")


def catch_up(conn: Connection, repo: VaultRepo) -> int:
    """Apply git commits the database has not seen yet (same transaction as the caller)."""
    # We hold the write lock, so a ref lock file can only be a dead process's leftover.
    if repo.clear_stale_ref_lock():
        log.warning("removed a stale lock on main left by a crashed writer")
    db_head = get_meta(conn, "git_head")
    git_head = repo.head
    if db_head == git_head:
        return 0
    applied = 0
    for info in repo.commits_since(db_head):
        apply_commit(conn, info)
        applied += 1
    if git_head is not None:
        set_meta(conn, "git_head", git_head)
    return applied


def index_commit(
    conn: Connection, info: CommitInfo, *, file_id: int | None, description: str | None = None
) -> int:
    """Write one commit's version into the file index and the versions table; returns the
    file id. ``description=None`` keeps the file's (a new file gets an empty one). The one
    place a commit becomes database rows, for live writes and recovered ones alike."""
    group, subgroup = group_of(info.filename, stored_group_rule(conn))
    values: dict[str, object] = {
        "filename": info.filename,
        "name_key": name_key(info.filename),
        "group_name": group,
        "subgroup": subgroup,
        "version": info.version,
        "revision": info.revision,
        "size": info.size,
        "sha256": info.sha256,
        "modified_at": info.when,
        "modified_by": info.author,
        "deleted": False,
        "link_target": info.link_target,
    }
    if description is not None:
        values["description"] = description
    if file_id is None:
        values.setdefault("description", "")
        file_id = conn.execute(insert(files).values(**values).returning(files.c.id)).scalar_one()
    else:
        conn.execute(update(files).where(files.c.id == file_id).values(**values))
    conn.execute(
        insert(versions).values(
            file_id=file_id,
            version=info.version,
            revision=info.revision,
            action=info.action,
            size=info.size,
            sha256=info.sha256,
            author=info.author,
            message=info.message,
            created_at=info.when,
            commit=info.commit,
        )
    )
    return int(file_id)


def apply_commit(conn: Connection, info: CommitInfo) -> None:
    """Record one camvault commit in the file index, versions and event log."""
    known = conn.execute(select(versions.c.id).where(versions.c.commit == info.commit)).first()
    if known is not None:
        return
    key = name_key(info.filename)
    row = file_row(conn, key, include_deleted=True)
    if info.action == "delete":
        if row is not None:
            conn.execute(update(files).where(files.c.id == row.id).values(deleted=True))
        append(
            conn,
            EventType.FILE_DELETED,
            actor=info.author,
            filename=info.filename,
            version=info.version,
            at=info.when,
            data={"filename": info.filename, "message": info.message, "recovered": True},
        )
        return
    file_id = index_commit(conn, info, file_id=None if row is None else row.id)
    if info.action == "checkin" and not info.lock_kept:
        # The check-in finished in git: finish it here too, but only the author's lock.
        holder = conn.execute(
            select(users.c.username)
            .select_from(locks.join(users, users.c.id == locks.c.user_id))
            .where(locks.c.file_id == file_id)
        ).scalar_one_or_none()
        if holder == info.author:
            conn.execute(delete(locks).where(locks.c.file_id == file_id))
    record = record_of(conn, info.filename)
    append(
        conn,
        EventType.FILE_RECOVERED,
        actor=info.author,
        filename=info.filename,
        version=info.version,
        at=info.when,
        data={"file": record, "message": info.message, "action": info.action},
    )
