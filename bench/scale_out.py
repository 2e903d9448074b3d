"""Scale-out: two ``camvault serve`` instances on one PostgreSQL database and one data dir.

1. Live fan-out across instances. N WebSocket clients, half connected to each instance
   (bench/_ws.py fleets). One change at a time, alternately through instance A and B
   (checkout / cancel-checkout of a file per instance): t0 = time.monotonic() just before
   the POST, and every client notes when its FILE_UPDATED for that seq arrives. Half the
   clients are on the other instance, reached through the event log + LISTEN/NOTIFY.
   Goal (issue 7): change -> last client p99 <= 100 ms with N=5,000. The clients run on
   the same cores as the servers, so the run also reports the CPU floor: the servers' and
   clients' CPU per change over the core count, about the soonest the last one can be
   reached on this machine.
2. Checkouts per second across instances: 50 users, each looping checkout -> cancel on its
   own file with no think time (a closed loop: it measures capacity), all on one instance,
   then split over both. Every write takes the PostgreSQL advisory lock, so two instances
   share one serialized writer: the second instance adds no write capacity, only CPU for
   everything else.

A fresh database is created on the PostgreSQL server for the run and dropped afterwards
(server: CAMVAULT_BENCH_DATABASE_URL, else CAMVAULT_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test).

    .venv/bin/python bench/scale_out.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import _measure as m
import _server as b
import _ws
from checkout import run_variant
from sqlalchemy import text
from sqlalchemy.engine import make_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
FILES = ("1234567_A1.mcam", "7654321_B2.mcam")  # the file each instance's changer toggles
USERS = 50
WARMUP = 2
GOAL_MS = 100.0
GOAL_CLIENTS = 5000


def plan() -> list[tuple[int, int, int]]:
    """(clients, worker processes per instance, measured changes) per phase."""
    if "--quick" in sys.argv[1:]:
        return [(2, 1, 6), (1000, 1, 10)]
    return [(2, 1, 10), (1000, 1, 20), (5000, 2, 30)]


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new database on the bench's PostgreSQL server; dropped afterwards."""
    from camvault.store.db import null_pool_engine

    server = (
        os.environ.get("CAMVAULT_BENCH_DATABASE_URL")
        or os.environ.get("CAMVAULT_TEST_DATABASE_URL")
        or DEFAULT_PG
    )
    name = f"camvault_bench_{secrets.token_hex(4)}"
    admin = null_pool_engine(
        make_url(server).set(drivername="postgresql+psycopg").render_as_string(False)
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def add_users(data: Any, database_url: str, names: list[str]) -> None:
    """The admin and ``names``, created in-process (as bench/_server.add_users, on PG)."""
    from camvault.services.auth import Role

    with b.open_vault(data, database_url=database_url) as camvault:
        camvault.auth.create_user(b.ADMIN, Role.ADMIN, b.ADMIN_PASSWORD)
        for name in names:
            camvault.auth.create_user(name, Role.USER, b.USER_PASSWORD)


# --- 1. fan-out across instances ------------------------------------------------------------


def run_fanout(
    servers: list[b.Server],
    token: str,
    changers: list[_ws.Changer],
    clients: int,
    processes: int,
    changes: int,
) -> dict[str, Any]:
    m.step(f"N={clients}: connecting {clients // 2} clients to each instance")
    with ExitStack() as stack:
        fleets = [
            stack.enter_context(
                _ws.Fleets(
                    server.base_url,
                    token,
                    clients // 2,
                    processes,
                    record_arrivals=True,
                    concurrency=64,
                    seed=i,
                )
            )
            for i, server in enumerate(servers)
        ]
        started = time.monotonic()
        ready = [_ws.merge(f.wait_ready()) for f in fleets]
        connect_s = time.monotonic() - started
        if sum(r["ready"] for r in ready) != clients:
            raise RuntimeError(f"not every client connected: {ready}")
        m.step(f"N={clients}: connected in {connect_s:.1f} s; {WARMUP + changes} changes")
        time.sleep(1.0)
        log: list[dict[str, Any]] = []
        last_seq = 0
        client_pids = [p for f in fleets for p in f.pids]
        pids = [s.pid for s in servers] + client_pids
        server_cpu0 = sum(_ws.proc_cpu_seconds(s.pid) for s in servers)
        client_cpu0 = sum(_ws.proc_cpu_seconds(p) for p in client_pids)
        wall0 = time.monotonic()
        with m.CpuMonitor(pids) as cpu:
            for i in range(WARMUP + changes):
                for f in fleets:
                    f.clear_inbox()
                via = i % 2
                t0, response_s = changers[via].change()
                done = [f.wait_done(last_seq, timeout=15) for f in fleets]
                seqs = {message[1] for d in done for message in d.values()}
                if len(seqs) > 1:
                    raise RuntimeError(f"workers finished different seqs: {seqs}")
                seq = seqs.pop() if seqs else -1
                last_seq = max(last_seq, seq)
                complete = all(len(d) == processes for d in done)
                log.append(
                    {
                        "seq": seq,
                        "t0": t0,
                        "via": via,
                        "response_s": response_s,
                        "warmup": i < WARMUP,
                        "complete": complete,
                    }  # fmt: skip
                )
                time.sleep(random.uniform(0.05, 0.15))
        wall = time.monotonic() - wall0
        server_cpu = sum(_ws.proc_cpu_seconds(s.pid) for s in servers) - server_cpu0
        client_cpu = sum(_ws.proc_cpu_seconds(p) for p in client_pids) - client_cpu0
        finals = [f.stop(arrivals=True) for f in fleets]
    # arrivals[instance][seq] = every client's arrival time on that instance
    arrivals: list[dict[int, list[float]]] = []
    for per_instance in finals:
        merged: dict[int, list[float]] = {}
        for final in per_instance:
            for seq, times in final.get("arrivals", {}).items():
                merged.setdefault(seq, []).extend(times)
        arrivals.append(merged)
    measured = [c for c in log if not c["warmup"]]
    last, same, other, median, missing = [], [], [], [], 0
    for c in measured:
        here = arrivals[c["via"]].get(c["seq"], [])
        there = arrivals[1 - c["via"]].get(c["seq"], [])
        missing += clients - len(here) - len(there)
        if here and there:
            last.append(max(*here, *there) - c["t0"])
            median.append(statistics.median([*here, *there]) - c["t0"])
            same.append(max(here) - c["t0"])
            other.append(max(there) - c["t0"])
    totals = _ws.merge([s for per in finals for s in per])
    return {
        "clients": clients,
        "connect_s": connect_s,
        "last": last,
        "same": same,
        "other": other,
        "median": median,
        "response": [c["response_s"] for c in measured],
        "missing": missing,
        "incomplete": sum(1 for c in measured if not c["complete"]),
        "changes": len(measured),
        "gaps": totals.get("gaps", 0),
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "all_changes": WARMUP + changes,
        "wall_s": wall,
        "cpu": cpu,
    }


def fanout_rows(r: dict[str, Any]) -> list[m.Row]:
    n = r["clients"]
    label = f"N={n:,} (2 x {n // 2:,})"
    last, same, other = m.dist_ms(r["last"]), m.dist_ms(r["same"]), m.dist_ms(r["other"])
    note = f"p50 {last['p50']:.1f}, max {last['max']:.1f} ms over {last['n']} changes"
    if n == GOAL_CLIENTS:
        first = m.goal_le(f"{label}: last client p99", last["p99"], GOAL_MS, "ms", note)
    else:
        first = m.info(f"{label}: last client p99", last["p99"], "ms", note)
    response = m.dist_ms(r["response"])
    return [
        first,
        m.info(f"{label}: last client p50", last["p50"], "ms", f"max {last['max']:.1f} ms"),
        m.info(
            f"{label}: last on the changing instance p99",
            same["p99"],
            "ms",
            f"p50 {same['p50']:.1f} ms (its own hub, woken by its own commit)",
        ),
        m.info(
            f"{label}: last on the other instance p99",
            other["p99"],
            "ms",
            f"p50 {other['p50']:.1f} ms (woken by LISTEN/NOTIFY)",
        ),
        m.info(
            f"{label}: HTTP response p50",
            response["p50"],
            "ms",
            f"p99 {response['p99']:.1f} ms (t0 -> answer of the change)",
        ),
        m.info(
            f"{label}: frames not delivered",
            r["missing"],
            "frames",
            f"of {n * r['changes']:,}; {r['incomplete']} changes incomplete in 15 s; "
            f"{r['gaps']} gaps seen by clients",
        ),
        m.info(
            f"{label}: connect all clients",
            r["connect_s"],
            "s",
            f"{n / r['connect_s']:.0f} connections/s over both instances",
        ),
        m.info(
            f"{label}: servers' CPU",
            100 * r["server_cpu_s"] / r["wall_s"],
            "% of a core",
            "both instances together, over the changes",
        ),
        m.info(
            f"{label}: CPU floor for the last client",
            floor_ms(r),
            "ms",
            "(both servers' + all clients' CPU per change) / cores: about the soonest "
            "this machine can reach the last client",
        ),
        r["cpu"].row(label),
    ]


def floor_ms(r: dict[str, Any]) -> float:
    """The servers and the clients share the machine's cores: one change costs them this
    much CPU in all, so even a perfect spread over every core takes this long."""
    per_change = (r["server_cpu_s"] + r["client_cpu_s"]) / r["all_changes"]
    return 1000 * per_change / (os.cpu_count() or 1)


# --- 2. checkouts per second across instances -----------------------------------------------


def checkout_rows(label: str, samples: dict[str, list[float]], wall: float) -> list[m.Row]:
    checkout = m.dist_ms(samples["checkout"])
    cancel = m.dist_ms(samples["cancel"])
    cycles = len(samples["cancel"])
    requests = sum(len(v) for v in samples.values())
    return [
        m.info(
            f"{label}: checkouts per second",
            len(samples["checkout"]) / wall,
            "/s",
            f"{requests / wall:.0f} req/s, {cycles / wall:.0f} checkout+cancel cycles/s, "
            f"{wall:.1f} s",
        ),
        m.info(
            f"{label}: checkout p50",
            checkout["p50"],
            "ms",
            f"p99 {checkout['p99']:.1f}; cancel p50 {cancel['p50']:.1f}, p99 {cancel['p99']:.1f}",
        ),
    ]


async def split_variant(
    servers: list[b.Server], tokens: list[str], files: list[str], seconds: float
) -> tuple[dict[str, list[float]], float]:
    """Users 0, 2, 4... on instance A and 1, 3, 5... on B, all at once."""
    halves = await asyncio.gather(
        *(
            run_variant(server.base_url, tokens[i::2], files[i::2], seconds)
            for i, server in enumerate(servers)
        )
    )
    samples: dict[str, list[float]] = {}
    for part, _wall in halves:
        for op, values in part.items():
            samples.setdefault(op, []).extend(values)
    return samples, max(wall for _part, wall in halves)


def run_checkouts(
    servers: list[b.Server], admin: str, seconds: float
) -> tuple[list[m.Row], dict[str, Any]]:
    users = [f"u{i}" for i in range(1, USERS + 1)]
    files = [f"{3000000 + i:07d}_OP1.mcam" for i in range(USERS)]
    m.step(f"uploading {USERS} files; logging in {USERS} users")
    with b.client(servers[0].base_url, admin) as http:
        for name in files:
            b.upload_small(http, name, b.mcam_bytes(4096))
    tokens = [b.login(servers[i % 2].base_url, user) for i, user in enumerate(users)]
    asyncio.run(split_variant(servers, tokens, files, 1.0))  # warm-up, both instances
    rows: list[m.Row] = []
    pids = [s.pid for s in servers]
    m.step(f"checkouts: {USERS} users on instance A, {seconds:.0f} s")
    with m.CpuMonitor(pids) as cpu:
        one, one_wall = asyncio.run(run_variant(servers[0].base_url, tokens, files, seconds))
    rows += checkout_rows(f"{USERS} users, one instance", one, one_wall)
    rows.append(cpu.row("one instance"))
    m.step(f"checkouts: {USERS} users split over A and B, {seconds:.0f} s")
    with m.CpuMonitor(pids) as cpu:
        two, two_wall = asyncio.run(split_variant(servers, tokens, files, seconds))
    rows += checkout_rows(f"{USERS} users, two instances", two, two_wall)
    rows.append(cpu.row("two instances"))
    rows.append(
        m.ratio(
            "checkouts per second, two instances / one",
            len(two["checkout"]) / two_wall,
            len(one["checkout"]) / one_wall,
            "one advisory lock serializes writes: ~1 expected",
        )
    )
    chart = m.distribution(
        f"checkout, {USERS} users in a closed loop",
        {"one instance": m.ms(one["checkout"]), "two instances": m.ms(two["checkout"])},
    )
    return rows, chart


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    nofile = _ws.raise_nofile()
    m.step(f"RLIMIT_NOFILE {nofile} (inherited by the servers and the client processes)")
    rows: list[m.Row] = []
    extra: dict[str, Any] = {"phases": []}
    charts: list[dict[str, Any]] = []
    last_p99: dict[int, float] = {}
    floors: dict[int, float] = {}
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        data = stack.enter_context(b.temp_data_dir("scaleout"))
        m.step(f"creating the admin and {USERS} users (argon2) on a fresh PostgreSQL database")
        add_users(data, url, [f"u{i}" for i in range(1, USERS + 1)])
        env = {"CAMVAULT_DATABASE_URL": url}
        servers = [stack.enter_context(b.running_server(data, env=env)) for _ in range(2)]
        token = b.login(servers[0].base_url)
        _ws.add_files(servers[0].base_url, token, list(FILES))
        changers = [
            _ws.Changer(s.base_url, token, name) for s, name in zip(servers, FILES, strict=True)
        ]
        m.wait_for_quiet()
        for clients, processes, changes in plan():
            r = run_fanout(servers, token, changers, clients, processes, changes)
            rows += fanout_rows(r)
            last_p99[clients] = m.pct(m.ms(r["last"]), 99)
            floors[clients] = floor_ms(r)
            charts.append(
                m.distribution(
                    f"change -> last client, N={clients:,} over two instances",
                    {
                        "on the changing instance": m.ms(r["same"]),
                        "on the other instance": m.ms(r["other"]),
                    },
                    goal=GOAL_MS if clients == GOAL_CLIENTS else None,
                )
            )
            extra["phases"].append(
                {
                    "clients": clients,
                    "last_ms": m.dist_ms(r["last"]),
                    "same_instance_ms": m.dist_ms(r["same"]),
                    "other_instance_ms": m.dist_ms(r["other"]),
                    "median_ms": m.dist_ms(r["median"]),
                    "response_ms": m.dist_ms(r["response"]),
                    "last_ms_each": [round(x * 1000, 2) for x in r["last"]],
                    "missing": r["missing"],
                    "connect_s": round(r["connect_s"], 3),
                }
            )
        for changer in changers:
            changer.close()
        m.wait_for_quiet()
        more_rows, checkout_chart = run_checkouts(servers, token, 5.0 if quick else 10.0)
        rows += more_rows
        charts.append(checkout_chart)
    smallest = min(last_p99)
    for n, p99 in last_p99.items():
        if n == smallest:
            continue
        rows += [
            m.ratio(f"N={n:,}: last client p99 / CPU floor", p99, floors[n],
                    "~1 = about as fast as this machine's cores allow"),
            m.ratio(f"N={n:,}: last client p99 / N={smallest} p99", p99, last_p99[smallest],
                    "the fan-out's own cost over the fixed part, same run"),
        ]  # fmt: skip
    m.print_table("Scale-out: two instances on PostgreSQL (time.monotonic, ms)", rows)
    print("Latency = t0 (just before the HTTP request to one instance) -> FILE_UPDATED arrival.")
    m.write_result("scale_out", rows, extra, charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
