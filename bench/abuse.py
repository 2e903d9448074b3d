"""What abusive clients cost everyone else: a normal user's latency with and without them.

A probe user (its own account and keep-alive connection) cycles GET /api/files/{name},
GET /api/files, checkout and cancel-checkout on its own file. It is measured alone (the
baseline), then while each kind of abuse runs in a separate process:

- slowloris: 300 connections that send a request head a byte at a time and 30 uploads that
  trickle their body at 1 byte/s, each reopened as soon as the server cuts it
  (``header_timeout``, ``body_timeout`` / ``body_min_rate``);
- WebSocket flood: one account opening sockets as fast as it can, 40 attempts in flight;
  ``ws_max_per_user`` admits 20 and closes the rest with 4429 (after a 1 s pause, and
  that user's refusals 0.2 s apart). The 20 admitted sockets are what the setting allows
  any user (20 open tabs, each sent every change); to tell them from the attempts over the
  limit, the probe is also measured with exactly those 20 sockets open and nothing more
  (``ws_tabs``, no goal), and the flood's p99 is compared with that too;
- login flood: wrong passwords for "admin", 8 in flight; the rate limit answers 429 (also
  after a 1 s pause).

The abuser shares this 2-core machine with the server and the probe, which a real attacker
would not: its CPU is in the numbers (the CPU rows say how much).

    .venv/bin/python bench/abuse.py [--quick]
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import secrets
import sys
import time
from collections import Counter
from contextlib import closing
from multiprocessing.synchronize import Event
from typing import Any

import _measure as m
import _server as b
import httpx
import websockets

WS_LIMIT = 20
OPS = ("GET /api/files/{name}", "GET /api/files", "POST checkout", "POST cancel-checkout")
PROBE_GAP_S = 0.002
FILES = 100


# --- the abusers (child processes) --------------------------------------------------------


async def _slow_head(base: str, stop: Event, counts: Counter[str]) -> None:
    """A request head sent a byte a second, reopened whenever the server cuts it."""
    head = b"GET /api/files HTTP/1.1\r\nHost: x\r\nX-Slow: "
    await _trickle(base, head, b"a", "slow heads", stop, counts)


async def _slow_upload(base: str, token: str, stop: Event, counts: Counter[str]) -> None:
    """An upload body sent a byte a second, reopened whenever the server cuts it."""
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    boundary = secrets.token_hex(8)
    name = f"{secrets.randbelow(10**7):07d}_SLOW.mcam"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b.HDF5
    head = (
        f"POST /api/files HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Content-Length: 100000000\r\n\r\n"
    ).encode()
    await _trickle(base, head + start, b"\0", "slow uploads", stop, counts)


async def _trickle(
    base: str, preamble: bytes, drip: bytes, label: str, stop: Event, counts: Counter[str]
) -> None:
    """Open a raw connection, send ``preamble``, then ``drip`` once a second until the
    server answers or closes it (counted as cut); again until ``stop``."""
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    while not stop.is_set():
        opened = await _open(host, port, counts)
        if opened is None:
            continue
        reader, writer = opened
        counts[f"{label} opened"] += 1
        writer.write(preamble)
        try:
            while not stop.is_set():
                writer.write(drip)
                await writer.drain()
                if await _read_for(reader, 1.0):
                    counts[f"{label} cut"] += 1
                    break
        except OSError:
            counts[f"{label} cut"] += 1
        writer.close()


async def _open(
    host: str, port: str, counts: Counter[str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A raw connection to the server, or None after a short pause if it was refused."""
    try:
        return await asyncio.open_connection(host, int(port))
    except OSError:
        counts["connect failed"] += 1
        await asyncio.sleep(0.5)
        return None


async def _read_for(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    return True if data or reader.at_eof() else False


async def _ws_flood(base: str, token: str, stop: Event, counts: Counter[str]) -> None:
    url = base.replace("http://", "ws://") + "/ws"
    while not stop.is_set():
        try:
            async with websockets.connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
            ) as socket:
                async for _frame in socket:
                    if stop.is_set():
                        break
                    counts["frames on admitted sockets"] += 1
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 0
            counts[f"sockets closed {code}"] += 1
        except (OSError, websockets.InvalidStatus):
            counts["handshakes failed"] += 1
            await asyncio.sleep(0.1)


