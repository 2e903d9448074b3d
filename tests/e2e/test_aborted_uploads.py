"""A client that vanishes mid-upload leaves no file, no version and no temp file behind."""

from __future__ import annotations

import os
import secrets
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import HDF5, PASSWORD

from e2e.server import Launcher, Server, upload

MIB = 1024 * 1024
DECLARED = 5 * MIB
SENT = 1 * MIB


def upload_files(server: Server) -> list[Path]:
    return sorted((server.data / "tmp").rglob("upload-*"))


def wait_for(condition: Callable[[], object], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def abort_mid_stream(
    server: Server, token: str, path: str, filename: str, *, reset: bool = False
) -> None:
    """POST a multipart body announced as 5 MB, send 1 MB of it, then drop the connection.

    ``reset`` closes with an RST (SO_LINGER 0) instead of an orderly FIN.
    """
    boundary = f"camvault{secrets.token_hex(8)}"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="message"\r\n\r\n'
        "never finished\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    request = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {DECLARED}\r\n"
        "\r\n"
    ).encode()
    body = head + HDF5 + os.urandom(SENT - len(head) - len(HDF5))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(request + body)
        # The server has started spooling the file: the abort really is mid-stream.
        wait_for(lambda: upload_files(server), "the server spools the upload to tmp/")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


@pytest.mark.slow
def test_upload_aborted_mid_stream_leaves_nothing(launch: Launcher, tmp_path: Path) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD)
    token = server.login("admin", PASSWORD)

    abort_mid_stream(server, token, "/api/files", "1234567_A1.mcam")
    wait_for(lambda: not upload_files(server), "the aborted upload's temp file is removed")
    with server.client(token) as admin:
        assert admin.get("/api/health").status_code == 200
        assert admin.get("/api/files").json()["groups"] == {}
        assert admin.get("/api/files/1234567_A1.mcam").status_code == 404

        # Same for a check-in by the holder, cut with an RST this time.
        assert upload(admin, "7654321_B2.mcam", HDF5 + b"v1").status_code == 201
        assert admin.post("/api/files/7654321_B2.mcam/checkout", json={}).status_code == 200
        before = admin.get("/api/files/7654321_B2.mcam").json()

        abort_mid_stream(
            server, token, "/api/files/7654321_B2.mcam/checkin", "7654321_B2.mcam", reset=True
        )
        wait_for(lambda: not upload_files(server), "the aborted check-in's temp file is removed")
        assert admin.get("/api/health").status_code == 200
        after = admin.get("/api/files/7654321_B2.mcam").json()
        assert after == before, "an aborted check-in changes nothing (version, lock, sha256)"
        assert after["lock"]["user"] == "admin"
        versions = admin.get("/api/files/7654321_B2.mcam/versions").json()
        assert [v["version"] for v in versions] == [1]
        # The server still takes a real check-in afterwards.
        response = admin.post(
            "/api/files/7654321_B2.mcam/checkin",
            files={"file": ("7654321_B2.mcam", HDF5 + b"v2", "application/octet-stream")},
            data={"message": "v2"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 2
