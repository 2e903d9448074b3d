"""A portable dump of camvault's tables: gzip'd JSON lines that SQLite and PostgreSQL both load.

The first line names the format; each table then has a header line (its columns and how to
decode them), one JSON array per row, and a closing line with its row count; a last line
closes the dump, so a truncated file is an error, never a smaller database. The dump is
written from one read transaction (a single snapshot) and loaded through SQLAlchemy, so a
SQLite vault can be restored into PostgreSQL and back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import JSON, Connection, DateTime, MetaData, Table, insert, select

from camvault.store.queries import aware

FORMAT = "camvault-dump/1"
# Rows inserted per statement on load, and fetched per round trip on dump.
BATCH = 1000

Tick = Callable[[int], None]


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class DumpError(ValueError):
    """The dump is damaged or does not fit the schema it is loaded into."""


def _kind(table: Table, name: str) -> str:
    column_type = table.c[name].type
    if isinstance(column_type, DateTime):
        return "datetime"
    if isinstance(column_type, JSON):
        return "json"
    return "plain"


def _line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


def write_dump(
    conn: Connection, out: Writable, tables: Iterable[Table], tick: Tick | None = None
) -> dict[str, int]:
    """Write every row of ``tables`` (in that order) as read by ``conn``; returns row counts.

    ``conn`` should be inside one snapshot transaction (``Database.read()``) so the tables
    agree with each other.
    """
    counts: dict[str, int] = {}
    out.write(_line({"format": FORMAT}))
    for table in tables:
        names = [str(column.name) for column in table.columns]
        kinds = [_kind(table, name) for name in names]
        out.write(_line({"table": str(table.name), "columns": names, "kinds": kinds}))
        dated = [i for i, kind in enumerate(kinds) if kind == "datetime"]
        query = select(table).order_by(*table.primary_key.columns)
        rows = 0
        for row in conn.execution_options(yield_per=BATCH).execute(query):
            values = list(row)
            for i in dated:
                if values[i] is not None:
                    values[i] = aware(values[i]).isoformat()
            out.write(_line(values))
            rows += 1
            if tick is not None and rows % BATCH == 0:
                tick(BATCH)
        if tick is not None:
            tick(rows % BATCH)
        out.write(_line({"end": str(table.name), "rows": rows}))
        counts[str(table.name)] = rows
    out.write(_line({"end_of_dump": True, "tables": counts}))
    return counts


class _Loader:
    """Inserts one table's rows in batches into the table of that name in the target."""

    def __init__(self, conn: Connection, target: MetaData, header: dict[str, Any]) -> None:
        name = header.get("table")
        names = header.get("columns")
        kinds = header.get("kinds")
        if not isinstance(name, str) or not isinstance(names, list) or not isinstance(kinds, list):
            raise DumpError(f"malformed table header: {header!r}")
        if len(names) != len(kinds):
            raise DumpError(f"table {name}: {len(names)} columns but {len(kinds)} kinds")
        table = target.tables.get(name)
        if table is None:
            raise DumpError(f"the dump has table {name}, which the schema does not")
        missing = [column for column in names if column not in table.c]
        if missing:
            raise DumpError(f"table {name}: the schema has no column(s) {', '.join(missing)}")
        self.conn = conn
        self.table = table
        self.names: list[str] = names
        self.dated = [i for i, kind in enumerate(kinds) if kind == "datetime"]
        self.batch: list[dict[str, Any]] = []
        self.rows = 0

    def add(self, values: list[Any]) -> None:
        if len(values) != len(self.names):
            raise DumpError(f"table {self.table.name}: a row has {len(values)} values")
        for i in self.dated:
            if values[i] is not None:
                try:
                    values[i] = datetime.fromisoformat(values[i])
                except (TypeError, ValueError) as exc:
                    raise DumpError(f"table {self.table.name}: bad time {values[i]!r}") from exc
        self.batch.append(dict(zip(self.names, values, strict=True)))
        self.rows += 1
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.conn.execute(insert(self.table), self.batch)
            self.batch = []


def load_dump(conn: Connection, lines: Iterable[bytes], tick: Tick | None = None) -> dict[str, int]:
    """Insert a dump's rows into the (empty) tables ``conn`` sees; returns row counts.

    The tables are reflected from the database, so a dump is loaded into the schema of its
    own revision and migrations bring it forward afterwards.
    """
    target = MetaData()
    target.reflect(conn)
    counts: dict[str, int] = {}
    loader: _Loader | None = None
    finished = False
    started = False
    for number, raw in enumerate(lines, start=1):
        if finished:
            raise DumpError(f"line {number}: data after the end of the dump")
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DumpError(f"line {number} is not JSON: {exc}") from exc
        if not started:
            if not isinstance(item, dict) or item.get("format") != FORMAT:
                raise DumpError(f"not a {FORMAT} dump")
            started = True
        elif isinstance(item, list):
            if loader is None:
                raise DumpError(f"line {number}: a row outside any table")
            loader.add(item)
            if tick is not None and loader.rows % BATCH == 0:
                tick(BATCH)
        elif isinstance(item, dict) and "table" in item:
            if loader is not None:
                raise DumpError(f"line {number}: table {loader.table.name} was not closed")
            loader = _Loader(conn, target, item)
        elif isinstance(item, dict) and "end" in item:
            if loader is None or item["end"] != loader.table.name:
                raise DumpError(f"line {number}: closes a table that is not open")
            if item.get("rows") != loader.rows:
                raise DumpError(f"table {loader.table.name}: {loader.rows} rows, expected {item}")
            loader.flush()
            if tick is not None:
                tick(loader.rows % BATCH)
            counts[str(loader.table.name)] = loader.rows
            loader = None
        elif isinstance(item, dict) and item.get("end_of_dump") is True:
            if loader is not None or item.get("tables") != counts:
                raise DumpError("the dump's closing line does not match its tables")
            finished = True
        else:
            raise DumpError(f"line {number}: unexpected {str(item)[:80]!r}")
    if not finished:
        raise DumpError("the dump is truncated (no closing line)")
    return counts
