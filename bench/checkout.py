"""Checkout + cancel-checkout latency with 50 concurrent users.

Goal (from the issue): p99 <= 20 ms with 50 concurrent users, read as 50 people working at
once: each thinks between operations. Variants:
  single user - one user alone, no think time: the denominator of the paced ratios
  paced      - own files, each user thinks ~1 s / ~0.5 s / ~0.25 s between operations
               (~50 / ~100 / ~200 checkout+cancel cycles/s offered); ~1 s is the goal
               (50 people at work), the faster two show how it degrades under 2x and 4x
  own files  - each user loops checkout -> cancel on its own file with no think time
  contended  - the same on 5 files: a 409 (locked by someone else) is a normal answer
Each user is one keep-alive connection driven by a minimal asyncio HTTP client (httpx costs
~10x more client CPU per request, which on 2 cores would slow the server it measures).
The two closed loops measure capacity, not latency: every user always has a request queued,
so by Little's law latency is users / throughput once the one writer is saturated.

    .venv/bin/python bench/checkout.py [--quick] [--profile] [--sqlite-synchronous NORMAL]
                                       [--only single|own|contended|paced]
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import _measure as m
import _server as b

USERS = 50
HOT_FILES = 5
SINGLE = "single user"
# 50 people at work, each taking about a second between clicks: the goal.
GOAL_VARIANT = "paced (~1 s think)"


def file_of(i: int) -> str:
    return f"{2000000 + i:07d}_OP1.mcam"


async def user_loop(
    http: b.AsyncHttp,
    name: str,
    until: float,
    samples: dict[str, list[float]],
    think: Callable[[], float] | None,
) -> None:
    """checkout -> (cancel if we got it) until the deadline, recording each request."""
    if think is not None:
        await asyncio.sleep(think() * random.random())  # spread the first requests out
    while time.monotonic() < until:
        start = time.perf_counter()
        status, body = await http.request("POST", f"/api/files/{name}/checkout", {"message": "b"})
        elapsed = time.perf_counter() - start
        b.check(status, body, 200, 409, what="checkout")
        samples["checkout" if status == 200 else "checkout 409"].append(elapsed)
        if status == 200:
            start = time.perf_counter()
            status, body = await http.request("POST", f"/api/files/{name}/cancel-checkout")
            samples["cancel"].append(time.perf_counter() - start)
            b.check(status, body, 200, what="cancel")
        if think is not None:
            await asyncio.sleep(think())


async def run_variant(
    base_url: str,
    tokens: list[str],
    files: list[str],
    seconds: float,
    think: Callable[[], float] | None = None,
) -> tuple[dict[str, list[float]], float]:
    samples: dict[str, list[float]] = {"checkout": [], "checkout 409": [], "cancel": []}
    clients = [b.AsyncHttp(base_url, token) for token in tokens]
    try:
        # Open and warm each connection before the clock starts.
        await asyncio.gather(*(c.request("GET", "/api/auth/me") for c in clients))
        start = time.perf_counter()
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(
                user_loop(c, files[i % len(files)], until, samples, think)
                for i, c in enumerate(clients)
            )
        )
        wall = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return samples, wall


def variant_rows(
    label: str, samples: dict[str, list[float]], wall: float, cpu: m.CpuMonitor
) -> list[m.Row]:
    rows = []
    for op, values in samples.items():
        if not values:
            continue
        d = m.dist_ms(values)
        note = f"n={d['n']}, p50 {d['p50']:.1f}, p95 {d['p95']:.1f}, max {d['max']:.1f}"
        if op == "checkout 409" or label != GOAL_VARIANT:
            # Closed loops measure capacity: with no think time every user always has a
            # request queued, so latency is users / throughput (Little's law), not a goal.
            # The faster-paced runs offer 2x and 4x the goal's load: how it degrades.
            rows.append(m.info(f"{label}: {op} p99", d["p99"], "ms", note))
        else:
            rows.append(m.goal_le(f"{label}: {op} p99", d["p99"], 20, "ms", note))
    requests = sum(len(v) for v in samples.values())
    cycles = len(samples["cancel"])
    rows.append(
        m.info(
            f"{label}: throughput",
            requests / wall,
            "req/s",
            f"{cycles / wall:.0f} checkout+cancel cycles/s over {wall:.1f} s",
        )
    )
    rows.append(
        m.info(
            f"{label}: server CPU per request",
            cpu.server_cores * wall / requests * 1000,
            "ms",
            "all server threads; one GIL caps Python work at ~1 core",
        )
    )
    rows.append(cpu.row(label))
    return rows


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    seconds = 5.0 if quick else 15.0
    users = [f"u{i}" for i in range(1, USERS + 1)]
    files = [file_of(i) for i in range(USERS)]
    extra: dict[str, Any] = {}
    rows: list[m.Row] = []
    measured: dict[str, dict[str, list[float]]] = {}
    m.wait_for_quiet()
    with b.temp_data_dir("checkout") as data:
        m.step(f"creating {USERS} users (argon2)")
        b.add_users(data, users)
        with b.running_server(data, env=m.sqlite_sync_env()) as server:
            admin = b.login(server.base_url)
            m.step(f"uploading {USERS} files")
            with b.client(server.base_url, admin) as http:
                for name in files:
                    b.upload_small(http, name, b.mcam_bytes(4096))
            m.step(f"logging in {USERS} users")
            tokens = [b.login(server.base_url, user) for user in users]
            asyncio.run(run_variant(server.base_url, tokens, files, 1.0))  # warm-up
            rng = random.Random(3)
            variants: list[tuple[str, list[str], Callable[[], float] | None]] = [
                # One user alone: the server's latency with nobody else, the denominator
                # of the ratios that the noisy machine affects less than the p99 itself.
                (SINGLE, files[:1], None),
                ("own files", files, None),
                ("contended (5 files)", files[:HOT_FILES], None),
                # 50 people at work: each thinks between operations. ~1 s is already far
                # busier than a shop (a programmer checks out a few files an hour); the
                # shorter think times show where the latency knee is.
                (GOAL_VARIANT, files, lambda: rng.uniform(0.5, 1.5)),
                ("paced (~0.5 s think)", files, lambda: rng.uniform(0.25, 0.75)),
                ("paced (~0.25 s think)", files, lambda: rng.uniform(0.125, 0.375)),
            ]
            only = m.option("--only")
            for label, targets, think in variants:
                if only and not label.startswith(only):
                    continue
                profiling = m.wants_profile() and m.PySpy.available()
                slug = "checkout-" + re.sub(r"[^a-z0-9.]+", "-", label).strip("-")
                spy = m.PySpy(server.pid, slug) if profiling else nullcontext()
                single = label == SINGLE
                users_of = tokens[:1] if single else tokens
                length = min(seconds, 5.0) if single else seconds
                m.step(f"variant: {label}, {length:.0f} s")
                with m.CpuMonitor([server.pid]) as cpu, spy:
                    samples, wall = asyncio.run(
                        run_variant(server.base_url, users_of, targets, length, think)
                    )
                rows += variant_rows(label, samples, wall, cpu)
                extra[label] = {op: m.dist_ms(v) for op, v in samples.items() if v}
                measured[label] = samples
                if isinstance(spy, m.PySpy):
                    extra[f"profile {label}"] = spy.print_summary()
    rows += ratio_rows(measured)
    charts = [
        m.distribution(
            f"{op}, {USERS} users",
            {label: m.ms(samples[op]) for label, samples in measured.items() if samples[op]},
            goal=20,
        )
        for op in ("checkout", "cancel")
    ]
    mode = m.sqlite_sync_mode()
    extra["sqlite_synchronous"] = mode
    m.print_table(f"checkout + cancel, {USERS} concurrent users (SQLite synchronous={mode})", rows)
    m.write_result(m.result_name("checkout"), rows, extra, charts)


def ratio_rows(measured: dict[str, dict[str, list[float]]]) -> list[m.Row]:
    """Each paced variant's p99 over the single user's: what 50 users add on this machine."""
    alone = measured.get(SINGLE)
    if alone is None:
        return []
    rows = []
    for label, samples in measured.items():
        if not label.startswith("paced"):
            continue
        for op in ("checkout", "cancel"):
            if samples[op] and alone[op]:
                rows.append(
                    m.ratio(
                        f"{label}: {op} p99 / single user p99",
                        m.pct(samples[op], 99),
                        m.pct(alone[op], 99),
                        "same run",
                    )
                )
    return rows


if __name__ == "__main__":
    main()
