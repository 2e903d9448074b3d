"""The event log: one row per state change, appended inside the change's own transaction.

It is the transactional outbox the live stream tails, the audit log and the activity feed.
The log's *epoch* (a random id made when the database is created) tells a client whose
saved seq comes from another database that it must take a fresh snapshot.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from camvault.store.db import Database
from camvault.store.models import events, meta

# The LISTEN/NOTIFY channel that announces new events on PostgreSQL.
CHANNEL = "camvault_events"


class EventType(StrEnum):
    FILE_UPLOADED = "file.uploaded"
    FILE_CHECKED_OUT = "file.checked_out"
    FILE_CHECKED_IN = "file.checked_in"
    FILE_CHECKOUT_CANCELLED = "file.checkout_cancelled"
    FILE_REVERTED = "file.reverted"
    FILE_LOCK_BROKEN = "file.lock_broken"
    FILE_DELETED = "file.deleted"
    FILE_RECOVERED = "file.recovered"
    INDEX_REBUILT = "index.rebuilt"
    USER_LOGGED_IN = "user.logged_in"
    USER_LOGGED_OUT = "user.logged_out"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    CONFIG_CHANGED = "config.changed"
    NOTIFICATION = "notification"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name
    # The git mirror: configured / removed by an admin (audit), and each push's outcome.
    MIRROR_CONFIGURED = "mirror.configured"
    MIRROR_REMOVED = "mirror.removed"
    MIRROR_PUSHED = "mirror.pushed"
    MIRROR_FAILED = "mirror.failed"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event row as a reader of the log gets it back (``data`` decoded from its JSON)."""

    seq: int
    type: str
    actor: str | None
    filename: str | None
    data: dict[str, Any]


# Built once (a statement caches its own cache key); the values are bound per call.
_INSERT_EVENT = insert(events).returning(events.c.seq)


def append(
    conn: Connection,
    type_: EventType,
    *,
    actor: str | None,
    filename: str | None = None,
    version: int | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one event in the caller's (write) transaction and return its seq.

    The row is also published (``Database.publish``): once the transaction commits, the
    hub fans it out from there instead of reading it back.
    """
    data = data or {}
    result = conn.execute(
        _INSERT_EVENT,
        {
            "at": at or datetime.now(UTC),
            "actor": actor,
            "type": str(type_),
            "filename": filename,
            "version": version,
            "data": data,
        },
    )
    seq = int(result.scalar_one())
    # Through JSON, as the column stores it: the same values a reader of the row gets,
    # and no dict shared with the caller, who may still change its own.
    stored = json.loads(json.dumps(data))
    Database.publish(conn, LoggedEvent(seq, str(type_), actor, filename, stored))
    if conn.dialect.name == "postgresql":
        # Delivered when this transaction commits, never before: other instances' hubs
        # wake and read the log (see events/listener.py). "<seq> <origin>": the seq is a
        # hint, and the writer's own hub, which the rows are handed to, skips its own.
        payload = f"{seq} {Database.origin_of(conn) or '-'}"
        conn.execute(text("SELECT pg_notify(:channel, :p)"), {"channel": CHANNEL, "p": payload})
    return seq


def latest_seq(conn: Connection) -> int:
    """The newest seq in the log (0 for an empty log)."""
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())


def get_meta(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    if get_meta(conn, key) is None:
        conn.execute(insert(meta).values(key=key, value=value))
    else:
        conn.execute(meta.update().where(meta.c.key == key).values(value=value))


def ensure_epoch(conn: Connection) -> str:
    """The log's epoch id, created on first use."""
    epoch = get_meta(conn, "epoch")
    if epoch is None:
        epoch = secrets.token_hex(8)
        set_meta(conn, "epoch", epoch)
    return epoch
