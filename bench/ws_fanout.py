"""Live fan-out: from a change over HTTP to the LAST of N WebSocket clients seeing it.

N clients connect to /ws (one admin bearer token shared by all, like many tabs of one
user), spread over a few worker processes (bench/_ws.py: a minimal client that finds the
seq of a FILE_UPDATED frame with a prefix check, no JSON parsing). Then, one change at a
time: t0 = time.monotonic() just before POST /api/files/{name}/checkout (json {}) or
/cancel-checkout, and every client notes when its FILE_UPDATED for that seq arrived
(time.monotonic() is system-wide, so worker processes share the clock). The next change
starts only after every client has it, after a short random pause.

Goals: last-client latency p99 <= 50 ms with N=1,000 and <= 200 ms with N=5,000. A run with
N=1 first shows the fixed part (HTTP request, SQLite commit, hub wake-up and log read).
permessage-deflate is off on the server (cli.py: ws_per_message_deflate=False); every
client offers it and the bench counts handshake responses that accept it (must be 0).

    .venv/bin/python bench/ws_fanout.py [--quick] [--profile]

--profile records the server with py-spy during the N=5,000 changes
(bench/results/raw/ws_fanout-5000.pyspy.txt).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Any

import _measure as m
import _server as b
import _ws

FILE = "1234567_A1.mcam"
OTHER_FILES = [f"{1234560 + i}_OP{i}.mcam" for i in range(1, 6)]
WARMUP = 2
GOALS_MS = {1000: 50.0, 5000: 200.0}


def plan() -> list[tuple[int, int, int]]:
    """(clients, worker processes, measured changes) per phase."""
    if "--quick" in sys.argv[1:]:
        return [(1, 1, 5), (1000, 2, 10), (5000, 4, 10)]
    return [(1, 1, 10), (1000, 2, 30), (5000, 4, 30)]


def run_phase(
    server: b.Server, token: str, changer: _ws.Changer, clients: int, processes: int, changes: int
) -> dict[str, Any]:
    m.step(f"N={clients}: connecting {clients} clients from {processes} processes")
    profile = m.wants_profile() and clients == max(GOALS_MS) and m.PySpy.available()
    with _ws.Fleets(
        server.base_url, token, clients, processes, record_arrivals=True, concurrency=64
    ) as fleets:
        started = time.monotonic()
        ready = _ws.merge(fleets.wait_ready())
        connect_s = time.monotonic() - started
        if ready["ready"] != clients:
            raise RuntimeError(f"only {ready['ready']} of {clients} clients connected: {ready}")
        m.step(f"N={clients}: connected in {connect_s:.1f} s; {WARMUP + changes} changes")
        time.sleep(1.0)
        changes_log: list[dict[str, Any]] = []
        last_seq = 0
        spy = m.PySpy(server.pid, f"ws_fanout-{clients}") if profile else nullcontext()
        client_cpu0 = sum(_ws.proc_cpu_seconds(p) for p in fleets.pids)
        server_cpu0 = _ws.proc_cpu_seconds(server.pid)
        wall0 = time.monotonic()
        with spy, m.CpuMonitor([server.pid, *fleets.pids]) as cpu:
            for i in range(WARMUP + changes):
                fleets.clear_inbox()
                t0, response_s = changer.change()
                done = fleets.wait_done(last_seq, timeout=15)
                seqs = {message[1] for message in done.values()}
                if len(seqs) > 1:
                    raise RuntimeError(f"workers finished different seqs: {seqs}")
                seq = seqs.pop() if seqs else -1
                last_seq = max(last_seq, seq)
                changes_log.append(
                    {
                        "seq": seq,
                        "t0": t0,
                        "response_s": response_s,
                        "warmup": i < WARMUP,
                        "all_workers": len(done) == processes,
                    }
                )
                time.sleep(random.uniform(0.05, 0.15))
        wall = time.monotonic() - wall0
        server_cpu = _ws.proc_cpu_seconds(server.pid) - server_cpu0
        client_cpu = sum(_ws.proc_cpu_seconds(p) for p in fleets.pids) - client_cpu0
        finals = fleets.stop(arrivals=True)
    if profile:
        assert isinstance(spy, m.PySpy)
        spy.print_summary()
    arrivals: dict[int, list[float]] = {}
    for final in finals:
        for seq, times in final.get("arrivals", {}).items():
            arrivals.setdefault(seq, []).extend(times)
    totals = _ws.merge(finals)
    measured = [c for c in changes_log if not c["warmup"]]
    last, first, median, missing = [], [], [], 0
    for c in measured:
        times = arrivals.get(c["seq"], [])
        missing += clients - len(times)
        if times:
            last.append(max(times) - c["t0"])
            first.append(min(times) - c["t0"])
            median.append(statistics.median(times) - c["t0"])
    return {
        "clients": clients,
        "processes": processes,
        "connect_s": connect_s,
        "ready": ready,
        "totals": totals,
        "last": last,
        "first": first,
        "median": median,
        "response": [c["response_s"] for c in measured],
        "missing": missing,
        "incomplete": sum(1 for c in measured if not c["all_workers"]),
        "changes": len(measured),
        "server_cpu_s": server_cpu,
        "client_cpu_s": client_cpu,
        "wall_s": wall,
        "cpu": cpu,
        "changes_total": len(changes_log),
    }


def phase_rows(r: dict[str, Any]) -> list[m.Row]:
    n = r["clients"]
    last = m.dist_ms(r["last"])
    first = m.dist_ms(r["first"])
    median = m.dist_ms(r["median"])
    response = m.dist_ms(r["response"])
    label = f"N={n:,}"
    note = f"p50 {last['p50']:.1f}, max {last['max']:.1f} ms over {last['n']} changes"
    rows = []
    if n in GOALS_MS:
        rows.append(m.goal_le(f"{label}: last client p99", last["p99"], GOALS_MS[n], "ms", note))
    else:
        rows.append(m.info(f"{label}: last client p99", last["p99"], "ms", note))
    rows += [
        m.info(f"{label}: last client p50", last["p50"], "ms", f"max {last['max']:.1f} ms"),
        m.info(
            f"{label}: first client p50",
            first["p50"],
            "ms",
            f"p99 {first['p99']:.1f}; median client p50 {median['p50']:.1f} ms",
        ),
        m.info(
            f"{label}: HTTP response p50",
            response["p50"],
            "ms",
            f"p99 {response['p99']:.1f} ms (t0 -> response of the change)",
        ),
        m.info(
            f"{label}: frames not delivered",
            r["missing"],
            "frames",
            f"of {n * r['changes']:,}; {r['incomplete']} changes not complete in 15 s",
        ),
    ]
    per_change = r["changes_total"]
    server_ms = r["server_cpu_s"] / per_change * 1000
    client_ms = r["client_cpu_s"] / per_change * 1000
    cpu = r["cpu"]
    rows += [
        m.info(
            f"{label}: server CPU per change",
            server_ms,
            "ms",
            f"{server_ms * 1000 / n:.1f} us per client; "
            f"{100 * r['server_cpu_s'] / r['wall_s']:.0f}% of a core over the phase",
        ),
        m.info(
            f"{label}: clients CPU per change",
            client_ms,
            "ms",
            f"{client_ms * 1000 / n:.1f} us per client, {r['processes']} processes; "
            f"{100 * r['client_cpu_s'] / r['wall_s']:.0f}% of a core over the phase",
        ),
        m.info(
            f"{label}: connect {n:,} clients",
            r["connect_s"],
            "s",
            f"{n / r['connect_s']:.0f} connections/s (each gets snapshot + PRESENCE)",
        ),
        cpu.row(f"N={n:,}"),
    ]
    return rows


def arrival_chart(r: dict[str, Any]) -> dict[str, Any]:
    """Per change: when the first, the median and the last client had it."""
    n = r["clients"]
    return m.distribution(
        f"change -> client, N={n:,}",
        {
            "first client": m.ms(r["first"]),
            "median client": m.ms(r["median"]),
            "last client": m.ms(r["last"]),
        },
        goal=GOALS_MS.get(n),
    )


def main() -> int:
    nofile = _ws.raise_nofile()
    m.step(f"RLIMIT_NOFILE {nofile} (inherited by the server and the client processes)")
    rows: list[m.Row] = []
    extra: dict[str, Any] = {"phases": []}
    charts: list[dict[str, Any]] = []
    last_p99: dict[int, float] = {}
    with b.temp_data_dir("wsfan") as data, b.running_server(data) as server:
        token = b.login(server.base_url)
        _ws.add_files(server.base_url, token, [FILE, *OTHER_FILES])
        changer = _ws.Changer(server.base_url, token, FILE)
        offered = accepted = 0
        m.wait_for_quiet()
        for clients, processes, changes in plan():
            r = run_phase(server, token, changer, clients, processes, changes)
            offered += clients
            accepted += r["ready"].get("extension_header_count", 0)
            rows += phase_rows(r)
            charts.append(arrival_chart(r))
            last_p99[clients] = m.pct(m.ms(r["last"]), 99)
            extra["phases"].append(
                {
                    "clients": clients,
                    "processes": processes,
                    "last_ms": m.dist_ms(r["last"]),
                    "first_ms": m.dist_ms(r["first"]),
                    "median_ms": m.dist_ms(r["median"]),
                    "response_ms": m.dist_ms(r["response"]),
                    "last_ms_each": [round(x * 1000, 2) for x in r["last"]],
                    "missing": r["missing"],
                    "server_cpu_s": round(r["server_cpu_s"], 3),
                    "client_cpu_s": round(r["client_cpu_s"], 3),
                    "wall_s": round(r["wall_s"], 3),
                    "connect_s": round(r["connect_s"], 3),
                    "gaps": r["totals"].get("gaps", 0),
                }
            )
    rows.append(
        m.info(
            "handshakes accepting permessage-deflate",
            accepted,
            "",
            f"of {offered:,} that offered it: compression is OFF on the server "
            "(uvicorn ws_per_message_deflate=False)",
        )
    )
    rows += [
        m.ratio(f"N={n:,}: last client p99 / N=1 p99", last_p99[n], last_p99[1],
                "the fan-out's own cost over the fixed part (HTTP, commit, wake-up), same run")
        for n in GOALS_MS
        if n in last_p99 and 1 in last_p99
    ]  # fmt: skip
    m.print_table("WebSocket fan-out: change -> last client (time.monotonic, ms)", rows)
    print(
        "\npermessage-deflate: OFF. Every client offered it; "
        f"{accepted} of {offered} handshake responses carried Sec-WebSocket-Extensions."
    )
    print("Latency = t0 (just before the HTTP request) -> FILE_UPDATED frame arrival.")
    extra["deflate"] = {"offered": offered, "accepted": accepted}
    m.write_result("ws_fanout", rows, extra, charts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
