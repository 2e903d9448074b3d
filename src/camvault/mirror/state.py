"""The mirror's row in the database, the status admins see, and the one-pusher lock.

State lives in the database so every instance on it answers GET alike; the push lock
(a PostgreSQL advisory lock, or an ``flock`` in the data dir on SQLite) makes sure only
one process pushes at a time.
"""

from __future__ import annotations

import fcntl
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select, text

from camvault.store.db import WRITER_LOCK_KEY, Database
from camvault.store.models import mirror
from camvault.store.queries import aware, iso

MIRROR_LOCK_KEY = WRITER_LOCK_KEY + 2  # next to the writer and migration locks


@dataclass(frozen=True)
class MirrorRow:
    url: str
    username: str
    token_ciphertext: str | None
    key_id: str | None
    generation: int
    configured_at: datetime
    configured_by: str
    push_requested: bool
    last_pushed: str | None
    last_pushed_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    error_kind: str | None
    failures: int
    next_retry_at: datetime | None


def load(conn: Connection) -> MirrorRow | None:
    row = conn.execute(select(mirror).where(mirror.c.id == 1)).mappings().first()
    if row is None:
        return None
    values = {key: row[key] for key in MirrorRow.__dataclass_fields__}
    for key in ("configured_at", "last_pushed_at", "last_attempt_at", "next_retry_at"):
        if values[key] is not None:
            values[key] = aware(values[key])
    return MirrorRow(**values)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def unconfigured() -> dict[str, Any]:
    return {
        "configured": False, "state": "unconfigured", "url": None, "username": None,
        "token": None, "last_pushed": None, "last_pushed_at": None, "pending": None,
        "last_attempt_at": None, "last_error": None, "error_kind": None, "failures": 0,
        "next_retry_at": None, "configured_at": None, "configured_by": None,
    }  # fmt: skip


def status(row: MirrorRow | None, pending: int, token_source: str | None) -> dict[str, Any]:
    """What GET answers and MIRROR_STATUS carries; never the token, only where it is from."""
    if row is None:
        return unconfigured()
    if row.last_error is not None:
        state = "failing"
    elif pending:
        state = "pending"
    else:
        state = "synced"
    return {
        "configured": True,
        "state": state,
        "url": row.url,
        "username": row.username,
        "token": token_source,
        "last_pushed": row.last_pushed,
        "last_pushed_at": _iso(row.last_pushed_at),
        "pending": pending,
        "last_attempt_at": _iso(row.last_attempt_at),
        "last_error": row.last_error,
        "error_kind": row.error_kind,
        "failures": row.failures,
        "next_retry_at": _iso(row.next_retry_at),
        "configured_at": iso(row.configured_at),
        "configured_by": row.configured_by,
    }


def retry_delay(failures: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half the step fixed, half random, capped."""
    step = min(cap, base * 2.0 ** min(failures - 1, 30))
    return step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not a secret


def now() -> datetime:
    return datetime.now(UTC)


def later(seconds: float) -> datetime:
    return now() + timedelta(seconds=seconds)


class PushLock:
    """Held by the one process that pushes; others skip their turn."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.path = data_dir / "mirror.lock"

    def acquire(self) -> object | None:
        """The held lock, or None if another process holds it (blocking, never waits)."""
        if not self.db.is_sqlite:
            conn = self.db.engine.connect()
            try:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": MIRROR_LOCK_KEY}
                ).scalar_one()
                conn.commit()  # a session lock: it outlives this transaction
            except BaseException:
                conn.close()
                raise
            if got:
                return conn
            conn.close()
            return None
        handle: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed in release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def release(self, held: object) -> None:
        if isinstance(held, Connection):
            try:
                held.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIRROR_LOCK_KEY})
                held.commit()
            finally:
                held.close()
        elif hasattr(held, "close"):
            held.close()
