"""Shared benchmark plumbing: a real ``camvault serve`` subprocess, logins, uploads, stats.

Every benchmark starts its own server on a free loopback port with a throwaway data dir,
measures over real HTTP, prints a table and writes one JSON line to bench/results/.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
CAMVAULT = VENV_BIN / "camvault"
PY_SPY = VENV_BIN / "py-spy"

HDF5 = b"\x89HDF\r\n\x1a\n"
ADMIN = "admin"
ADMIN_PASSWORD = "bench-admin-" + secrets.token_hex(8)
USER_PASSWORD = "bench-user-" + secrets.token_hex(8)
MIB = 1024 * 1024
MB = 1_000_000


# --- ports and the server process ---------------------------------------------------------


def free_port() -> int:
    """A port in 20000-32000 that binds right now on 127.0.0.1 (never port 0)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in 20000-32000")


@dataclass
class Server:
    """A running ``camvault serve``: its process, URL and data dir."""

    proc: subprocess.Popen[bytes]
    port: int
    data: Path
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)


def _pump(stream: Any, sink: list[str], ready: threading.Event) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        sink.append(line)
        if "camvault listening on" in line:
            ready.set()


@contextmanager
def temp_data_dir(prefix: str) -> Iterator[Path]:
    """A throwaway data dir, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"camvault-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_server(
    data: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 60.0
) -> Iterator[Server]:
    """Start ``camvault serve`` on ``data`` and stop it afterwards (SIGTERM, then SIGKILL)."""
    for _attempt in range(5):
        port = free_port()
        child_env = dict(os.environ, **(env or {}), CAMVAULT_ADMIN_PASSWORD=ADMIN_PASSWORD)
        argv = [str(CAMVAULT), "serve", "--data", str(data), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--log-level", "warning"]
        proc = subprocess.Popen(
            argv, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT
        )
        server = Server(proc, port, data)
        ready = threading.Event()
        threading.Thread(
            target=_pump, args=(proc.stdout, server.output, ready), daemon=True
        ).start()
        try:
            if _wait_ready(server, ready, startup_timeout):
                break
        except BaseException:
            _stop(proc)
            raise
        _stop(proc)
        if not any("address already in use" in line.lower() for line in server.output):
            raise RuntimeError("camvault serve did not start:\n" + "\n".join(server.output))
    else:
        raise RuntimeError("could not start camvault serve on a free port")
    try:
        yield server
    finally:
        _stop(proc)


def _wait_ready(server: Server, ready: threading.Event, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            time.sleep(0.1)  # let the pump thread collect the last lines
            return False
        if ready.is_set():
            try:
                if httpx.get(f"{server.base_url}/api/health", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise RuntimeError("camvault serve did not become healthy:\n" + "\n".join(server.output))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# --- preparing a data dir before the server starts ----------------------------------------


@contextmanager
def open_vault(data: Path, **overrides: Any) -> Iterator[Any]:
    """The real ``Camvault`` on ``data``, opened in-process (for populating before serving)."""
    from camvault.core import Camvault
    from camvault.settings import Settings

    camvault = Camvault(Settings(data=data, admin_password=ADMIN_PASSWORD, **overrides))
    camvault.open_sync()
    try:
        yield camvault
    finally:
        camvault.close()


def add_users(data: Path, names: list[str], *, admin: bool = True) -> None:
    """Create accounts with the same service call ``camvault user add`` makes.

    In-process because 50 CLI runs cost ~1.2 s each here (interpreter + imports +
    migrations check), which would eat most of a benchmark's time budget.
    """
    from camvault.services.auth import Role

    with open_vault(data) as camvault:
        if admin and camvault.auth.user_count() == 0:
            camvault.auth.create_user(ADMIN, Role.ADMIN, ADMIN_PASSWORD)
        for name in names:
            camvault.auth.create_user(name, Role.USER, USER_PASSWORD)


def cli_add_user(data: Path, name: str, role: str = "user") -> None:
    """``camvault user add`` exactly as an operator runs it."""
    subprocess.run(
        [str(CAMVAULT), "user", "add", name, "--role", role, "--password-stdin"]
        + ["--data", str(data)],
        input=(USER_PASSWORD + "\n").encode(),
        check=True,
        capture_output=True,
    )


# --- HTTP helpers -------------------------------------------------------------------------


def login(base_url: str, username: str = ADMIN, password: str | None = None) -> str:
    if password is None:
        password = ADMIN_PASSWORD if username == ADMIN else USER_PASSWORD
    response = httpx.post(
        f"{base_url}/api/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def client(base_url: str, token: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=auth(token), timeout=120, **kwargs)


def mcam_bytes(size: int, rng: random.Random | None = None) -> bytes:
    """``size`` bytes of .mcam content: the HDF5 signature, then random bytes."""
    body = (rng or random.Random()).randbytes(size - len(HDF5))
    return HDF5 + body


def upload_small(http: httpx.Client, name: str, content: bytes) -> None:
    response = http.post(
        "/api/files",
        files={"file": (name, content, "application/octet-stream")},
        data={"message": "bench"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload of {name} failed: {response.status_code} {response.text}")


def expect(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code not in codes:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


# --- lightweight clients for latency loops -----------------------------------------------
# httpx costs ~1.1 ms of client CPU per request here, the server ~0.2 ms for a health check;
# on a 2-core machine a load generator that heavy steals the server's CPU. These clients
# speak just enough HTTP/1.1 (keep-alive, Content-Length bodies) at ~0.1 ms per request.


def _request_bytes(method: str, path: str, host: str, token: str | None, body: Any) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(payload)}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, connection close) from a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this bench client")
        elif key == b"connection" and value.strip().lower() == b"close":
            close = True
    return status, length, close


class AsyncHttp:
    """One keep-alive HTTP/1.1 connection, asyncio streams, one request at a time."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        host_port = base_url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.hostport = host_port
        self.token = token
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, json_body: Any = None) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(_request_bytes(method, path, self.hostport, self.token, json_body))
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, length, close = _parse_head(head)
        body = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()
            self._reader = self._writer = None


