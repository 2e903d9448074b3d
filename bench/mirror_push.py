"""Mirror push: 100 new versions to a local remote, over file:// and over smart HTTP.

For each remote: 100 versions (.mcam, 256 KiB, LFS) are checked in with no mirror, then
the mirror is configured and timed until the remote has them all (one catch-up push:
LFS objects, then main). Then 100 more check-ins run with the mirror live: their latency
(against the first 100, without a mirror: the mirror must not slow a check-in) and the lag
from the last check-in to "synced". The HTTP remote is tests/git_server.py (git
http-backend as CGI + a Python LFS server) in this process, so its own overhead counts.

    .venv/bin/python bench/mirror_push.py [--quick]
"""

from __future__ import annotations

import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _measure as m
import _server as b

sys.path.insert(0, str(b.ROOT / "tests"))
from git_server import GitHttpServer  # noqa: E402 - the tests' server, found via sys.path

MIRROR = "/api/admin/mirror"
SIZE = 256 * 1024
FILES = 10


def new_versions(http: b.httpx.Client, n: int, rng: random.Random, first: bool) -> list[float]:
    """``n`` check-ins spread over FILES files (uploads when ``first``); their latencies."""
    latencies = []
    for i in range(n):
        name = f"70000{i % FILES:02d}_A.mcam"
        content = b.mcam_bytes(SIZE, rng)
        started = time.perf_counter()
        if first and i < FILES:
            b.upload_small(http, name, content)
        else:
            b.expect(http.post(f"/api/files/{name}/checkout", json={}), 200)
            files = {"file": (name, content, "application/octet-stream")}
            b.expect(http.post(f"/api/files/{name}/checkin", files=files,
                               data={"message": f"bench {i}"}), 200)  # fmt: skip
        latencies.append(time.perf_counter() - started)
    return latencies


def head(data: Path) -> str:
    done = subprocess.run(["git", "--git-dir", str(data / "vault.git"), "rev-parse", "main"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def wait_synced(http: b.httpx.Client, commit: str, timeout: float = 600) -> float:
    """Seconds until GET says the remote has ``commit``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        status = http.get(MIRROR).json()
        if status["state"] == "synced" and status["last_pushed"] == commit:
            return time.perf_counter() - started
        if status["state"] == "failing":
            raise RuntimeError(f"the mirror push failed: {status['last_error']}")
        time.sleep(0.02)
    raise RuntimeError(f"not synced after {timeout} s")


@contextmanager
def file_remote(tmp: Path) -> Iterator[tuple[str, str | None]]:
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)],
                   check=True)  # fmt: skip
    yield f"file://{remote}", None


@contextmanager
def http_remote(tmp: Path) -> Iterator[tuple[str, str | None]]:
    token = secrets.token_urlsafe(20)
    (tmp / "srv").mkdir()
    with GitHttpServer(tmp / "srv", token) as server:
        server.create_repo("vault.git")
        yield server.url("vault.git"), token


def run(kind: str, remote: Callable[[Path], Any], n: int) -> tuple[list[m.Row], dict[str, Any]]:
    rng = random.Random(7)
    env = {"CAMVAULT_MIRROR_KEY": secrets.token_urlsafe(32)}
    with (
        tempfile.TemporaryDirectory(prefix="camvault-bench-remote-") as tmp,
        remote(Path(tmp)) as (url, token),
        b.temp_data_dir(f"mirror-{kind}") as data,
        b.running_server(data, env=env) as server,
        b.client(server.base_url, b.login(server.base_url)) as http,
    ):
        m.step(f"{kind}: {n} versions without a mirror")
        plain = new_versions(http, n, rng, first=True)
        m.step(f"{kind}: configure the mirror and push {n} versions")
        body: dict[str, Any] = {"url": url} | ({"token": token} if token else {})
        b.expect(http.put(MIRROR, json=body), 200)
        catch_up = wait_synced(http, head(data))
        m.step(f"{kind}: {n} check-ins with the mirror live")
        live = new_versions(http, n, rng, first=False)
        lag = wait_synced(http, head(data))
    rows = [
        m.info(f"{kind}: push of {n} new versions (catch-up)", catch_up, "s",
               f"{n} x {SIZE // 1024} KiB LFS objects + {n} commits, one push"),
        m.info(f"{kind}: per version", catch_up / n * 1000, "ms"),
        m.info(f"{kind}: check-in median, no mirror", statistics.median(plain) * 1000, "ms"),
        m.info(f"{kind}: check-in median, mirror live", statistics.median(live) * 1000, "ms",
               "pushes run beside the writer"),
        m.info(f"{kind}: last check-in -> remote synced", lag, "s"),
        m.ratio(f"{kind}: check-in median, mirror live / none", statistics.median(live),
                statistics.median(plain), "~1 = the mirror costs check-ins nothing"),
    ]  # fmt: skip
    chart = m.distribution(
        f"check-in of a 256 KiB .mcam, {kind} remote",
        {"no mirror": m.ms(plain), "mirror live": m.ms(live)},
    )
    return rows, {f"{kind}_catch_up_s": catch_up, f"{kind}_lag_s": lag, "chart": chart}


def main() -> None:
    n = 30 if "--quick" in sys.argv[1:] else 100
    m.wait_for_quiet()
    rows: list[m.Row] = []
    extra: dict[str, Any] = {"versions": n, "size": SIZE}
    charts: list[dict[str, Any]] = []
    for kind, remote in (("file", file_remote), ("http", http_remote)):
        got, more = run(kind, remote, n)
        rows += got
        charts.append(more.pop("chart"))
        extra.update(more)
    m.print_table(f"mirror push: {n} new versions to a local remote", rows)
    m.write_result("mirror_push", rows, extra, charts)


if __name__ == "__main__":
    main()
