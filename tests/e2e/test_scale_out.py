"""Scale-out with real processes: two ``camvault serve`` on one database and one data dir,
with a real nginx in front where the test is about the proxy.

Writes from both instances are serialized (PostgreSQL advisory lock, or SQLite's file lock),
so concurrent checkouts give one holder and concurrent uploads give one clean history that
both instances list; a kill -9 of one instance behind nginx loses nothing acknowledged and
its live clients carry on, through nginx, on the survivor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import HDF5, PASSWORD

from e2e.live import Mirror
from e2e.nginx import Nginx, NginxLauncher, site_config
from e2e.server import Launcher, Server, checkin, git, git_fsck, isolated_git_env, upload

pytestmark = pytest.mark.slow

NAME = "1234567_A1.mcam"
USER_PASSWORD = "scale-out-user-pw"
# The instances see the proxy as 127.0.0.1 and believe its X-Forwarded-For.
BEHIND_NGINX = {"CAMVAULT_TRUSTED_PROXIES": "127.0.0.1"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def two_instances(
    launch: Launcher, data: Path, database_url: str | None, env: dict[str, str] | None = None
) -> tuple[Server, Server]:
    """Two servers on one data dir and one database (PostgreSQL, or the shared SQLite file)."""
    first = launch.start(data, admin_password=PASSWORD, database_url=database_url, env=env)
    second = launch.start(data, admin_password=PASSWORD, database_url=database_url, env=env)
    return first, second


def add_users(server: Server, admin_token: str, *names: str) -> dict[str, str]:
    """Create accounts through the admin API; return each one's bearer token."""
    with server.client(admin_token) as admin:
        for name in names:
            made = admin.post(
                "/api/admin/users",
                json={"username": name, "role": "user", "password": USER_PASSWORD},
            )
            assert made.status_code == 201, made.text
    return {name: server.login(name, USER_PASSWORD) for name in names}


