"""Launch the real ``camvault serve`` and CLI in subprocesses, and talk to them over HTTP.

Every server writes its stdout and stderr to files under the test's tmp dir, so a failure
can show what the process said; the ``Launcher`` stops (or kills) every server it started.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The console script next to the interpreter running the tests (the project's venv).
CAMVAULT = Path(sys.executable).with_name("camvault")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0
CLI_SECONDS = 60.0
# Ports below the Linux ephemeral range, so an outgoing connection never holds ours.
PORT_RANGE = (20000, 32000)


def camvault_command() -> str:
    if CAMVAULT.exists():
        return str(CAMVAULT)
    found = shutil.which("camvault")
    if found is None:
        raise RuntimeError("the camvault console script is not installed")
    return found


def free_port() -> int:
    """A port in PORT_RANGE that nothing listens on right now (never 0)."""
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any CAMVAULT_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMVAULT_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str, stdin: str | None = None, timeout: float = CLI_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run ``camvault ARGS`` to completion and return what it did."""
    return subprocess.run(
        [camvault_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """One running ``camvault serve`` process."""

    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    database_url: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> str:
        """Both streams, for assertion messages."""
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()[-8000:]}"

    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def login(self, username: str, password: str) -> str:
        """Log in and return the bearer token."""
        with self.client() as anon:
            response = anon.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def websockets_open(self, admin_token: str) -> int:
        """``camvault_websockets_open`` from this instance's own /metrics (admin only)."""
        with self.client(admin_token) as api:
            text = api.get("/metrics").text
        match = re.search(r"^camvault_websockets_open (\S+)$", text, re.MULTILINE)
        assert match, text[:2000]
        return int(float(match.group(1)))

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``camvault ARGS`` on this server's data dir and database."""
        database = ["--database-url", self.database_url] if self.database_url else []
        return run_cli(*args, "--data", str(self.data), *database, stdin=stdin)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        """SIGTERM and wait for a graceful exit; SIGKILL if it does not come."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.wait(timeout=STOP_SECONDS)

    def wait_ready(self, deadline: float) -> bool:
        """Wait for the listening line and a 200 from /api/health.

        Returns False if the process died because its port was taken (the caller retries
        on another port); raises for any other failure.
        """
        banner = f"camvault listening on {self.base_url}"
        while time.monotonic() < deadline:
            if not self.alive():
                if re.search(r"address already in use", self.stderr(), re.IGNORECASE):
                    return False
                raise AssertionError(
                    f"camvault serve exited with {self.proc.returncode}\n{self.logs()}"
                )
            if banner in self.stdout():
                try:
                    response = httpx.get(f"{self.base_url}/api/health", timeout=2.0)
                except httpx.TransportError:
                    pass
                else:
                    if response.status_code == 200:
                        return True
            time.sleep(0.05)
        raise AssertionError(f"camvault serve not ready after {STARTUP_SECONDS} s\n{self.logs()}")


@dataclass
class Launcher:
    """Starts servers for one test and makes sure none outlives it."""

    log_dir: Path
    servers: list[Server] = field(default_factory=list)

    def start(
        self,
        data: Path,
        *,
        admin_password: str | None,
        database_url: str | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        """Start ``camvault serve --data DATA`` and wait until it answers.

        ``port`` None picks a free one (retrying if another process takes it first); ``env``
        adds environment variables (e.g. ``CAMVAULT_*`` settings).
        """
        extra = dict(env or {})
        if admin_password is not None:
            extra["CAMVAULT_ADMIN_PASSWORD"] = admin_password
        deadline = time.monotonic() + STARTUP_SECONDS
        for _attempt in range(1 if port is not None else 5):
            chosen = port if port is not None else free_port()
            n = len(self.servers)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stdout_path = self.log_dir / f"server-{n:02d}-{chosen}.out"
            stderr_path = self.log_dir / f"server-{n:02d}-{chosen}.err"
            args = [camvault_command(), "serve", "--data", str(data)]
            args += ["--host", "127.0.0.1", "--port", str(chosen)]
            if database_url is not None:
                args += ["--database-url", database_url]
            with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
                proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=clean_env(**extra)
                )
            server = Server(data, chosen, proc, stdout_path, stderr_path, database_url)
            self.servers.append(server)
            try:
                ready = server.wait_ready(deadline)
            except BaseException:
                server.kill()
                raise
            if ready:
                return server
        raise AssertionError("camvault serve could not bind its port: it is in use")

    def close(self) -> None:
        """Stop every server still running (kill the stubborn ones)."""
        for server in self.servers:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                server.kill()


def upload(
    client: httpx.Client, name: str, content: bytes, *, message: str = "", description: str = ""
) -> httpx.Response:
    """POST /api/files: a new file."""
    return client.post(
        "/api/files",
        files={"file": (name, content, "application/octet-stream")},
        data={"description": description, "message": message},
    )


def checkin(
    client: httpx.Client, name: str, content: bytes, *, message: str, keep_locked: bool = False
) -> httpx.Response:
    """POST /api/files/NAME/checkin: a new version from the lock holder."""
    return client.post(
        f"/api/files/{name}/checkin",
        files={"file": (name, content, "application/octet-stream")},
        data={"message": message, "keep_locked": "true" if keep_locked else "false"},
    )


def git(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run git, fail loudly on a non-zero exit, and return its stdout."""
    done = subprocess.run(
        ["git", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=CLI_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def isolated_git_env(home: Path) -> dict[str, str]:
    """An environment where git reads no system or user config but ``home/.gitconfig``."""
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    (home / ".gitconfig").touch()
    return env


def git_fsck(repo: Path, env: dict[str, str], *extra: str) -> None:
    """``git fsck --strict`` must exit 0 and say nothing at all (dangling objects aside)."""
    done = subprocess.run(
        ["git", "-C", str(repo), "fsck", "--strict", "--no-dangling", "--no-progress", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=CLI_SECONDS,
        check=False,
    )
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and not said, f"git fsck in {repo}:\n{said}"


def git_versions(repo: Path, env: dict[str, str]) -> list[tuple[str, int, str, str]]:
    """(file, version, sha256, commit) of every non-delete commit on main, from git's trailers."""
    fields = ("Camvault-File", "Camvault-Action", "Camvault-Version", "Camvault-Sha256")
    trailer = "%x1f".join(f"%(trailers:key={key},valueonly,separator=)" for key in fields)
    out = git("-C", str(repo), "log", "main", f"--format=%H%x1f{trailer}", env=env)
    found = []
    for line in out.splitlines():
        commit, filename, action, version, sha = line.split("\x1f")
        if action != "delete":
            found.append((filename, int(version), sha, commit))
    return sorted(found)
