"""API latency for other users while a 500 MB check-in streams in.

Goal (from the issue): while a 500 MB upload runs, other requests keep p99 <= 50 ms. A
probe client (its own user) cycles GET /api/files/{name}, GET /api/files (~200 files),
checkout and cancel-checkout on its own file; the upload runs in a separate process so
the two clients do not share a GIL, and the probe uses a minimal keep-alive client so its
own CPU (httpx: ~1 ms a request) does not compete with the server on 2 cores. The same
probe loop without an upload is the baseline.

    .venv/bin/python bench/latency_under_upload.py [--quick] [--profile] [--sqlite-synchronous M]
"""

from __future__ import annotations

import multiprocessing as mp
import random
import sys
import time
from contextlib import closing, nullcontext
from multiprocessing.synchronize import Event
from typing import Any

import _measure as m
import _server as b

FILES = 200
LARGE = 500 * b.MB
OPS = ("GET /api/files/{name}", "GET /api/files", "POST checkout", "POST cancel-checkout")
PROBE_GAP_S = 0.002  # a short pause between probe requests: a busy user, not a flood


def uploader(base_url: str, token: str, name: str, count: int, active: Event, out: Any) -> None:
    """Child process: ``count`` 500 MB check-ins back to back; ``active`` is set during each."""
    fields = {"message": "big check-in", "keep_locked": "true"}
    with b.client(base_url, token) as http:
        for _ in range(count):
            body = b.multipart_stream(name, LARGE, fields)
            time.sleep(0.3)  # probes in this gap count for neither phase
            active.set()
            response, send_s, total_s = b.post_streamed(
                http, f"/api/files/{name}/checkin", body, progress=None
            )
            active.clear()
            b.expect(response, 200)
            out.put({"send_s": send_s, "total_s": total_s, "MBps": LARGE / b.MB / total_s})


def probe_cycle(http: b.SyncHttp, names: list[str], rng: random.Random) -> list[float]:
    """One round of the four probe requests; returns their latencies in seconds."""
    timings = []
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/api/files/{rng.choice(names)}", None),
        ("GET", "/api/files", None),
        ("POST", "/api/files/probe.mcam/checkout", {"message": "p"}),
        ("POST", "/api/files/probe.mcam/cancel-checkout", None),
    ]
    for method, path, body in requests:
        start = time.perf_counter()
        status, content = http.request(method, path, body)
        timings.append(time.perf_counter() - start)
        b.check(status, content, 200, what=path)
        time.sleep(PROBE_GAP_S)
    return timings


