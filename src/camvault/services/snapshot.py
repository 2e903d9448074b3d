"""The grouped file list, serialized once per event-log position.

Every state change appends an event, so the newest seq identifies the list exactly: a
reader that finds the seq unchanged gets the cached JSON bytes without touching the file
index. The seq and the list are read in one transaction so they always agree.
"""

from __future__ import annotations

import threading

import orjson

from camvault.events.log import latest_seq
from camvault.store.db import Database
from camvault.store.queries import grouped_records


class SnapshotCache:
    """Caches the groups mapping as JSON bytes, keyed by the seq it reflects."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._seq = -1
        self._groups_json = b"{}"

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
                    return self._seq, self._groups_json
            groups_json = orjson.dumps(grouped_records(conn))
        with self._lock:
            if seq >= self._seq:
                self._seq, self._groups_json = seq, groups_json
        return seq, groups_json