def listed_at(server: Server, token: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """GET /api/files: its seq, and the files as {filename: record}."""
    with server.client(token) as api:
        response = api.get("/api/files")
    assert response.status_code == 200, response.text
    body = response.json()
    return body["seq"], {f["filename"]: f for group in body["groups"].values() for f in group}


def listed(server: Server, token: str) -> dict[str, dict[str, Any]]:
    return listed_at(server, token)[1]


def trailer_log(repo: Path, env: dict[str, str]) -> list[tuple[str, str, int, str, str]]:
    """(commit, file, version, sha256, action) of every commit on main, oldest first."""
    keys = ("Camvault-File", "Camvault-Version", "Camvault-Sha256", "Camvault-Action")
    fmt = "%x1f".join(f"%(trailers:key={key},valueonly,separator=)" for key in keys)
    out = git("-C", str(repo), "log", "--reverse", "main", f"--format=%H%x1f{fmt}", env=env)
    rows = []
    for line in out.splitlines():
        commit, name, version, sha, action = line.split("\x1f")
        rows.append((commit, name, int(version), sha, action))
    return rows


def tree_entry(repo: Path, env: dict[str, str], name: str) -> str:
    """What git holds for ``name`` at main (text files here): the file, or its LFS pointer."""
    return git("-C", str(repo), "cat-file", "blob", f"main:{name}", env=env)


def lfs_pointer(text: str) -> tuple[str, int]:
    """(sha256, size) of a Git LFS pointer file."""
    lines = text.splitlines()
    assert lines[0] == "version https://git-lfs.github.com/spec/v1", text
    fields = dict(line.split(" ", 1) for line in lines[1:])
    assert sorted(fields) == ["oid", "size"], text
    assert fields["oid"].startswith("sha256:")
    return fields["oid"].removeprefix("sha256:"), int(fields["size"])


# --- two instances x 50 concurrent checkouts --------------------------------------------------


def test_concurrent_checkouts_through_two_instances_give_one_holder(
    launch: Launcher, server_database_url: str | None, tmp_path: Path
) -> None:
    first, second = two_instances(launch, tmp_path / "data", server_database_url)
    admin = first.login("admin", PASSWORD)
    tokens = add_users(first, admin, "alice", "bob")
    with first.client(admin) as api:
        assert upload(api, NAME, HDF5 + b"part").status_code == 201

    per_instance = 50
    jobs = [
        (server, "alice" if i % 2 else "bob")
        for server in (first, second)
        for i in range(per_instance)
    ]
    random.shuffle(jobs)
    start = threading.Barrier(len(jobs), timeout=30)
    results: list[tuple[int, str, int, str]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def take(server: Server, user: str) -> None:
        try:
            with server.client(tokens[user]) as client:
                assert client.get("/api/health").status_code == 200  # connected before the race
                start.wait()
                response = client.post(f"/api/files/{NAME}/checkout", json={"message": user})
            code = response.json()["error"]["code"] if response.status_code != 200 else ""
            with guard:
                results.append((server.port, user, response.status_code, code))
        except (AssertionError, httpx.HTTPError, threading.BrokenBarrierError) as exc:
            with guard:
                errors.append(exc)

    threads = [threading.Thread(target=take, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a checkout request hung"
    assert not errors, errors
    assert len(results) == len(jobs)

    winners = {user for _port, user, status, _code in results if status == 200}
    assert len(winners) == 1, f"the lock was given to {winners}"
    (winner,) = winners
    for _port, user, status, code in results:
        expected = (200, "") if user == winner else (409, "locked")
        assert (status, code) == expected, f"{user}: {status} {code}"
    # Both instances answered both users: the race really ran across the two.
    assert {(port, user) for port, user, _s, _c in results} == {
        (server.port, user) for server in (first, second) for user in ("alice", "bob")
    }

    for server in (first, second):
        with server.client(admin) as api:
            record = api.get(f"/api/files/{NAME}").json()
            assert record["lock"]["user"] == winner
            assert record["version"] == 1
            audit = api.get("/api/audit", params={"type": "file.checked_out"}).json()
        # Repeated checkouts by the holder change nothing, so exactly one event.
        assert [e["actor"] for e in audit["events"]] == [winner], audit


# --- two instances x 40 concurrent uploads ----------------------------------------------------


def test_concurrent_uploads_through_two_instances_make_one_history_both_list(
    launch: Launcher, server_database_url: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first, second = two_instances(launch, data, server_database_url)
    admin = first.login("admin", PASSWORD)
    rng = random.Random()
    # Half LFS files (pointers in git), half NC programs (plain blobs in git).
    contents: dict[str, bytes] = {}
    for i in range(40):
        if i % 2:
            contents[f"{2000000 + i}_OP1.mcam"] = HDF5 + rng.randbytes(rng.randint(1, 300_000))
        else:
            lines = [
                f"G1 X{rng.uniform(0, 500):.3f} Y{rng.uniform(0, 500):.3f}" for _ in range(200)
            ]
            contents[f"{2000000 + i}_OP1.nc"] = (
                "%\nO1000\n" + "\n".join(lines) + "\nM30\n%\n"
            ).encode()
    names = list(contents)
    start = threading.Barrier(len(names), timeout=30)
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    errors: list[BaseException] = []
    guard = threading.Lock()

    def send(server: Server, name: str) -> None:
        try:
            with server.client(admin) as client:
                assert client.get("/api/health").status_code == 200
                start.wait()
                response = upload(client, name, contents[name], message=f"add {name}")
            with guard:
                answers[name] = (response.status_code, response.json())
        except (AssertionError, httpx.HTTPError, threading.BrokenBarrierError) as exc:
            with guard:
                errors.append(exc)

    threads = [
        threading.Thread(target=send, args=((first, second)[i % 2], name))
        for i, name in enumerate(names)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "an upload hung"
    assert not errors, errors
    refused = {name: answer for name, answer in answers.items() if answer[0] != 201}
    assert not refused, refused

    # Both instances list all 40, with identical records.
    on_first, on_second = listed(first, admin), listed(second, admin)
    assert sorted(on_first) == sorted(names)
    assert on_first == on_second
    for name, content in contents.items():
        record = on_first[name]
        assert record["sha256"] == hashlib.sha256(content).hexdigest(), name
        assert (record["size"], record["version"]) == (len(content), 1), name
        assert record == answers[name][1], "the list shows what the upload answered"

    repo = data / "vault.git"
    env = isolated_git_env(tmp_path / "home")
    git_fsck(repo, env)

    # One commit per upload, each naming its file; every listed version's commit is one of them.
    log = trailer_log(repo, env)
    assert sorted(name for _c, name, _v, _s, _a in log) == sorted(names)
    assert all((action, version) == ("upload", 1) for _c, _n, version, _s, action in log)
    commits = {name: (commit, sha) for commit, name, _v, sha, _a in log}
    with first.client(admin) as api:
        for name in names:
            versions = api.get(f"/api/files/{name}/versions").json()
            assert [(v["version"], v["commit"], v["sha256"]) for v in versions] == [
                (1, *commits[name])
            ], name

    # The tree of main holds exactly these files, as LFS pointers or as the bytes themselves.
    tree = git("-C", str(repo), "ls-tree", "--name-only", "main", env=env).splitlines()
    assert sorted(tree) == sorted([*names, ".gitattributes"])
    for name, record in on_first.items():
        stored = tree_entry(repo, env, name)
        if name.endswith(".mcam"):
            assert lfs_pointer(stored) == (record["sha256"], record["size"]), name
        else:
            assert stored.encode() == contents[name], f"{name} must be a plain blob"
        sha = record["sha256"]
        obj = repo / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
        assert hashlib.sha256(obj.read_bytes()).hexdigest() == sha, f"content store: {name}"


# --- nginx in front: what the proxy must pass on ----------------------------------------------


def browse_through(proxy: Nginx) -> str:
    """What a browser and scripts do through nginx; returns the browser's session token."""
    with httpx.Client(base_url=proxy.base_url, timeout=30) as browser:
        # A browser session: the cookie, and an Origin naming the proxy's host:port, which
        # camvault only accepts if nginx passed the Host header on unchanged.
        login = browser.post(
            "/api/auth/login",
            json={"username": "admin", "password": PASSWORD},
            headers={"Origin": proxy.base_url},
        )
        assert login.status_code == 200, login.text
        big = HDF5 + os.urandom(24 * 1024 * 1024)  # far above nginx's default 1 MiB body limit
        sent = browser.post(
            "/api/files",
            files={"file": (NAME, big, "application/octet-stream")},
            headers={"Origin": proxy.base_url, "X-Request-ID": "upload-through-nginx"},
        )
        assert sent.status_code == 201, sent.text
        assert sent.headers["x-request-id"] == "upload-through-nginx"
        assert sent.json()["sha256"] == hashlib.sha256(big).hexdigest()
        foreign = browser.post(
            f"/api/files/{NAME}/checkout", json={}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403, foreign.text
        # Round robin: the same session works on both instances (no sticky sessions).
        for _ in range(4):
            got = browser.get(f"/api/files/{NAME}/content")
            assert got.status_code == 200 and got.content == big
        # A request without an id gets nginx's, which camvault echoes.
        plain = browser.get("/api/files")
        assert re.fullmatch(r"[0-9a-f]{32}", plain.headers["x-request-id"])

        # The client address comes from X-Forwarded-For, believed because nginx is trusted.
        refused = browser.post(
            "/api/auth/login",
            json={"username": "nobody", "password": "wrong-password"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert refused.status_code == 401
    token: str = login.json()["token"]
    return token


@pytest.mark.anyio
async def test_nginx_in_front_of_two_instances_passes_what_camvault_needs(
    launch: Launcher, nginx: NginxLauncher, server_database_url: str | None, tmp_path: Path
) -> None:
    first, second = two_instances(launch, tmp_path / "data", server_database_url, BEHIND_NGINX)
    proxy = nginx.start([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])
    token = browse_through(proxy)
    logs = first.stderr() + second.stderr()
    assert "failed login for 'nobody' from 203.0.113.9" in logs, logs[-3000:]

    # WebSockets through nginx, on both instances (round robin), see the same list.
    mirrors = [Mirror(proxy.base_url, token) for _ in range(4)]
    tasks = [asyncio.create_task(m.run()) for m in mirrors]
    try:
        await until(lambda: all(m.seq is not None for m in mirrors), "snapshots through nginx")
        assert all(m.files.keys() == {NAME} for m in mirrors)
    finally:
        await stop(tasks)
    served = {
        re.findall(r"upstream=(.*) upstream_status=", line)[0]
        for line in proxy.access_log()
        if " /ws" in line
    }
    assert served == {f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"}, served


def test_deploy_doc_shows_the_nginx_config_the_tests_use() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    config = site_config(["10.0.0.11:8000", "10.0.0.12:8000"], "80")
    assert f"```nginx\n{config}```" in doc, "docs/deploy.md must show tests/e2e/nginx.py's config"


def documented_login_limit() -> str:
    """docs/deploy.md's nginx block that makes the login limit one for all instances."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [b for b in re.findall(r"```nginx\n(.*?)```", doc, re.DOTALL) if "limit_req" in b]
    assert len(blocks) == 1, "docs/deploy.md should show one login rate-limit block"
    return blocks[0]


def test_the_documented_nginx_login_limit_holds_across_instances(
    launch: Launcher, nginx: NginxLauncher, server_database_url: str | None, tmp_path: Path
) -> None:
    first, second = two_instances(launch, tmp_path / "data", server_database_url, BEHIND_NGINX)
    upstreams = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    plain = nginx.start(upstreams)
    limited = nginx.start(upstreams, documented_login_limit())
    credentials = {"username": "admin", "password": PASSWORD}
    with httpx.Client(base_url=limited.base_url, timeout=30) as http:
        # Good sign-ins count too: sent at once, the one the rate allows plus the burst of 5
        # get through, spread over both instances, and the 7th is refused by nginx in
        # camvault's shape (nginx decides as they arrive, however slow argon2 is).
        with ThreadPoolExecutor(7) as pool:
            answers = list(
                pool.map(lambda _: http.post("/api/auth/login", json=credentials), range(7))
            )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 6 + [429], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) > 0
        # Only the login is limited: the API goes on for a signed-in client.
        token = answers[0].json()["token"]
        listed = http.get("/api/files", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
    served = {
        line.split("upstream=")[1].split()[0]
        for line in limited.access_log()
        if "/api/auth/login" in line and '"200"' in line
    }
    assert served == set(upstreams), served
    # Without the block (the tested default config), nginx limits nothing.
    with httpx.Client(base_url=plain.base_url, timeout=30) as http:
        statuses = {http.post("/api/auth/login", json=credentials).status_code for _ in range(7)}
    assert statuses == {200}


async def until(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the Mirror tasks; one that ended on its own (an assertion in apply) fails here."""
    for task in tasks:
        if task.done():
            task.result()  # re-raises the gap assertion, if that is why it ended
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- kill -9 one instance during check-ins through nginx --------------------------------------


def payload(seed: int, size: int) -> bytes:
    return HDF5 + random.Random(seed).randbytes(size - len(HDF5))


@dataclass
class Ledger:
    """What the writers sent and what came back acknowledged."""

    attempted: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha256 -> seed, size
    acked: dict[int, str] = field(default_factory=dict)  # version -> sha256
    acked_after_kill: int = 0
    unanswered: int = 0  # 502s and broken connections: not acknowledged
    failures: list[str] = field(default_factory=list)
    in_flight: int = 0
    killed: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def stream_checkins(base_url: str, token: str, seed: int, ledger: Ledger) -> None:
    """Check in distinct contents through the proxy until told to stop."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        while not ledger.stop.is_set():
            content_seed, size = rng.getrandbits(64), rng.randint(1024, 256 * 1024)
            content = payload(content_seed, size)
            sha = hashlib.sha256(content).hexdigest()
            with ledger.lock:
                ledger.attempted[sha] = (content_seed, size)
                ledger.in_flight += 1
            try:
                response = checkin(client, NAME, content, message=sha, keep_locked=True)
            except httpx.TransportError:
                response = None
            finally:
                with ledger.lock:
                    ledger.in_flight -= 1
            with ledger.lock:
                if response is None or response.status_code == 502:
                    ledger.unanswered += 1  # the instance died with it: not acknowledged
                elif response.status_code == 200 and response.json()["sha256"] == sha:
                    ledger.acked[response.json()["version"]] = sha
                    ledger.acked_after_kill += ledger.killed
                else:
                    ledger.failures.append(f"{response.status_code} {response.text[:300]}")
                    return


def prepare(proxy: Nginx, token: str, ledger: Ledger) -> None:
    """A few files, and the one the writers check in to, checked out by them (admin)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=proxy.base_url, headers=headers, timeout=30) as api:
        for name in (NAME, "7654321_B2.mcam", "7654321_B2.nc"):
            assert upload(api, name, HDF5 + name.encode()).status_code == 201
        ledger.acked[1] = hashlib.sha256(HDF5 + NAME.encode()).hexdigest()
        ledger.attempted[ledger.acked[1]] = (-1, 0)
        assert api.post(f"/api/files/{NAME}/checkout", json={"message": "kill"}).is_success


def checkins_until_retried(
    proxy: Nginx, token: str, ledger: Ledger, dead: Server, alive: Server, deadline: float
) -> list[str]:
    """Check in, one by one through the proxy, until nginx's log shows a check-in that was
    refused by ``dead`` and answered by ``alive``; each check-in must be acknowledged."""
    headers = {"Authorization": f"Bearer {token}"}
    retry = f"upstream=127.0.0.1:{dead.port}, 127.0.0.1:{alive.port} upstream_status=502, 200"
    with httpx.Client(base_url=proxy.base_url, headers=headers, timeout=30) as api:
        for i in range(1000):
            content = payload(i, 4096 + i)
            sha = hashlib.sha256(content).hexdigest()
            ledger.attempted[sha] = (i, 4096 + i)
            response = checkin(api, NAME, content, message="after", keep_locked=True)
            assert response.status_code == 200, response.text
            ledger.acked[response.json()["version"]] = sha
            retried = [line for line in proxy.access_log() if "/checkin" in line and retry in line]
            if retried or time.monotonic() > deadline:
                return retried
            time.sleep(0.05)
    return []


@pytest.mark.anyio
async def test_kill_9_of_one_instance_behind_nginx_loses_nothing_and_clients_carry_on(
    launch: Launcher, nginx: NginxLauncher, server_database_url: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    victim, survivor = two_instances(launch, data, server_database_url, BEHIND_NGINX)
    proxy = nginx.start([f"127.0.0.1:{victim.port}", f"127.0.0.1:{survivor.port}"])
    token = survivor.login("admin", PASSWORD)
    ledger = Ledger()
    prepare(proxy, token, ledger)

    mirrors = [Mirror(proxy.base_url, token) for _ in range(6)]
    tasks = [asyncio.create_task(m.run()) for m in mirrors]
    writers: list[threading.Thread] = []
    try:
        await until(lambda: all(m.seq is not None for m in mirrors), "six snapshots via nginx")
        on_victim = victim.websockets_open(token)
        assert on_victim >= 1 and survivor.websockets_open(token) == 6 - on_victim, on_victim

        writers = [
            threading.Thread(
                target=stream_checkins, args=(proxy.base_url, token, random.getrandbits(64), ledger)
            )
            for _ in range(2)
        ]
        for thread in writers:
            thread.start()
        await asyncio.sleep(random.uniform(1.0, 2.0))
        give_up = time.monotonic() + 2.0
        while True:  # kill while a check-in is in flight, if one is
            with ledger.lock:
                if ledger.in_flight or time.monotonic() > give_up:
                    os.kill(victim.pid, signal.SIGKILL)
                    ledger.killed = True
                    killed_at = time.monotonic()
                    break
            await asyncio.sleep(0.001)
        victim.proc.wait(timeout=10)
        acked_at_kill = len(ledger.acked)

        # The survivor keeps taking check-ins through the same proxy address.
        await until(lambda: ledger.acked_after_kill >= 5 or bool(ledger.failures), "check-ins")
        await asyncio.sleep(1.0)
        ledger.stop.set()
        for thread in writers:
            await asyncio.to_thread(thread.join, 30)
            assert not thread.is_alive(), "a writer hung"
        assert not ledger.failures, f"{ledger.failures}\n{survivor.logs()}"
        assert acked_at_kill >= 3, "the writers barely wrote before the kill; proves nothing"

        # Once nginx tries the dead instance again (fail_timeout, counted in whole seconds:
        # 5-7 s after its last failure), its connection is refused and the same POST goes to
        # the survivor: answered once, applied once.
        await asyncio.sleep(max(0.0, killed_at + 5.0 - time.monotonic()))
        retried = await asyncio.to_thread(
            checkins_until_retried, proxy, token, ledger, victim, survivor, killed_at + 15.0
        )
        assert retried, "\n".join(proxy.access_log()[-20:])

        # Every tab, whichever instance it was on, ends with exactly the survivor's list.
        seq, wanted = listed_at(survivor, token)
        await until(lambda: all(m.files == wanted for m in mirrors), "clients to converge")
        assert all(m.seq == seq for m in mirrors)
        assert sum(1 for m in mirrors if m.reconnects) >= on_victim, "the victim's tabs moved"
    finally:
        ledger.stop.set()
        for thread in writers:
            thread.join(timeout=30)
        await stop(tasks)

    # Nothing acknowledged is lost; nothing was applied twice; every version downloads whole.
    with survivor.client(token) as api:
        versions = {v["version"]: v for v in api.get(f"/api/files/{NAME}/versions").json()}
        assert sorted(versions) == list(range(1, max(versions) + 1)), "versions 1..N, no gaps"
        lost = sorted(set(ledger.acked) - set(versions))
        assert not lost, f"acknowledged versions lost: {lost}"
        shas = [v["sha256"] for v in versions.values()]
        assert len(set(shas)) == len(shas), "a check-in was applied twice"
        for number, version in sorted(versions.items()):
            if number in ledger.acked:
                assert version["sha256"] == ledger.acked[number], f"v{number} changed"
            assert version["sha256"] in ledger.attempted, f"v{number} is content never sent"
            got = api.get(f"/api/files/{NAME}/content", params={"version": number})
            assert got.status_code == 200, got.text
            assert hashlib.sha256(got.content).hexdigest() == version["sha256"], f"v{number}"
    repo = data / "vault.git"
    env = isolated_git_env(tmp_path / "home")
    git_fsck(repo, env)
    in_git = sorted(
        (version, sha, commit)
        for commit, name, version, sha, _action in trailer_log(repo, env)
        if name == NAME
    )
    in_db = sorted((n, v["sha256"], v["commit"]) for n, v in versions.items())
    assert in_git == in_db, "the database and git disagree"
