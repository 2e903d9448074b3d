"""GET /api/files with 2,000 and with 100,000 files.

Goals (from the issue): 2,000 files <= 20 ms, 100,000 files <= 400 ms. The database is
filled before the server starts: 2,000 files through the real service layer (a git commit
and a database transaction each, as an upload makes them), 100,000 rows with SQLAlchemy
Core (100,000 git commits would take hours) plus one event per batch. 1% of files are
checked out so the lock join is exercised.

Reported per size: cold (the first request after start), warm (the server caches the
serialized list per event seq) and uncached (a checkout or cancel just before each timed
request moves the seq, so the list is rebuilt). Times include reading the whole body.

    .venv/bin/python bench/list_files.py [--quick] [--profile]
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from contextlib import closing, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _measure as m
import _server as b

SIZES = (2_000, 100_000)
GOALS_MS = {2_000: 20.0, 100_000: 400.0}
LOCKED_SHARE = 0.01


def file_names(count: int, seed: int) -> list[str]:
    """Shop-like names: ~90% part numbers (grouped by their 7 digits), ~10% Misc."""
    rng = random.Random(seed)
    names: set[str] = set()
    parts = [f"{rng.randrange(1_000_000, 9_999_999):07d}" for _ in range(max(1, count // 8))]
    while len(names) < count:
        if rng.random() < 0.9:
            part = rng.choice(parts)
            names.add(f"{part}_OP{rng.randrange(1, 60)}_REV{rng.choice('ABCDEFG')}.mcam")
        else:
            names.add(f"fixture-{rng.choice(['plate', 'vise', 'jaw', 'clamp'])}-{len(names)}.mcam")
    return sorted(names)


def populate_service(data: Path, count: int) -> None:
    """Each file as an upload commits it: git commit + file/version rows + event."""
    from camvault.services.auth import Role
    from camvault.services.uploads import ReceivedUpload

    rng = random.Random(7)
    with b.open_vault(data) as camvault:
        admin = camvault.auth.create_user(b.ADMIN, Role.ADMIN, b.ADMIN_PASSWORD)
        vault = camvault.vault
        names = file_names(count, seed=11)
        for name in names:
            body = b.HDF5 + rng.randbytes(24)
            upload = ReceivedUpload(
                tmp_path=Path("/nonexistent"),  # the commit step reads only size and sha
                filename=name,
                size=rng.randrange(200_000, 80_000_000),
                sha256=hashlib.sha256(body).hexdigest(),
                head=body,
            )
            description = f"Op {rng.randrange(1, 60)} roughing + finishing, {rng.choice('ABC')}"
            vault.commit_upload(admin, name, upload, None, description, f"Add {name}")
        locked = names[:: int(1 / LOCKED_SHARE)]
        vault.db.write_each(
            [lambda conn, n=n: vault._checkout(conn, admin, n, "bench lock") for n in locked]
        )


def populate_core(data: Path, count: int, batch: int = 5_000) -> None:
    """Rows straight into ``files`` and ``locks`` (SQLAlchemy Core), one event per batch."""
    from sqlalchemy import insert, select

    from camvault.events.log import EventType, append
    from camvault.names import group_of, name_key
    from camvault.services.auth import Role
    from camvault.store.models import files, locks

    rng = random.Random(13)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with b.open_vault(data) as camvault:
        admin = camvault.auth.create_user(b.ADMIN, Role.ADMIN, b.ADMIN_PASSWORD)
        names = file_names(count, seed=17)
        for offset in range(0, count, batch):
            rows = []
            for name in names[offset : offset + batch]:
                group, subgroup = group_of(name)
                version = rng.randrange(1, 30)
                rows.append(
                    {
                        "filename": name,
                        "name_key": name_key(name),
                        "group_name": group,
                        "subgroup": subgroup,
                        "description": f"Op {rng.randrange(1, 60)} roughing + finishing",
                        "version": version,
                        "revision": f"{1 + version // 10}.{version % 10}",
                        "size": rng.randrange(200_000, 80_000_000),
                        "sha256": hashlib.sha256(name.encode()).hexdigest(),
                        "modified_at": start + timedelta(minutes=rng.randrange(0, 900_000)),
                        "modified_by": rng.choice(["admin", "u1", "u2", "u3"]),
                        "deleted": False,
                    }
                )
            with camvault.db.write() as conn:
                conn.execute(insert(files), rows)
                ids = conn.execute(
                    select(files.c.id).where(files.c.filename.in_(r["filename"] for r in rows))
                ).scalars()
                locked = [
                    {"file_id": i, "user_id": admin.id, "since": start, "message": "bench lock"}
                    for i in ids
                    if rng.random() < LOCKED_SHARE
                ]
                if locked:
                    conn.execute(insert(locks), locked)
                append(
                    conn,
                    EventType.FILE_RECOVERED,
                    actor=b.ADMIN,
                    data={"bench": "populate", "rows": len(rows)},
                )


def timed_get(http: b.SyncHttp) -> tuple[float, int]:
    start = time.perf_counter()
    status, body = http.request("GET", "/api/files")
    elapsed = time.perf_counter() - start
    b.check(status, body, 200, what="GET /api/files")
    return elapsed, len(body)


def measure(
    server: b.Server, count: int, warm_n: int, uncached_n: int, profile: bool
) -> tuple[list[m.Row], dict[str, Any], dict[str, Any]]:
    token = b.login(server.base_url)
    goal = GOALS_MS[count]
    with closing(b.SyncHttp(server.base_url, token)) as http:
        with closing(b.SyncHttp(server.base_url, token)) as mover:
            http.request("GET", "/api/auth/me")  # connect + authenticate outside the clock
            cold, size = timed_get(http)
            warm = [timed_get(http)[0] for _ in range(warm_n)]
            # A file nobody holds, toggled to move the event seq before each uncached GET.
            target = _unlocked_file(http)
            uncached: list[float] = []
            spy = m.PySpy(server.pid, f"list-{count}-uncached") if profile else nullcontext()
            with m.CpuMonitor([server.pid]) as cpu, spy:
                for i in range(uncached_n):
                    action = "checkout" if i % 2 == 0 else "cancel-checkout"
                    b.check(*mover.request("POST", f"/api/files/{target}/{action}", {}), 200)
                    uncached.append(timed_get(http)[0])
            b.check(*mover.request("POST", f"/api/files/{target}/cancel-checkout"), 200, 409)
    w, u = m.dist_ms(warm), m.dist_ms(uncached)
    label = f"{count:,} files"
    rows = [
        m.goal_le(f"{label}: cold (first request)", cold * 1000, goal, "ms",
                  f"body {size / b.MB:.1f} MB"),
        m.goal_le(f"{label}: warm p50", w["p50"], goal, "ms", f"n={w['n']}"),
        m.goal_le(f"{label}: warm p99", w["p99"], goal, "ms", f"max {w['max']:.1f}"),
        m.goal_le(f"{label}: uncached p50", u["p50"], goal, "ms", f"n={u['n']}"),
        m.goal_le(f"{label}: uncached p99", u["p99"], goal, "ms",
                  f"max {u['max']:.1f}; uncached/warm p50 {u['p50'] / w['p50']:.1f}x"),
        m.ratio(f"{label}: uncached p50 / warm p50", u["p50"], w["p50"],
                "rebuilding the list vs serving the cached one, same run"),
        cpu.row(f"{label} uncached"),
    ]  # fmt: skip
    extra: dict[str, Any] = {"cold_ms": cold * 1000, "warm": w, "uncached": u, "bytes": size}
    if isinstance(spy, m.PySpy):
        extra["profile"] = spy.print_summary()
    chart = m.distribution(
        f"GET /api/files, {label}",
        {"warm (cached)": m.ms(warm), "uncached (after a change)": m.ms(uncached)},
        goal=goal,
    )
    return rows, extra, chart


def _unlocked_file(http: b.SyncHttp) -> str:
    status, body = http.request("GET", "/api/files")
    b.check(status, body, 200)
    for records in json.loads(body)["groups"].values():
        for record in records:
            if record["lock"] is None:
                return str(record["filename"])
    raise RuntimeError("every file is locked")


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    rows: list[m.Row] = []
    extra: dict[str, Any] = {}
    charts: list[dict[str, Any]] = []
    for count in SIZES:
        with b.temp_data_dir(f"list{count}") as data:
            m.step(f"populating {count:,} files")
            started = time.perf_counter()
            if count <= 5_000:
                populate_service(data, count)
            else:
                populate_core(data, count)
            extra[f"populate_{count}_s"] = time.perf_counter() - started
            m.step(f"populated in {extra[f'populate_{count}_s']:.1f} s; measuring")
            m.wait_for_quiet(max_wait=10)
            with b.running_server(data) as server:
                big = count >= 10_000
                warm_n = (10 if quick else 30) if big else (50 if quick else 200)
                uncached_n = (4 if quick else 12) if big else (20 if quick else 100)
                size_rows, extra[str(count)], chart = measure(
                    server, count, warm_n, uncached_n, m.wants_profile() and m.PySpy.available()
                )
                rows += size_rows
                charts.append(chart)
    m.print_table("GET /api/files", rows)
    m.write_result("list_files", rows, extra, charts)


if __name__ == "__main__":
    main()
