"""The grouped file list, serialized once per event-log position.

Every state change appends an event, so the newest seq identifies the list exactly: a
reader that finds the seq unchanged gets the cached JSON bytes without touching the file
index. The seq and the list are read in one transaction so they always agree.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from camvault.events.log import latest_seq
from camvault.store.db import Database
from camvault.store.queries import grouped_records


class SnapshotCache:
    """Caches ``{"seq": n, "groups": {...}}`` as bytes, keyed by seq."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._seq = -1
        self._body = b""
        self._groups: dict[str, list[dict[str, Any]]] = {}

    def get(self) -> tuple[int, bytes]:
        """The newest list as ``(seq, json bytes)`` (blocking; call from a thread)."""
        return self._current()[:2]

    def groups(self) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        """The newest list as ``(seq, groups)``; callers must not mutate the mapping."""
        seq, _body, groups = self._current()
        return seq, groups

    def _current(self) -> tuple[int, bytes, dict[str, list[dict[str, Any]]]]:
        with self.db.read() as conn:
            seq = latest_seq(conn)
            with self._lock:
                if seq == self._seq:
                    return self._seq, self._body, self._groups
            groups = grouped_records(conn)
        body = orjson.dumps({"seq": seq, "groups": groups})
        with self._lock:
            if seq >= self._seq:
                self._seq, self._body, self._groups = seq, body, groups
        return seq, body, groups