async def _login_flood(base: str, stop: Event, counts: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while not stop.is_set():
            response = await http.post(
                "/api/auth/login", json={"username": "admin", "password": "guess-" + "x" * 8}
            )
            counts[f"logins answered {response.status_code}"] += 1


def abuser(kind: str, base: str, token: str, stop: Event, out: Any) -> None:
    """Child process: run one kind of abuse until ``stop``; put its counts on ``out``."""
    counts: Counter[str] = Counter()

    async def main() -> None:
        if kind == "slowloris":
            tasks = [_slow_head(base, stop, counts) for _ in range(300)]
            tasks += [_slow_upload(base, token, stop, counts) for _ in range(30)]
        elif kind == "ws_tabs":
            tasks = [_ws_flood(base, token, stop, counts) for _ in range(WS_LIMIT)]
        elif kind == "ws_flood":
            tasks = [_ws_flood(base, token, stop, counts) for _ in range(2 * WS_LIMIT)]
        else:
            tasks = [_login_flood(base, stop, counts) for _ in range(8)]
        runners = [asyncio.create_task(t) for t in tasks]
        await asyncio.to_thread(stop.wait)
        await asyncio.sleep(1.5)  # let each task see the stop
        for task in runners:
            task.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    asyncio.run(main())
    out.put(dict(counts))


# --- the probe ----------------------------------------------------------------------------


def probe(http: b.SyncHttp, names: list[str], seconds: float) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {op: [] for op in OPS}
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        i += 1
        requests: list[tuple[str, str, str, Any]] = [
            (OPS[0], "GET", f"/api/files/{names[i % len(names)]}", None),
            (OPS[1], "GET", "/api/files", None),
            (OPS[2], "POST", "/api/files/probe.mcam/checkout", {"message": "p"}),
            (OPS[3], "POST", "/api/files/probe.mcam/cancel-checkout", None),
        ]
        for op, method, path, body in requests:
            start = time.perf_counter()
            status, content = http.request(method, path, body)
            samples[op].append(time.perf_counter() - start)
            b.check(status, content, 200, what=path)
            time.sleep(PROBE_GAP_S)
    return samples


def flat(samples: dict[str, list[float]]) -> list[float]:
    return [x for op in OPS for x in samples[op]]


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    seconds = 6.0 if quick else 15.0
    env = {"CAMVAULT_WS_MAX_PER_USER": str(WS_LIMIT)}
    rows: list[m.Row] = []
    extra: dict[str, Any] = {}
    m.wait_for_quiet()
    with b.temp_data_dir("abuse") as data:
        b.add_users(data, ["probe", "mallory"])
        with b.running_server(data, env=env) as server:
            with b.client(server.base_url, b.login(server.base_url)) as http:
                names = [f"{2000000 + i * 13:07d}_OP1.mcam" for i in range(FILES)]
                for name in [*names, "probe.mcam"]:
                    b.upload_small(http, name, b.mcam_bytes(2048))
            mallory = b.login(server.base_url, "mallory")
            ctx = mp.get_context("spawn")
            with closing(b.SyncHttp(server.base_url, b.login(server.base_url, "probe"))) as http:
                probe(http, names, 2.0)  # warm-up
                with m.CpuMonitor([server.pid]) as cpu:
                    baseline = m.dist_ms(flat(probe(http, names, seconds)))
                rows.append(m.info("baseline: probe p50", baseline["p50"], "ms"))
                rows.append(m.info("baseline: probe p99", baseline["p99"], "ms",
                                   f"n={baseline['n']}"))  # fmt: skip
                rows.append(cpu.row("baseline"))
                extra["baseline"] = baseline
                for kind in ("slowloris", "ws_tabs", "ws_flood", "login_flood"):
                    m.step(f"{kind}: starting the abuser")
                    stop, out = ctx.Event(), ctx.Queue()
                    proc = ctx.Process(
                        target=abuser, args=(kind, server.base_url, mallory, stop, out)
                    )
                    rss_before = server.rss_kib()
                    proc.start()
                    time.sleep(3.0)  # the abuse is in full swing before we measure
                    with m.CpuMonitor([server.pid, proc.pid or 0]) as cpu:
                        during = m.dist_ms(flat(probe(http, names, seconds)))
                    rss_during = server.rss_kib()
                    stop.set()
                    counts = out.get(timeout=60)
                    proc.join(timeout=30)
                    ratio50 = during["p50"] / baseline["p50"]
                    ratio99 = during["p99"] / baseline["p99"]
                    rows.append(m.info(f"{kind}: probe p50", during["p50"], "ms",
                                       f"{ratio50:.2f}x baseline"))  # fmt: skip
                    versus = (
                        f"p99 {during['p99']:.1f} ms vs {baseline['p99']:.1f} ms, n={during['n']}"
                    )
                    if kind == "ws_tabs":  # allowed use, the reference for the flood
                        rows.append(m.info(f"{kind}: probe p99 / baseline p99",
                                           round(ratio99, 2), "x", versus))  # fmt: skip
                    else:
                        rows.append(m.goal_le(f"{kind}: probe p99 / baseline p99",
                                              round(ratio99, 2), 2.0, "x", versus))  # fmt: skip
                    if kind == "ws_flood":
                        tabs_p99 = extra["ws_tabs"]["probe"]["p99"]
                        rows.append(m.ratio(
                            "ws_flood: probe p99 / ws_tabs p99", during["p99"], tabs_p99,
                            f"what the attempts over the limit add to {WS_LIMIT} open tabs",
                        ))  # fmt: skip
                    rows.append(m.info(f"{kind}: server RSS growth", (rss_during - rss_before)
                                       / 1024, "MiB"))  # fmt: skip
                    rows.append(cpu.row(kind))
                    extra[kind] = {"probe": during, "abuser": counts}
                    print(f"{kind}: {counts}")
                    print(f"{kind}: probe p50 {ratio50:.2f}x, p99 {ratio99:.2f}x the baseline")
    m.print_table("a normal user's latency while others abuse the server", rows)
    m.write_result("abuse", rows, extra)


if __name__ == "__main__":
    main()
