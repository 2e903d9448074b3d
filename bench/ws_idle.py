"""Server memory with 10,000 idle WebSocket connections.

10,000 clients (bench/_ws.py, spread over 4 worker processes, one shared admin bearer
token) connect to /ws and then stay idle. Each connection gets, on connect, a snapshot
(FILE_LIST_UPDATED, the whole file list) and a PRESENCE frame; the clients check both
arrived, and answer the server's keepalive pings. Reported: the server's VmRSS
(/proc/PID/status) before (after a warm-up of 20 connections, so first-use allocations are
not charged to the 10,000), with all connected, and after they all closed, plus the
per-connection share and the server's CPU while they are idle.

Goal: server RSS <= 1 GiB with 10,000 connections.

    .venv/bin/python bench/ws_idle.py [--quick]
"""

from __future__ import annotations

import sys
import time
from typing import Any

import _measure as m
import _server as b
import _ws

CONNECTIONS = 10_000
PROCESSES = 4
FILES = [f"{1234560 + i}_OP{i}.mcam" for i in range(1, 11)]
GOAL_MIB = 1024
IDLE_SECONDS = 10


def main() -> int:
    connections = 2_000 if "--quick" in sys.argv[1:] else CONNECTIONS
    nofile = _ws.raise_nofile()
    m.step(f"RLIMIT_NOFILE {nofile} (inherited by the server and the client processes)")
    if nofile < connections + 1000:
        m.step(f"warning: RLIMIT_NOFILE {nofile} is low for {connections} connections")
    rows: list[m.Row] = []
    with b.temp_data_dir("wsidle") as data, b.running_server(data) as server:
        token = b.login(server.base_url)
        _ws.add_files(server.base_url, token, FILES)
        with b.client(server.base_url, token) as http:
            snapshot_bytes = len(http.get("/api/files").content)
        m.step("warm-up: 20 connections")
        with _ws.Fleets(server.base_url, token, 20, 1) as warm:
            warm.wait_ready()
            warm.stop()
        time.sleep(2.0)
        rss_before = server.rss_kib()
        m.wait_for_quiet()
        m.step(f"connecting {connections} clients from {PROCESSES} processes")
        with (
            m.RssSampler(server.pid, interval=0.2) as sampler,
            _ws.Fleets(server.base_url, token, connections, PROCESSES, concurrency=64) as fleets,
        ):
            started = time.monotonic()
            ready = _ws.merge(fleets.wait_ready(timeout=240))
            connect_s = time.monotonic() - started
            m.step(f"{ready['ready']} connected in {connect_s:.1f} s; idle {IDLE_SECONDS} s")
            time.sleep(3.0)
            rss_connected = server.rss_kib()
            with m.CpuMonitor([server.pid, *fleets.pids]) as cpu:
                time.sleep(IDLE_SECONDS)
            rss_idle = server.rss_kib()
            still = _ws.merge(fleets.ask("summary", {}))
            client_rss_kib = still.get("maxrss_kib", 0)
            m.step("closing all connections")
            fleets.stop()
        time.sleep(3.0)
        rss_after = server.rss_kib()
        peak = sampler.peak_kib

    live = ready["ready"]
    per_conn_kib = (rss_connected - rss_before) / max(live, 1)
    rows += [
        m.info("server RSS before", rss_before / 1024, "MiB", "after start, login, 20 warm-up"),
        m.goal_le(
            f"server RSS with {live:,} connections",
            rss_connected / 1024,
            GOAL_MIB,
            "MiB",
            f"peak {peak / 1024:.0f} MiB while connecting; {rss_idle / 1024:.0f} MiB after "
            f"{IDLE_SECONDS} s idle",
        ),
        m.info(
            "server RSS per connection",
            per_conn_kib,
            "KiB",
            f"(with - before) / {live:,}; x 10,000 = {per_conn_kib * 10_000 / 1024:.0f} MiB",
        ),
        m.info(
            "server RSS after all closed",
            rss_after / 1024,
            "MiB",
            f"{(rss_after - rss_before) / 1024:+.0f} MiB vs before (freed memory often stays "
            "with the allocator)",
        ),
        m.info(
            "connections that got snapshot + PRESENCE",
            ready.get("got_snapshot_and_presence", 0),
            "",
            f"of {connections:,}; snapshot {snapshot_bytes:,} B ({len(FILES)} files); "
            f"{ready.get('initial_failures', 0)} failed to connect",
        ),
        m.info(
            "still connected after idle",
            still.get("live", 0),
            "",
            f"close codes seen: {dict(still.get('close_codes', {})) or 'none'}",
        ),
        m.info(
            f"connect {live:,} clients",
            connect_s,
            "s",
            f"{live / connect_s:.0f} connections/s, {PROCESSES} client processes x 64 at once",
        ),
        m.info(
            "server CPU while idle",
            cpu.server_cores * 100,
            "% core",
            f"over {IDLE_SECONDS} s: keepalive pings every 20 s/connection, session "
            "re-check every 30 s",
        ),
        m.info("client processes' RSS (sum)", client_rss_kib / 1024, "MiB", "bench side"),
        cpu.row("idle"),
    ]
    m.print_table(f"{live:,} idle WebSocket connections: server memory (VmRSS)", rows)
    extra: dict[str, Any] = {
        "connections": live,
        "rss_kib": {
            "before": rss_before,
            "connected": rss_connected,
            "idle": rss_idle,
            "peak": peak,
            "after_close": rss_after,
        },
        "per_connection_kib": round(per_conn_kib, 2),
        "connect_s": round(connect_s, 2),
        "snapshot_bytes": snapshot_bytes,
    }
    m.write_result("ws_idle", rows, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
