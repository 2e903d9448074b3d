"""A real git smart-HTTP server for tests: ``git http-backend`` as CGI plus a Git LFS server.

It serves every bare repository under ``root`` at ``http://127.0.0.1:PORT/NAME.git`` with
HTTP basic auth (any user name, the password must be ``token``), and implements the Git LFS
batch API with the basic transfer adapter (upload, download, verify), storing objects in
``NAME.git/lfs/objects/aa/bb/<oid>`` like git-lfs does. It can be stopped and started again
on the same port, so a test can take the remote away and bring it back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from e2e.server import free_port

LFS_TYPE = "application/vnd.git-lfs+json"
_LFS_PATH = re.compile(r"^/(?P<repo>[A-Za-z0-9_.-]+\.git)/info/lfs/objects(?P<rest>/.*)?$")
_OID = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024


@dataclass
class Seen:
    """One request the server answered: for assertions on what clients sent."""

    method: str
    path: str
    status: int
    authorized: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no chunked responses to write

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # the tests look at GitHttpServer.seen instead

    # --- plumbing ---------------------------------------------------------------------------

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return bool(user) and password == self.server.owner.token

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)
        self._seen(status)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), LFS_TYPE)

    def _seen(self, status: int) -> None:
        with self.server.owner.lock:
            path = self.path.split("?", 1)[0]
            self.server.owner.seen.append(Seen(self.command, path, status, self._authorized()))

    def _handle(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.arrived += 1
        if owner.hang_seconds:
            time.sleep(owner.hang_seconds)  # a remote that accepts and then says nothing
        if not self._authorized():
            self._body()
            self._send(
                401, b"authentication required\n", "text/plain", WWW_Authenticate='Basic realm="t"'
            )
            return
        match = _LFS_PATH.match(self.path.split("?", 1)[0])
        if match:
            self._lfs(match["repo"], match["rest"] or "")
        else:
            self._git()

    do_GET = do_POST = do_PUT = _handle  # noqa: N815 - BaseHTTPRequestHandler's names

    # --- git smart HTTP through git http-backend (CGI) --------------------------------------

    def _git(self) -> None:
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_USER": "tester",  # an authenticated user: http-backend allows receive-pack
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        with tempfile.TemporaryFile() as body:
            data = self._body()
            body.write(data)
            body.seek(0)
            env["CONTENT_LENGTH"] = str(len(data))
            done = subprocess.run(
                ["git", "http-backend"], stdin=body, capture_output=True, env=env, timeout=60
            )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            self._send(500, done.stderr or b"http-backend said nothing", "text/plain")
            return
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self._seen(status)

    # --- Git LFS: batch API + basic transfers -----------------------------------------------

    def _object_path(self, repo: str, oid: str) -> Path:
        return self.server.owner.root / repo / "lfs" / "objects" / oid[:2] / oid[2:4] / oid

    def _lfs(self, repo: str, rest: str) -> None:
        if not (self.server.owner.root / repo).is_dir():
            self._json(404, {"message": f"no repository {repo}"})
        elif rest == "/batch" and self.command == "POST":
            self._batch(repo)
        elif (m := re.fullmatch(r"/([0-9a-f]{64})/verify", rest)) and self.command == "POST":
            self._verify(repo, m[1])
        elif (m := re.fullmatch(r"/([0-9a-f]{64})", rest)) and self.command == "PUT":
            self._upload(repo, m[1])
        elif (m := re.fullmatch(r"/([0-9a-f]{64})", rest)) and self.command == "GET":
            self._download(repo, m[1])
        else:
            self._json(404, {"message": "not found"})

    def _batch(self, repo: str) -> None:
        request = json.loads(self._body())
        operation = request.get("operation")
        base = f"http://127.0.0.1:{self.server.owner.port}/{repo}/info/lfs/objects"
        # Like GitLab: the actions carry the authorization the transfers must send.
        auth = {"Authorization": self.headers["Authorization"]}
        answers = []
        for obj in request.get("objects", []):
            oid, size = obj.get("oid", ""), obj.get("size", -1)
            answer: dict[str, Any] = {"oid": oid, "size": size}
            if not _OID.fullmatch(oid) or not isinstance(size, int) or size < 0:
                answer["error"] = {"code": 422, "message": "bad oid or size"}
            elif operation == "upload":
                stored = self._object_path(repo, oid)
                if not (stored.is_file() and stored.stat().st_size == size):
                    answer["actions"] = {
                        "upload": {"href": f"{base}/{oid}", "header": auth},
                        "verify": {"href": f"{base}/{oid}/verify", "header": auth},
                    }
            elif operation == "download":
                if self._object_path(repo, oid).is_file():
                    answer["actions"] = {"download": {"href": f"{base}/{oid}", "header": auth}}
                else:
                    answer["error"] = {"code": 404, "message": "object not found"}
            answers.append(answer)
        self._json(200, {"transfer": "basic", "objects": answers, "hash_algo": "sha256"})

    def _upload(self, repo: str, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            self._json(422, {"message": "the body does not match its oid"})
            return
        dest = self._object_path(repo, oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        with self.server.owner.lock:
            self.server.owner.uploaded.append(oid)
        self._send(200, b"", "text/plain")

    def _verify(self, repo: str, oid: str) -> None:
        request = json.loads(self._body())
        stored = self._object_path(repo, oid)
        if stored.is_file() and stored.stat().st_size == request.get("size"):
            self._json(200, {"message": "ok"})
        else:
            self._json(404, {"message": "object missing or of another size"})

    def _download(self, repo: str, oid: str) -> None:
        stored = self._object_path(repo, oid)
        if not stored.is_file():
            self._json(404, {"message": "object not found"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(stored.stat().st_size))
        self.end_headers()
        with stored.open("rb") as handle:
            _copy(handle, self.wfile)
        self._seen(200)


def _copy(src: BinaryIO, dst: Any) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    owner: GitHttpServer


@dataclass
class GitHttpServer:
    """Serves the bare repositories under ``root`` until ``stop()``; ``start()`` again on the
    same port brings it back."""

    root: Path
    token: str
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    arrived: int = 0  # requests received, answered or not
    hang_seconds: float = 0.0  # > 0: every request waits this long before any answer
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repo}"

    def create_repo(self, name: str) -> Path:
        """A new empty bare repository that accepts pushes."""
        path = self.root / name
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
            check=True,
            timeout=30,
        )
        return path

    def remove_repo(self, name: str) -> None:
        shutil.rmtree(self.root / name)

    def start(self) -> GitHttpServer:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: clients now get 'connection refused'."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def unauthorized(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if not s.authorized]

    def auth_header(self, user: str = "oauth2") -> str:
        """The ``Authorization`` value a client must send (for test clones)."""
        return "Basic " + base64.b64encode(f"{user}:{self.token}".encode()).decode()
