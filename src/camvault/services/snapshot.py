"""The grouped file list, kept current from the event log instead of rebuilt per change.

Every state change appends an event, and every file event carries the file's full record
as of that change. So the cache loads the list once, then applies the events after its
seq: it patches the records they name and re-serializes only the groups they touched.
A GET for an unchanged list costs one ``max(seq)`` query. The seq and the list are read in
one transaction, so they always agree.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
from sqlalchemy import Connection, select

from camvault.events.log import EventType, latest_seq
from camvault.names import name_key
from camvault.store.db import Database
from camvault.store.models import events
from camvault.store.queries import grouped_records

# More events than this since the cached seq: reloading is cheaper than replaying.
REPLAY_LIMIT = 5000
_UPDATES = {
    str(EventType.FILE_UPLOADED),
    str(EventType.FILE_CHECKED_OUT),
    str(EventType.FILE_CHECKED_IN),
    str(EventType.FILE_CHECKOUT_CANCELLED),
    str(EventType.FILE_REVERTED),
    str(EventType.FILE_LOCK_BROKEN),
    str(EventType.FILE_RECOVERED),
}
_REMOVALS = {str(EventType.FILE_DELETED)}
# A new group rule moves files between groups without a file event: reload the list.
_CONFIG = str(EventType.CONFIG_CHANGED)


def _group_order(group: str) -> tuple[bool, str]:
    return (group == "Misc", group)


class SnapshotCache:
    """The groups mapping as JSON bytes, current as of the newest event (thread-safe)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._seq = -1
        self._groups: dict[str, dict[str, dict[str, Any]]] = {}  # group -> key -> record
        self._group_of: dict[str, str] = {}  # name key -> group
        self._fragments: dict[str, bytes] = {}  # group -> its JSON array
        self._json = b"{}"

    def get(self) -> tuple[int, bytes]:
        """``(seq, b'{"seq": n, "groups": {...}}')`` for GET /api/files (blocking)."""
        seq, groups = self.groups_json()
        return seq, b'{"seq":%d,"groups":' % seq + groups + b"}"

    def groups_json(self) -> tuple[int, bytes]:
        """``(seq, groups mapping as JSON bytes)``, current as of the newest event."""
        with self.db.read() as conn:
            seq = latest_seq(conn)
            with self._lock:
                if seq == self._seq:
                    return self._seq, self._json
                if 0 <= self._seq < seq and seq - self._seq <= REPLAY_LIMIT:
                    self._replay(conn, seq)
                else:
                    self._load(conn, seq)
                return self._seq, self._json

    def _load(self, conn: Connection, seq: int) -> None:
        self._groups, self._group_of = {}, {}
        for group, records in grouped_records(conn).items():
            self._groups[group] = {}
            for record in records:
                self._put(record)
        self._fragments = {g: self._serialize(g) for g in self._groups}
        self._seq = seq
        self._assemble()

    def _replay(self, conn: Connection, seq: int) -> None:
        rows = conn.execute(
            select(events.c.type, events.c.filename, events.c.data)
            .where(events.c.seq > self._seq, events.c.seq <= seq)
            .where(events.c.type.in_(_UPDATES | _REMOVALS | {_CONFIG}))
            .order_by(events.c.seq)
        ).all()
        if any(row.type == _CONFIG and row.data.get("regrouped") for row in rows):
            self._load(conn, seq)
            return
        touched: set[str] = set()
        for row in rows:
            if row.type == _CONFIG:
                continue
            if row.type in _REMOVALS:
                touched.update(self._drop(row.data.get("filename") or row.filename))
            else:
                record = row.data["file"]
                touched.update(self._drop(record["filename"]))
                touched.add(self._put(record))
        for group in touched:
            if self._groups.get(group):
                self._fragments[group] = self._serialize(group)
            else:
                self._groups.pop(group, None)
                self._fragments.pop(group, None)
        self._seq = seq
        if touched:
            self._assemble()

    def _put(self, record: dict[str, Any]) -> str:
        key = name_key(record["filename"])
        group = str(record["group"])
        self._groups.setdefault(group, {})[key] = record
        self._group_of[key] = group
        return group

    def _drop(self, filename: str | None) -> list[str]:
        if not filename:
            return []
        key = name_key(filename)
        group = self._group_of.pop(key, None)
        if group is None:
            return []
        self._groups[group].pop(key, None)
        return [group]

    def _serialize(self, group: str) -> bytes:
        records = self._groups[group]
        # Sorted by the case-insensitive key in Python, never by a database collation, so
        # a full load and a replay give byte-identical lists on SQLite and PostgreSQL.
        return orjson.dumps([records[k] for k in sorted(records)])

    def _assemble(self) -> None:
        parts = [
            orjson.dumps(group) + b":" + self._fragments[group]
            for group in sorted(self._fragments, key=_group_order)
        ]
        self._json = b"{" + b",".join(parts) + b"}"
