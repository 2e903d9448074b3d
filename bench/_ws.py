"""WebSocket bench plumbing: a minimal /ws client, fleets of them in worker processes, and a
``camvault serve`` that can be stopped and started again on the same port.

Why a hand-rolled client: the machine has 2 cores shared by the server and thousands of
clients. A full client library costs tens of microseconds per received frame in Python; this
one (an asyncio Protocol on uvloop) recognises a frame by a prefix check on the raw bytes and
reads ``seq``/``prev`` with a substring search, never JSON-parsing a frame. It still speaks
real RFC 6455: the handshake (Sec-WebSocket-Accept checked), masked client frames, answers to
the server's pings (or the server drops it after ws_ping_interval) and the closing handshake.

A *fleet* is one worker process holding many clients; the driver talks to it over a pipe.
``time.monotonic()`` is system-wide on Linux (CLOCK_MONOTONIC), so arrival times taken in a
worker compare directly with the driver's t0.

Frames as the server writes them (orjson, see camvault.events.frames), which the prefix
checks rely on:
    {"type":"FILE_UPDATED","seq":42,"payload":{...},"prev":41}
    {"type":"FILE_LIST_UPDATED","seq":41,"epoch":"9f2c...","payload":{...}}
    {"type":"PRESENCE","payload":{"online":[...]}}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import _server as b

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FILE_UPDATED = b'{"type":"FILE_UPDATED","seq":'
SNAPSHOT = b'{"type":"FILE_LIST_UPDATED","seq":'
PRESENCE = b'{"type":"PRESENCE"'
PREV = b',"prev":'
EPOCH = b'"epoch":"'
FILE_UPDATED_SEQ = len(FILE_UPDATED)
SNAPSHOT_SEQ = len(SNAPSHOT)
STABLE_AFTER = 10.0  # the browser resets its backoff counter after 10 s connected
MAX_DELAY = 30.0
BASE_DELAY = 1.0


# --- process limits -----------------------------------------------------------------------


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; children (server, workers) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- a server that can be restarted on the same port --------------------------------------


def _pump(stream: Any, sink: list[str], ready: threading.Event) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        sink.append(line)
        if "camvault listening on" in line:
            ready.set()


def start_server(data: Path, port: int, *, timeout: float = 60.0) -> b.Server:
    """``camvault serve`` on a given port (e.g. the port of the one just stopped)."""
    env = {**os.environ, **b.SERVER_ENV}
    argv = [str(b.CAMVAULT), "serve", "--data", str(data), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=b.ROOT
    )
    server = b.Server(proc, port, data)
    ready = threading.Event()
    threading.Thread(target=_pump, args=(proc.stdout, server.output, ready), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.1)
            raise RuntimeError("camvault serve exited:\n" + "\n".join(server.output))
        if ready.is_set() and health_ok(server.base_url):
            return server
        time.sleep(0.02)
    stop_server(server)
    raise RuntimeError("camvault serve did not become healthy:\n" + "\n".join(server.output))


def health_ok(base_url: str) -> bool:
    http = b.SyncHttp(base_url)
    try:
        status, _ = http.request("GET", "/api/health")
    except OSError:
        return False
    finally:
        http.close()
    return status == 200


def stop_server(server: b.Server, timeout: float = 30.0) -> float:
    """SIGTERM, wait (SIGKILL after ``timeout``); returns seconds until the process exited."""
    start = time.monotonic()
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=15)
    return time.monotonic() - start


def add_files(base_url: str, token: str, names: list[str]) -> None:
    with b.client(base_url, token) as http:
        for name in names:
            b.upload_small(http, name, b.mcam_bytes(4096))


class Changer:
    """Alternates checkout (json {}) / cancel-checkout of one file on a keep-alive connection."""

    def __init__(self, base_url: str, token: str, filename: str) -> None:
        self.http = b.SyncHttp(base_url, token)
        self.filename = filename
        self.locked = False

    def change(self) -> tuple[float, float]:
        """One change; returns (t0 = time.monotonic() just before sending, response time s)."""
        if self.locked:
            path, body = f"/api/files/{self.filename}/cancel-checkout", None
        else:
            path, body = f"/api/files/{self.filename}/checkout", {}
        t0 = time.monotonic()
        status, text = self.http.request("POST", path, body)
        elapsed = time.monotonic() - t0
        b.check(status, text, 200, what=path)
        self.locked = not self.locked
        return t0, elapsed

    def close(self) -> None:
        self.http.close()


# --- the client -----------------------------------------------------------------------------


def _client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One masked client frame (payload < 126 bytes: pongs and closes)."""
    mask = os.urandom(4)
    masked = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


