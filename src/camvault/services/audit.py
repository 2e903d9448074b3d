"""The audit log: the event log read back with filters, as JSON pages or as CSV.

Every state change already writes one event row in its own transaction (invariant 3), so
the audit log is a query, never a second record that could disagree with the first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, false, func, or_, select

from camvault.store.db import Database
from camvault.store.models import events
from camvault.store.queries import iso

MAX_PAGE = 1000
CSV_COLUMNS = ("seq", "at", "actor", "type", "filename", "version", "message", "details")
# A spreadsheet runs a cell that starts with one of these as a formula: names and
# messages are typed by users, so such cells are quoted as text (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilter:
    user: str | None = None
    file: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if any("\x00" in text for text in (self.user or "", self.file or "", *self.types)):
            # Nothing logged holds a NUL, and PostgreSQL refuses one in a query parameter.
            return query.where(false())
        if self.user:
            query = query.where(events.c.actor == self.user)
        if self.file:
            query = query.where(func.lower(events.c.filename) == self.file.lower())
        if self.types:
            # "file.checked_in" matches itself; "file" (or "file.") the whole family.
            query = query.where(
                or_(
                    *(events.c.type == t for t in self.types),
                    *(
                        events.c.type.startswith(t.rstrip(".") + ".", autoescape=True)
                        for t in self.types
                    ),
                )
            )
        if self.since is not None:
            query = query.where(events.c.at >= self.since)
        if self.until is not None:
            query = query.where(events.c.at < self.until)
        return query


def entry(row: Any) -> dict[str, Any]:
    """One event as the audit log shows it: who, when, what, which file and version, why."""
    data = dict(row.data or {})
    data.pop("file", None)  # the whole file record: the list's business, not the audit's
    message = data.pop("message", None) or data.pop("reason", None) or ""
    return {
        "seq": row.seq,
        "at": iso(row.at),
        "actor": row.actor,
        "type": row.type,
        "filename": row.filename,
        "version": row.version,
        "message": message,
        "details": data,
    }


def page(
    db: Database, where: AuditFilter, *, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first, ``limit`` at a time; the second value is the ``before`` of the next page."""
    limit = max(1, min(limit, MAX_PAGE))
    query = where.apply(select(events)).order_by(events.c.seq.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(events.c.seq < before)
    with db.read() as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [entry(r) for r in rows], (rows[-1].seq if more and rows else None)


def csv_lines(db: Database, where: AuditFilter) -> Iterator[str]:
    """The whole filtered log as CSV, read a page at a time (memory stays flat)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    yield _take(out)
    before: int | None = None
    while True:
        entries, before = page(db, where, limit=MAX_PAGE, before=before)
        for e in entries:
            details = "; ".join(f"{k}={v}" for k, v in sorted(e["details"].items()))
            writer.writerow([_cell(e[c]) for c in CSV_COLUMNS[:-1]] + [_cell(details)])
        yield _take(out)
        if before is None:
            return


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