def probe_baseline(
    http: b.httpx.Client, names: list[str], seconds: float
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {op: [] for op in OPS}
    rng = random.Random(1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for op, elapsed in zip(OPS, probe_cycle(http, names, rng), strict=True):
            samples[op].append(elapsed)
    return samples


def probe_during(
    http: b.SyncHttp, names: list[str], proc: mp.process.BaseProcess, active: Event
) -> dict[str, list[float]]:
    """Probe until the uploader exits; keep a cycle only if the upload ran for all of it."""
    samples: dict[str, list[float]] = {op: [] for op in OPS}
    rng = random.Random(2)
    while proc.is_alive():
        if not active.is_set():
            time.sleep(0.005)
            continue
        cycle = probe_cycle(http, names, rng)
        if active.is_set():
            for op, elapsed in zip(OPS, cycle, strict=True):
                samples[op].append(elapsed)
    return samples


def populate(http: b.httpx.Client) -> list[str]:
    names = [f"{1000000 + i * 37:07d}_OP{i % 4 + 1}.mcam" for i in range(FILES - 2)]
    for name in names:
        b.upload_small(http, name, b.mcam_bytes(2048))
    b.upload_small(http, "probe.mcam", b.mcam_bytes(2048))
    b.upload_small(http, "big.mcam", b.mcam_bytes(2048))
    return names


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    uploads = 2 if quick else 6
    extra: dict[str, Any] = {}
    m.wait_for_quiet()
    with b.temp_data_dir("latency") as data:
        b.add_users(data, ["probe"])
        with b.running_server(data, env=m.sqlite_sync_env()) as server:
            admin = b.login(server.base_url)
            with b.client(server.base_url, admin) as http:
                names = populate(http)
                b.expect(http.post("/api/files/big.mcam/checkout", json={"message": "big"}), 200)
            probe_token = b.login(server.base_url, "probe")
            ctx = mp.get_context("spawn")
            active, out = ctx.Event(), ctx.Queue()
            with closing(b.SyncHttp(server.base_url, probe_token)) as http:
                probe_baseline(http, names, 1.0)  # warm-up
                with m.CpuMonitor([server.pid]) as cpu_base:
                    baseline = probe_baseline(http, names, 4.0 if quick else 8.0)
                proc = ctx.Process(
                    target=uploader,
                    args=(server.base_url, admin, "big.mcam", uploads, active, out),
                )
                spy = m.PySpy(server.pid, "latency-under-upload")
                profiling = m.wants_profile() and m.PySpy.available()
                with m.CpuMonitor([server.pid]) as cpu_load, spy if profiling else nullcontext():
                    proc.start()
                    during = probe_during(http, names, proc, active)
                    proc.join()
                if proc.exitcode != 0:
                    raise RuntimeError(f"uploader failed with exit code {proc.exitcode}")
                upload_runs = [out.get() for _ in range(uploads)]
            if profiling:
                extra["profile"] = spy.print_summary()

    rows: list[m.Row] = []
    charts: list[dict[str, Any]] = []
    for op in OPS:
        base, load = m.dist_ms(baseline[op]), m.dist_ms(during[op])
        charts.append(
            m.distribution(
                op,
                {"idle": m.ms(baseline[op]), "during 500 MB upload": m.ms(during[op])},
                goal=50,
            )
        )
        rows.append(
            m.goal_le(
                f"{op}: p99 during upload",
                load["p99"],
                50,
                "ms",
                f"n={load['n']}, p50 {load['p50']:.1f}, max {load['max']:.1f}",
            )
        )
        rows.append(
            m.info(
                f"{op}: p99 baseline",
                base["p99"],
                "ms",
                f"n={base['n']}, p50 {base['p50']:.1f}, max {base['max']:.1f}; "
                f"p99 ratio {load['p99'] / base['p99']:.1f}x",
            )
        )
        rows.append(
            m.ratio(f"{op}: p99 during upload / idle", load["p99"], base["p99"], "same run")
        )
        extra[op] = {"baseline": base, "during_upload": load}
    every_base = [x for op in OPS for x in baseline[op]]
    every_load = [x for op in OPS for x in during[op]]
    all_base, all_load = m.dist_ms(every_base), m.dist_ms(every_load)
    rows.append(
        m.goal_le(
            "all probe requests: p99 during upload",
            all_load["p99"],
            50,
            "ms",
            f"baseline p99 {all_base['p99']:.1f} ms; max during {all_load['max']:.1f} ms",
        )
    )
    rows.append(
        m.ratio(
            "all probe requests: p99 during upload / idle",
            all_load["p99"],
            all_base["p99"],
            "the slowdown a 500 MB upload causes, both measured in this run",
        )
    )
    charts.append(
        m.distribution(
            "all probe requests",
            {"idle": m.ms(every_base), "during 500 MB upload": m.ms(every_load)},
            goal=50,
        )
    )
    rates = [r["MBps"] for r in upload_runs]
    rows.append(
        m.info(
            "500 MB check-in throughput while probed, median",
            sorted(rates)[len(rates) // 2],
            "MB/s",
            "runs: " + ", ".join(f"{x:.0f}" for x in rates),
        )
    )
    rows.append(cpu_base.row("baseline"))
    rows.append(cpu_load.row("the uploads"))
    extra["upload_runs"] = upload_runs
    mode = m.sqlite_sync_mode()
    extra["sqlite_synchronous"] = mode
    m.print_table(f"latency of other requests during a 500 MB check-in (SQLite {mode})", rows)
    m.write_result(m.result_name("latency_under_upload"), rows, extra, charts)


if __name__ == "__main__":
    main()