class SyncHttp:
    """One keep-alive HTTP/1.1 connection over a plain socket, one request at a time."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        host_port = base_url.split("://", 1)[1]
        host, port = host_port.rsplit(":", 1)
        self.address = (host, int(port))
        self.hostport = host_port
        self.token = token
        self._sock: socket.socket | None = None
        self._buffer = b""

    def request(self, method: str, path: str, json_body: Any = None) -> tuple[int, bytes]:
        if self._sock is None:
            self._sock = socket.create_connection(self.address)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        self._sock.sendall(_request_bytes(method, path, self.hostport, self.token, json_body))
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status, length, close = _parse_head(head)
        chunks, have = [rest], len(rest)
        while have < length:
            piece = self._recv(max(65536, length - have))
            chunks.append(piece)
            have += len(piece)
        data = b"".join(chunks)
        body, self._buffer = data[:length], data[length:]
        if close:
            self.close()
        return status, body

    def _recv(self, size: int = 65536) -> bytes:
        assert self._sock is not None
        piece = self._sock.recv(size)
        if not piece:
            raise ConnectionError("server closed the connection")
        return piece

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def check(status: int, body: bytes, *codes: int, what: str = "") -> None:
    if status not in codes:
        raise RuntimeError(f"{what} -> {status}: {body[:300]!r}")


# --- a streamed multipart body ------------------------------------------------------------


@dataclass
class StreamedBody:
    """A multipart/form-data body produced chunk by chunk, with its exact length."""

    content_type: str
    length: int
    chunks: Callable[[], Iterator[bytes]]
    file_size: int


def multipart_stream(
    filename: str,
    file_size: int,
    fields: dict[str, str],
    *,
    chunk_size: int = MIB,
    pool_size: int = 16 * MIB,
    seed: int | None = None,
) -> StreamedBody:
    """A body whose file part is the HDF5 signature plus ``file_size - 8`` random bytes.

    The random bytes cycle through a ``pool_size`` pool (a fresh nonce up front makes each
    body's sha256 unique), so the client holds 16 MiB, not the whole file.
    """
    rng = random.Random(seed)
    pool = memoryview(rng.randbytes(pool_size))
    nonce = secrets.token_bytes(16)
    boundary = "camvaultbench" + secrets.token_hex(12)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        first = HDF5 + nonce
        yield head + first
        remaining = file_size - len(first)
        offset = 0
        while remaining > 0:
            n = min(chunk_size, remaining, pool_size - offset)
            yield pool[offset : offset + n].tobytes()
            offset = (offset + n) % pool_size
            remaining -= n
        yield tail

    return StreamedBody(
        content_type=f"multipart/form-data; boundary={boundary}",
        length=len(head) + file_size + len(tail),
        chunks=chunks,
        file_size=file_size,
    )


def post_streamed(
    http: httpx.Client, path: str, body: StreamedBody, *, progress: Callable[[int], None] | None
) -> tuple[httpx.Response, float, float]:
    """POST the streamed body; returns (response, seconds to send the body, total seconds)."""
    sent_at: list[float] = []

    def counted() -> Iterator[bytes]:
        total = 0
        for chunk in body.chunks():
            yield chunk
            total += len(chunk)
            if progress is not None:
                progress(total)
        sent_at.append(time.perf_counter())

    headers = {"Content-Type": body.content_type, "Content-Length": str(body.length)}
    start = time.perf_counter()
    response = http.post(path, content=counted(), headers=headers)
    end = time.perf_counter()
    send_s = (sent_at[0] if sent_at else end) - start
    return response, send_s, end - start


SINK_SCRIPT = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(4)
print("ready", flush=True)
conn, _ = srv.accept()
buf = bytearray(1 << 20)
while True:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            sys.exit(0)
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    left = length - len(rest)
    view = memoryview(buf)
    while left > 0:
        left -= conn.recv_into(view, min(len(buf), left))
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
"""


def client_only_throughput(file_size: int, repeats: int = 2) -> list[float]:
    """MB/s of the same streamed client against a discard-only socket server (no camvault)."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK_SCRIPT, str(port)], stdout=subprocess.PIPE)
    try:
        assert sink.stdout is not None
        sink.stdout.readline()
        rates = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            for _ in range(repeats):
                body = multipart_stream("sink.mcam", file_size, {"message": "x"})
                response, _send, total = post_streamed(http, "/", body, progress=None)
                response.raise_for_status()
                rates.append(file_size / MB / total)
        return rates
    finally:
        sink.kill()
        sink.wait()


# --- process memory -----------------------------------------------------------------------


def read_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), read_rss_kib(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_kib(self) -> int:
        return max(kib for _t, kib in self.samples)


# --- machine noise -----------------------------------------------------------------------

_HZ = os.sysconf("SC_CLK_TCK")


def _machine_busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    return sum(fields[:8]) - fields[3] - fields[4]


def _process_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0
    # utime, stime, cutime, cstime (fields 14-17 of proc(5))
    return sum(int(x) for x in fields[11:15])


def wait_for_quiet(limit_cores: float = 0.3, max_wait: float = 10.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``limit_cores``; returns it.

    Other jobs share this 2-core machine; starting in a quiet moment removes some noise.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy0, t0 = _machine_busy_ticks(), time.perf_counter()
        time.sleep(1.0)
        cores = (_machine_busy_ticks() - busy0) / _HZ / (time.perf_counter() - t0)
        if cores < limit_cores or time.monotonic() > deadline:
            if cores >= limit_cores:
                step(f"machine still busy ({cores:.2f} cores used by others); going on")
            return cores


class CpuMonitor:
    """CPU used by the whole machine vs by the benchmark's own processes, in cores.

    On a shared 2-core machine another job's CPU skews every number; this row says how much.
    Children reaped during the run count as ours through this process's cutime/cstime.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = [os.getpid(), *pids]
        self.machine_cores = 0.0
        self.own_cores = 0.0
        self.per_pid: dict[int, float] = {}

    def __enter__(self) -> CpuMonitor:
        self._t0 = time.perf_counter()
        self._busy0 = _machine_busy_ticks()
        self._ticks0 = {p: _process_ticks(p) for p in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        busy = _machine_busy_ticks() - self._busy0
        self.per_pid = {p: (_process_ticks(p) - t) / _HZ / wall for p, t in self._ticks0.items()}
        self.machine_cores = busy / _HZ / wall
        self.own_cores = sum(self.per_pid.values())

    @property
    def server_cores(self) -> float:
        """CPU of the first pid passed in (the server), in cores."""
        return self.per_pid.get(self.pids[1], 0.0) if len(self.pids) > 1 else 0.0

    @property
    def other_cores(self) -> float:
        return max(0.0, self.machine_cores - self.own_cores)

    def row(self, label: str = "run") -> Row:
        return info(
            f"CPU of other processes during {label}",
            self.other_cores,
            "cores",
            f"of {os.cpu_count()}; server used {self.server_cores:.2f}, bench client "
            f"{self.own_cores - self.server_cores:.2f}; > 0.2 others = noisy numbers",
        )


# --- profiling (optional: py-spy in the venv) ---------------------------------------------


class PySpy:
    """``py-spy record`` on the server while a phase runs; summarises self and total time."""

    def __init__(self, pid: int, label: str, *, rate: int = 250) -> None:
        self.pid = pid
        self.path = RESULTS_DIR / f"{label}.pyspy.txt"
        self.label = label
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return PY_SPY.exists()

    def __enter__(self) -> PySpy:
        RESULTS_DIR.mkdir(exist_ok=True)
        argv = [str(PY_SPY), "record", "--pid", str(self.pid), "--rate", str(self.rate)]
        argv += ["--format", "raw", "--output", str(self.path), "--nonblocking", "--threads"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attach before the phase starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def summary(self, top: int = 12) -> dict[str, list[tuple[str, float]]]:
        """Top functions by self and by inclusive share of samples (all threads, idle excluded)."""
        if not self.path.exists():
            return {"self": [], "total": []}
        self_counts: dict[str, int] = {}
        total_counts: dict[str, int] = {}
        samples = 0
        for line in self.path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if f and not f.startswith("thread (")]
            frames = [f for f in frames if not f.startswith("process ")]
            if not frames:
                continue
            samples += count
            leaf = frames[-1]
            self_counts[leaf] = self_counts.get(leaf, 0) + count
            for frame in set(frames):
                total_counts[frame] = total_counts.get(frame, 0) + count

        def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
            best = sorted(counts.items(), key=lambda item: -item[1])[:top]
            return [(name, round(100 * n / max(samples, 1), 1)) for name, n in best]

        return {"self": ranked(self_counts), "total": ranked(total_counts)}

    def print_summary(self, top: int = 12) -> dict[str, list[tuple[str, float]]]:
        summary = self.summary(top)
        print(f"\npy-spy ({self.label}): % of non-idle samples, raw stacks in {self.path}")
        for kind in ("self", "total"):
            print(f"  by {kind} time:")
            for name, pct in summary[kind]:
                print(f"    {pct:5.1f}%  {name}")
        return summary


# --- statistics and reporting -------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def dist_ms(seconds: list[float]) -> dict[str, float]:
    """n, p50, p90, p95, p99, max and mean of a list of durations, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 2),
        "p90": round(pct(ms, 90), 2),
        "p95": round(pct(ms, 95), 2),
        "p99": round(pct(ms, 99), 2),
        "max": round(max(ms), 2) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


@dataclass
class Row:
    """One line of the results table: what, the number, the goal, and whether it is met."""

    metric: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""


def goal_le(metric: str, value: float, limit: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, f"<= {limit:g} {unit}", value <= limit, note)


def goal_ge(metric: str, value: float, limit: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, f">= {limit:g} {unit}", value >= limit, note)


def info(metric: str, value: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, "", None, note)


def print_table(title: str, rows: list[Row]) -> None:
    header = ("metric", "measured", "goal", "met", "note")
    cells = [
        (
            r.metric,
            f"{r.value:,.2f} {r.unit}",
            r.goal,
            "" if r.met is None else ("yes" if r.met else "NO"),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n== {title} ==")
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)).rstrip())
    for c in cells:
        print(line.format(*c).rstrip())


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def write_result(name: str, rows: list[Row], extra: dict[str, Any]) -> Path:
    """One JSON line with every row and the raw distributions: bench/results/<name>.json."""
    RESULTS_DIR.mkdir(exist_ok=True)
    record = {
        "bench": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "rows": [
            {
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "goal": r.goal,
                "met": r.met,
                "note": r.note,
            }
            for r in rows
        ],
        **extra,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(record, default=str) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


_STARTED = time.perf_counter()


def step(message: str) -> None:
    """A progress line on stderr, so a slow phase shows where the time goes."""
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def wants_profile() -> bool:
    """``--profile`` on the command line: record the server with py-spy during key phases."""
    return "--profile" in sys.argv[1:]