class HandshakeError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"handshake answered {status}")
        self.status = status


class WsProto(asyncio.Protocol):
    """One WebSocket connection. ``opened`` resolves after the 101; ``done`` when it ends."""

    def __init__(self, client: Client, request: bytes, accept: bytes) -> None:
        self.client = client
        self.fleet = client.fleet
        self.request = request
        self.accept = accept
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.buf = b""
        self.upgraded = False
        self.close_code: int | None = None
        self.first_frame = True
        self.live_at = 0.0
        self.pre_presence = 0  # frames before the first PRESENCE: the replay (or snapshot)

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = self.head[end + 4 :]
            self._handshake(self.head[:end])
            self.head = b""
            if not self.upgraded:
                return
        buf = self.buf + data if self.buf else data
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            n = buf[pos + 1] & 0x7F
            h = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[h : h + 2], "big")
                h += 2
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[h : h + 8], "big")
                h += 8
            end = h + n
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                self._text(buf, h, end, now)
            elif opcode == 9:  # ping: answer with the same payload
                self._write(_client_frame(0xA, buf[h:end]))
            elif opcode == 8:
                self._close_received(buf[h:end])
            pos = end
        self.buf = buf[pos:] if pos < size else b""

    # frames

    def _handshake(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip()
        if status != 101 or headers.get(b"sec-websocket-accept") != self.accept:
            self.opened.set_exception(HandshakeError(status))
            if self.transport is not None:
                self.transport.close()
            return
        if b"sec-websocket-extensions" in headers:
            self.fleet.extension_headers.append(headers[b"sec-websocket-extensions"].decode())
        self.upgraded = True
        self.opened.set_result(None)

    def _text(self, buf: bytes, h: int, end: int, now: float) -> None:
        client = self.client
        fleet = self.fleet
        fleet.frames += 1
        if self.first_frame:
            self.first_frame = False
            self.live_at = now
            client.went_live(self, now, buf.startswith(SNAPSHOT, h))
        if buf.startswith(FILE_UPDATED, h):
            start = h + FILE_UPDATED_SEQ
            seq = int(buf[start : buf.index(b",", start)])
            if fleet.record_arrivals and client.presence:  # live, not replayed
                fleet.arrived(seq, now)
            client.broadcast(seq, buf, h, end)
        elif buf.startswith(PRESENCE, h):
            client.presence += 1
            if client.presence == 1:
                if fleet.track_events:
                    client.events.append((now, f"resumed {self.pre_presence}"))
                fleet.client_ready(client)
        elif buf.startswith(SNAPSHOT, h):
            start = h + SNAPSHOT_SEQ
            comma = buf.index(b",", start)
            client.last_seq = int(buf[start:comma])
            e = buf.index(EPOCH, comma) + len(EPOCH)
            client.epoch = buf[e : buf.index(b'"', e)].decode()
            client.snapshots += 1
        else:
            # another broadcast (USER_LOGGED_IN, ...) or a targeted/connection frame
            p = buf.find(b'"seq":', h, h + 64)
            if p >= 0:
                q = p + 6
                while buf[q] in b"0123456789":
                    q += 1
                client.broadcast(int(buf[p + 6 : q]), buf, h, end)
        if client.presence == 0:
            self.pre_presence += 1

    def _close_received(self, payload: bytes) -> None:
        self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        # Echo the close (the closing handshake); the server then closes the TCP connection.
        self._write(_client_frame(0x8, payload[:2]))
        if self.transport is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(2.0, self.transport.close)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake from our side."""
        self._write(_client_frame(0x8, code.to_bytes(2, "big")))
        if self.transport is not None:
            asyncio.get_running_loop().call_later(2.0, self.transport.close)


@dataclass(eq=False)
class Client:
    """One logical client (a browser tab): reconnects, resumes with after/epoch."""

    fleet: Fleet
    index: int
    last_seq: int | None = None
    epoch: str | None = None
    proto: WsProto | None = None
    attempt: int = 0
    presence: int = 0
    snapshots: int = 0
    gaps: int = 0
    repeats: int = 0
    connects: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)

    def url_path(self) -> str:
        if self.last_seq is None or not self.fleet.resume:
            return "/ws"
        query = f"after={self.last_seq}"
        return f"/ws?{query}" if self.epoch is None else f"/ws?{query}&epoch={self.epoch}"

    def broadcast(self, seq: int, buf: bytes, h: int, end: int) -> None:
        p = buf.rfind(PREV, h, end)
        if p < 0:
            return  # targeted frame: seq but no prev
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.repeats += 1
                return
            if int(buf[p + 8 : end - 1]) > last:
                self.gaps += 1
        self.last_seq = seq

    def went_live(self, proto: WsProto, now: float, snapshot: bool) -> None:
        if self.fleet.track_events:
            self.events.append((now, "live snapshot" if snapshot else "live replay"))
        self.fleet.live += 1

    async def connect_once(self) -> WsProto:
        fleet = self.fleet
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest())
        request = (
            f"GET {self.url_path()} HTTP/1.1\r\nHost: {fleet.host}:{fleet.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            # offered like a browser does; the server must not accept it (compression off)
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"Authorization: Bearer {fleet.token}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.presence = 0
        _transport, proto = await loop.create_connection(
            lambda: WsProto(self, request, accept), fleet.host, fleet.port
        )
        self.proto = proto
        try:
            await asyncio.wait_for(proto.opened, 30)
        except BaseException:
            if proto.transport is not None:
                proto.transport.close()
            raise
        self.connects += 1
        self._event("open")  # the 101 arrived; live = the first frame after it
        return proto

    async def run(self, initial: asyncio.Semaphore) -> None:
        """Connect (the first time through ``initial``), then reconnect with full jitter.

        Without ``reconnect`` (fanout, idle) a failed first connect is retried twice after
        0.5 s, and a closed connection stays closed.
        """
        fleet = self.fleet
        first = True
        while not fleet.stopping:
            try:
                if first:
                    async with initial:
                        proto = await self.connect_once()
                else:
                    proto = await self.connect_once()
            except (OSError, HandshakeError, TimeoutError) as exc:
                kind = "refused" if isinstance(exc, ConnectionRefusedError) else type(exc).__name__
                if isinstance(exc, HandshakeError):
                    kind = f"http {exc.status}"
                self._event(kind)
                if not fleet.reconnect:
                    self.attempt += 1
                    if self.attempt >= 3:
                        fleet.initial_failures += 1
                        fleet.settle()
                        return
                    await asyncio.sleep(0.5)
                    continue
            else:
                await proto.done
                if proto.live_at:
                    fleet.live -= 1
                code = proto.close_code if proto.close_code is not None else 1006
                fleet.close_codes[code] += 1
                self._event(f"close {code}")
                if proto.live_at and time.monotonic() - proto.live_at >= STABLE_AFTER:
                    self.attempt = 0
                if fleet.stopping or not fleet.reconnect:
                    return
            first = False
            delay = random.random() * min(MAX_DELAY, BASE_DELAY * 2.0 ** min(self.attempt, 30))
            self.attempt += 1
            await asyncio.sleep(delay)

    def _event(self, kind: str) -> None:
        if self.fleet.track_events:
            self.events.append((time.monotonic(), kind))


# --- a fleet: many clients in one worker process -------------------------------------------


class Fleet:
    """The clients of one worker process, and its side of the pipe to the driver."""

    def __init__(self, pipe: Connection, spec: dict[str, Any]) -> None:
        self.pipe = pipe
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.token: str = spec["token"]
        self.count: int = spec["clients"]
        self.concurrency: int = spec.get("concurrency", 32)
        self.reconnect: bool = spec.get("reconnect", False)
        self.resume: bool = spec.get("resume", True)
        self.record_arrivals: bool = spec.get("record_arrivals", False)
        self.track_events: bool = spec.get("track_events", False)
        self.clients = [Client(self, i) for i in range(self.count)]
        self.frames = 0
        self.live = 0
        self.initial_failures = 0
        self.settled = 0  # clients that are ready or gave up
        self.extension_headers: list[str] = []
        self.close_codes: Counter[int] = Counter()
        self.arrivals: dict[int, list[float]] = {}
        self.stopping = False
        self.all_settled = asyncio.Event()
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.stop_task: asyncio.Future[None] | None = None

    def client_ready(self, client: Client) -> None:
        if client.connects == 1:
            self.settle()

    def settle(self) -> None:
        """One more client is ready (first PRESENCE) or gave up."""
        self.settled += 1
        if self.settled >= self.count:
            self.all_settled.set()

    def arrived(self, seq: int, now: float) -> None:
        times = self.arrivals.get(seq)
        if times is None:
            times = self.arrivals[seq] = []
        times.append(now)
        if len(times) == self.live:
            self.pipe.send(("done", seq, min(times), max(times), len(times)))

    def summary(self, *, events: bool = False, arrivals: bool = False) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {
            "clients": self.count,
            "live": self.live,
            "ready": sum(1 for c in self.clients if c.presence),
            "initial_failures": self.initial_failures,
            "snapshots": sum(c.snapshots for c in self.clients),
            "got_snapshot_and_presence": sum(1 for c in self.clients if c.snapshots and c.presence),
            "frames": self.frames,
            "gaps": sum(c.gaps for c in self.clients),
            "repeats": sum(c.repeats for c in self.clients),
            "extension_headers": self.extension_headers[:3],
            "extension_header_count": len(self.extension_headers),
            "close_codes": dict(self.close_codes),
            "last_seqs": Counter(c.last_seq for c in self.clients),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
        }
        if events:
            out["events"] = [c.events for c in self.clients]
        if arrivals:
            out["arrivals"] = self.arrivals
        return out

    def live_since(self, t: float) -> int:
        """Clients whose current connection went live after ``t``."""
        return sum(
            1
            for c in self.clients
            if c.proto is not None and c.proto.live_at > t and not c.proto.done.done()
        )

    async def run(self) -> None:
        initial = asyncio.Semaphore(self.concurrency)
        self.tasks = [asyncio.create_task(c.run(initial)) for c in self.clients]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_settled.wait(), 120)
        self.pipe.send(("ready", self.summary()))
        # Polled, not loop.add_reader: that would make the pipe non-blocking for our sends.
        while not self.stopping:
            await asyncio.sleep(0.01)
            while self.pipe.poll() and not self.stopping:
                self._on_command(*self.pipe.recv())
        await self.finished

    def _on_command(self, command: str, *args: Any) -> None:
        if command == "summary":
            self.pipe.send(("summary", self.summary(**args[0])))
        elif command == "live_since":
            self.pipe.send(("live_since", self.live_since(args[0])))
        elif command == "stop":
            self.stopping = True
            self.stop_task = asyncio.ensure_future(self._stop(args[0]))

    async def _stop(self, options: dict[str, Any]) -> None:
        self.stopping = True
        for c in self.clients:
            if c.proto is not None and not c.proto.done.done():
                c.proto.close(1000)
        protos = [c.proto.done for c in self.clients if c.proto is not None]
        if protos:
            await asyncio.wait(protos, timeout=10)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pipe.send(("stopped", self.summary(**options)))
        self.finished.set_result(None)


def fleet_main(pipe: Connection, spec: dict[str, Any]) -> None:
    """Worker process entry point."""
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us, not Ctrl-C
    random.seed(spec.get("seed"))

    async def main() -> None:
        await Fleet(pipe, spec).run()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Fleets:
    """The driver's handle on several worker processes, ``clients`` spread over them."""

    def __init__(self, base_url: str, token: str, clients: int, processes: int, **spec: Any):
        host, port = base_url.split("://", 1)[1].rsplit(":", 1)
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        self.inbox: list[list[tuple[Any, ...]]] = []
        for i in range(processes):
            share = clients // processes + (1 if i < clients % processes else 0)
            ours, theirs = ctx.Pipe()
            worker_spec = dict(spec, host=host, port=int(port), token=token, clients=share)
            worker_spec["seed"] = (spec.get("seed") or 0) * 1000 + i
            proc = ctx.Process(target=fleet_main, args=(theirs, worker_spec), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(ours)
            self.procs.append(proc)
            self.inbox.append([])

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _expect(self, i: int, kind: str, timeout: float) -> tuple[Any, ...]:
        for j, message in enumerate(self.inbox[i]):
            if message[0] == kind:
                return self.inbox[i].pop(j)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.pipes[i].poll(left):
                raise TimeoutError(f"worker {i}: no {kind!r} within {timeout} s")
            message = self.pipes[i].recv()
            if message[0] == kind:
                return message
            self.inbox[i].append(message)

    def wait_ready(self, timeout: float = 180) -> list[dict[str, Any]]:
        return [self._expect(i, "ready", timeout)[1] for i in range(len(self.pipes))]

    def ask(self, command: str, *args: Any, timeout: float = 30) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, *args))
        return [self._expect(i, command, timeout)[1] for i in range(len(self.pipes))]

    def clear_inbox(self) -> None:
        for i, pipe in enumerate(self.pipes):
            while pipe.poll():
                self.inbox[i].append(pipe.recv())
            self.inbox[i] = [m for m in self.inbox[i] if m[0] != "done"]

    def wait_done(self, after_seq: int, timeout: float) -> dict[int, tuple[Any, ...]]:
        """The first ``done`` (seq > after_seq) of every worker: (seq, first, last, count)."""
        got: dict[int, tuple[Any, ...]] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.pipes):
            for i in range(len(self.pipes)):
                if i in got:
                    continue
                for j, message in enumerate(self.inbox[i]):
                    if message[0] == "done" and message[1] > after_seq:
                        got[i] = self.inbox[i].pop(j)
                        break
            if len(got) == len(self.pipes):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for pipe in wait([p for i, p in enumerate(self.pipes) if i not in got], left):
                i = self.pipes.index(pipe)
                self.inbox[i].append(pipe.recv())
        return got

    def stop(self, timeout: float = 60, **options: Any) -> list[dict[str, Any]]:
        out = []
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop", options))
        for i in range(len(self.pipes)):
            try:
                out.append(self._expect(i, "stopped", timeout)[1])
            except (TimeoutError, EOFError, OSError):
                out.append({})
        self.close()
        return out

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()

    def __enter__(self) -> Fleets:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the numeric fields of the workers' summaries."""
    total: dict[str, Any] = {}
    for s in summaries:
        for key, value in s.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict) and key in ("close_codes", "last_seqs"):
                acc = total.setdefault(key, Counter())
                acc.update(value)
            elif isinstance(value, list) and key == "extension_headers":
                total.setdefault(key, []).extend(value)
    return total


def histogram(values: list[float], width: int = 50, bucket: float = 1.0) -> list[str]:
    """Text histogram of ``values`` in ``bucket``-second buckets."""
    if not values:
        return ["(no values)"]
    top = int(max(values) // bucket) + 1
    counts = [0] * top
    for v in values:
        counts[min(int(v // bucket), top - 1)] += 1
    peak = max(counts)
    lines = []
    for i, n in enumerate(counts):
        bar = "#" * max(1 if n else 0, round(width * n / peak))
        lines.append(f"  {i * bucket:5.0f}-{(i + 1) * bucket:<3.0f}s |{bar:<{width}}| {n}")
    return lines
