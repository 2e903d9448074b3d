"""Shared benchmark plumbing: a real ``camvault serve`` subprocess, logins, HTTP clients.

Every benchmark starts its own server on a free loopback port with a throwaway data dir and
measures over real HTTP; measuring and reporting helpers are in ``_measure``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
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
from _measure import read_rss_kib

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
CAMVAULT = VENV_BIN / "camvault"

HDF5 = b"\x89HDF\r\n\x1a\n"
ADMIN = "admin"
ADMIN_PASSWORD = "bench-admin-" + secrets.token_hex(8)
# The WebSocket benchmarks play thousands of users with one account: lift the per-user
# socket limit (a flood bound, see bench/abuse.py) for every benchmark server.
SERVER_ENV = {"CAMVAULT_ADMIN_PASSWORD": ADMIN_PASSWORD, "CAMVAULT_WS_MAX_PER_USER": "1000000"}
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
        child_env = {**os.environ, **SERVER_ENV, **(env or {})}
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
        if proc.poll() is not None:
            # Died under the benchmark: show why instead of a bare "connection refused".
            print(
                f"camvault serve exited early with {proc.returncode}:\n" + "\n".join(server.output),
                file=sys.stderr,
            )
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
        request = _request_bytes(method, path, self.hostport, self.token, json_body)
        reused = self._sock is not None
        try:
            self._send_and_wait_head(request)
        except (ConnectionError, BrokenPipeError):
            if not reused or self._buffer:
                raise
            # The server closed an idle keep-alive connection before reading the request:
            # nothing was processed, so sending it again on a new connection is safe.
            self.close()
            self._send_and_wait_head(request)
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

    def _send_and_wait_head(self, request: bytes) -> None:
        if self._sock is None:
            self._sock = socket.create_connection(self.address)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        self._sock.sendall(request)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()

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
