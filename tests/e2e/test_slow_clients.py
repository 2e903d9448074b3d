"""Slow clients (slowloris) against the real server: a request head or an upload body that
trickles in is cut by the settings, leaves nothing behind, and costs other clients nothing."""

from __future__ import annotations

import json
import secrets
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from helpers import HDF5, PASSWORD, mcam

from e2e.server import Launcher, Server, checkin, upload
from e2e.test_aborted_uploads import upload_files, wait_for

pytestmark = pytest.mark.slow

TRICKLE_EVERY = 0.3


def read_answer(sock: socket.socket, seconds: float = 30.0) -> tuple[int, dict[str, object]]:
    """Read one HTTP answer up to EOF (the server closes after it); status and JSON body."""
    sock.settimeout(seconds)
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def trickle_until_answered(sock: socket.socket, piece: bytes, seconds: float = 30.0) -> None:
    """Send ``piece`` every TRICKLE_EVERY s until the server says something (or closes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], TRICKLE_EVERY)
        if readable:
            return
        sock.sendall(piece)
    raise AssertionError(f"the server let a slow client trickle for {seconds} s")


def multipart_head(server: Server, token: str, path: str, filename: str) -> tuple[bytes, bytes]:
    """The request head and the start of a multipart body announcing a 5 MB file part."""
    boundary = f"camvault{secrets.token_hex(8)}"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="message"\r\n\r\n'
        "slow\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + HDF5
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {5_000_000}\r\n"
        "\r\n"
    ).encode()
    return head, body + b"\0" * 200_000


def test_a_trickling_checkin_is_cut_with_408_and_leaves_the_lock_and_no_temp_file(
    launch: Launcher, tmp_path: Path
) -> None:
    # 1 KiB/s over 1.5 s windows: 10 bytes every 0.3 s is far too slow.
    env = {"CAMVAULT_BODY_TIMEOUT": "1.5", "CAMVAULT_BODY_MIN_RATE": "1024"}
    server = launch.start(tmp_path / "data", admin_password=PASSWORD, env=env)
    token = server.login("admin", PASSWORD)
    with server.client(token) as api:
        assert upload(api, "1234567_A1.mcam", mcam(b"v1")).status_code == 201
        assert api.post("/api/files/1234567_A1.mcam/checkout", json={}).status_code == 200

    head, start = multipart_head(server, token, "/api/files/1234567_A1.mcam/checkin", "a.mcam")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + start)
        wait_for(lambda: upload_files(server), "the server spools the upload to tmp/")
        trickle_until_answered(sock, b"\0" * 10)
        status, answer = read_answer(sock)

    assert status == 408, answer
    assert answer["error"]["code"] == "request_timeout"  # type: ignore[index]
    wait_for(lambda: not upload_files(server), "the cut upload's temp file is removed")
    with server.client(token) as api:
        record = api.get("/api/files/1234567_A1.mcam").json()
        assert record["version"] == 1
        assert record["lock"]["user"] == "admin"
        # The lock still works: the holder checks in normally afterwards.
        done = checkin(api, "1234567_A1.mcam", mcam(b"v2"), message="after the slow one")
        assert done.status_code == 200, done.text


def test_a_stalled_json_body_gets_408_too(launch: Launcher, tmp_path: Path) -> None:
    env = {"CAMVAULT_BODY_TIMEOUT": "1", "CAMVAULT_BODY_MIN_RATE": "0"}
    server = launch.start(tmp_path / "data", admin_password=PASSWORD, env=env)
    request = (
        f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 60\r\n\r\n"
        '{"username": "adm'
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)  # then nothing more
        status, answer = read_answer(sock)
    assert status == 408
    assert answer["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_a_request_head_sent_too_slowly_is_answered_408_and_closed(
    launch: Launcher, tmp_path: Path
) -> None:
    server = launch.start(
        tmp_path / "data", admin_password=PASSWORD, env={"CAMVAULT_HEADER_TIMEOUT": "1"}
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
        trickle_until_answered(sock, b"X-Slow: 1\r\n")
        status, answer = read_answer(sock)
    assert status == 408
    assert answer["error"]["code"] == "request_timeout"  # type: ignore[index]
    # A connection that never says anything is closed too.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        status, _answer = read_answer(sock)
    assert status == 408


@contextmanager
def hanging_clients(server: Server, token: str, heads: int, uploads: int) -> Iterator[None]:
    """``heads`` connections stuck mid-header and ``uploads`` stuck mid-body, held open."""
    with ExitStack() as stack:
        for _ in range(heads):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            sock.sendall(b"GET /api/files HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for i in range(uploads):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            head, start = multipart_head(server, token, "/api/files", f"7000{i:03d}_S.mcam")
            sock.sendall(head + start)
        wait_for(lambda: len(upload_files(server)) == uploads, "every slow upload is spooling")
        yield


def test_normal_clients_are_served_while_many_slow_clients_hang(
    launch: Launcher, tmp_path: Path
) -> None:
    # Default timeouts (10 s for heads, 30 s for bodies): the slow ones hang throughout.
    server = launch.start(tmp_path / "data", admin_password=PASSWORD)
    token = server.login("admin", PASSWORD)
    with hanging_clients(server, token, heads=200, uploads=20):
        other = server.login("admin", PASSWORD)
        with server.client(other) as api:
            assert upload(api, "1234567_A1.mcam", mcam(b"v1")).status_code == 201
            assert api.post("/api/files/1234567_A1.mcam/checkout", json={}).status_code == 200
            done = checkin(api, "1234567_A1.mcam", mcam(b"v2"), message="while they hang")
            assert done.status_code == 200, done.text
            assert api.get("/api/files/1234567_A1.mcam/content").content == mcam(b"v2")
            names = [f["filename"] for g in api.get("/api/files").json()["groups"].values()
                     for f in g]  # fmt: skip
            assert names == ["1234567_A1.mcam"]
        assert len(upload_files(server)) == 20  # they really were still hanging
    wait_for(lambda: not upload_files(server), "the abandoned uploads' temp files are removed")
