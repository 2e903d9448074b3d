"""Soak test: simulated users against a real ``camvault serve``, checking invariants all along.

Every user has an HTTP client and a live WebSocket that keeps a file list the way the page
does (snapshot, deltas, resume by seq). Users upload, check out, check in, cancel, download,
list and drop their socket at random, with a little think time. Checked throughout:

- one holder per file: two users never both hold acknowledged checkouts of one file;
- every list (GET /api/files) agrees with the acknowledged operations: a lock held for the
  whole request is shown, a lock shown was requested and not yet released, an acknowledged
  upload is listed, and every version's sha256 is the one its upload was acknowledged with;
- downloads of a version give the bytes acknowledged for it;
- every socket's list equals GET /api/files at the same seq (periodically, at the moment the
  socket passes that seq) and again after the users stop (quiesced); no frame is missed;
- no 5xx and no dropped connection, ever;
- the server's RSS stays flat after a warm-up (see ``rss_verdict``).

    .venv/bin/python bench/soak.py [--seconds 60] [--users 20] [--seed N]
    make soak SOAK_SECONDS=3600 SOAK_USERS=20

Prints a summary; exit status 1 on any invariant violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import _measure as m
import _server as b
import httpx
import websockets

FILES_PER_USER = 2  # the name pool: the list stays the same size, so RSS can stay flat
MAX_HOLDS = 2  # a user checks out at most this many files at once
THINK_S = (0.0, 0.1)
LIST_EVERY_S = 2.0  # the convergence checker's GET /api/files
QUIESCE_S = 20.0
MAX_PENDING = 32  # list snapshots a socket may still have to pass
# Weights of the operations a user picks from (a release is picked first when holding).
OPS = {"checkout": 30, "upload": 8, "download": 20, "list": 10, "reconnect": 4, "version": 8}


def now() -> float:
    return time.monotonic()


@dataclass
class Hold:
    """One checkout of one file by one user, with the times the driver saw."""

    sent: float
    acked: float | None = None
    release_sent: float | None = None
    released: float | None = None


@dataclass
class Model:
    """What the acknowledged operations say, and every violation found against it."""

    holds: dict[tuple[str, str], list[Hold]] = field(default_factory=dict)
    uploaded: dict[str, float] = field(default_factory=dict)  # name -> upload ack time
    versions: dict[tuple[str, int], str] = field(default_factory=dict)  # -> sha256
    ops: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    convergence_checks: int = 0
    ws_closes: Counter[str] = field(default_factory=Counter)

    def violate(self, message: str) -> None:
        self.violations.append(f"[{time.strftime('%H:%M:%S')}] {message}")
        print(f"VIOLATION: {message}", file=sys.stderr, flush=True)

    def holds_of(self, name: str, user: str) -> list[Hold]:
        return self.holds.setdefault((name, user), [])

    def current(self, name: str, user: str) -> Hold | None:
        holds = self.holds.get((name, user))
        return holds[-1] if holds and holds[-1].released is None else None

    def checkout_acked(self, name: str, user: str, hold: Hold) -> None:
        hold.acked = now()
        for (other_name, other), holds in self.holds.items():
            if other_name != name or other == user:
                continue
            for h in holds:
                if h.acked is not None and h.release_sent is None:
                    self.violate(f"{user} and {other} both hold {name}")

    def check_list(self, sent: float, received: float, records: dict[str, Any]) -> None:
        for name, acked in self.uploaded.items():
            if acked <= sent and name not in records:
                self.violate(f"{name} was uploaded but the list does not show it")
        for name, record in records.items():
            sha = self.versions.get((name, record["version"]))
            if sha is not None and sha != record["sha256"]:
                self.violate(f"{name} v{record['version']}: listed sha256 is not the one acked")
            lock = record["lock"]
            if lock is not None and not any(
                h.sent <= received and (h.released is None or h.released >= sent)
                for h in self.holds.get((name, lock["user"]), [])
            ):
                self.violate(f"the list shows {name} held by {lock['user']}, who never took it")
        for (name, user), holds in self.holds.items():
            for h in holds:
                held_throughout = (
                    h.acked is not None
                    and h.acked <= sent
                    and (h.release_sent is None or h.release_sent >= received)
                )
                shown = (records.get(name) or {}).get("lock") or {}
                if held_throughout and shown.get("user") != user:
                    self.violate(f"{user} holds {name} but the list shows {shown or 'no lock'}")

    def prune(self) -> None:
        """Forget releases long past: no request in flight can still overlap them."""
        horizon = now() - 120.0
        for key, holds in self.holds.items():
            self.holds[key] = [h for h in holds if h.released is None or h.released > horizon]


class Mirror:
    """One user's live socket and the file list it builds, resumed by seq on reconnect."""

    def __init__(self, model: Model, base_url: str, token: str) -> None:
        self.model = model
        self.url = base_url.replace("http://", "ws://") + "/ws"
        self.token = token
        self.files: dict[str, Any] = {}
        self.seq: int | None = None
        self.epoch: str | None = None
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.connected = False

    async def reconnect(self) -> None:
        await self.stop()
        self.start()

    async def _run(self) -> None:
        while True:
            query = f"?after={self.seq}&epoch={self.epoch}" if self.seq is not None else ""
            try:
                async with websockets.connect(
                    self.url + query,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    max_size=None,
                ) as socket:
                    self.connected = True
                    async for raw in socket:
                        self.apply(json.loads(raw))
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else "none"
                self.model.ws_closes[str(code)] += 1
            except (OSError, websockets.InvalidStatus) as exc:
                self.model.violate(f"a socket could not connect: {exc!r}")
            self.connected = False
            await asyncio.sleep(0.1)

    def expect(self, seq: int, files: dict[str, Any]) -> None:
        """Compare with this list when the socket has seen exactly the events up to ``seq``."""
        if self.seq is not None and seq < self.seq:
            return  # already past it: cannot tell what the list was at seq
        self.pending = [*self.pending, (seq, files)][-MAX_PENDING:]

    def _compare(self, upto: int) -> None:
        """The list now reflects every seq in [self.seq, upto): check what waits there."""
        assert self.seq is not None
        keep = []
        for seq, files in self.pending:
            if self.seq <= seq < upto:
                self.model.convergence_checks += 1
                if files != self.files:
                    differ = sorted(k for k in files.keys() | self.files.keys()
                                    if files.get(k) != self.files.get(k))  # fmt: skip
                    self.model.violate(f"socket list differs from GET at seq {seq}: {differ}")
            elif seq >= upto:
                keep.append((seq, files))
        self.pending = keep

    def apply(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "FILE_LIST_UPDATED":
            # Events between our seq and the snapshot's were never seen: only lists at the
            # snapshot's seq or later can still be compared.
            self.files = {f["filename"]: f for group in frame["payload"].values() for f in group}
            self.seq, self.epoch = frame["seq"], frame["epoch"]
            self.pending = [(s, f) for s, f in self.pending if s >= frame["seq"]]
            return
        if "prev" not in frame or self.seq is None or frame["seq"] <= self.seq:
            return
        if frame["prev"] > self.seq:
            self.model.violate(f"missed a frame: prev {frame['prev']} > seen {self.seq}")
        else:
            self._compare(frame["seq"])  # no broadcast between our seq and this one
        if kind == "FILE_UPDATED":
            self.files[frame["payload"]["file"]["filename"]] = frame["payload"]["file"]
        elif kind == "FILE_REMOVED":
            self.files.pop(frame["payload"]["filename"], None)
        self.seq = frame["seq"]


def listed(body: dict[str, Any]) -> dict[str, Any]:
    return {f["filename"]: f for group in body["groups"].values() for f in group}


class User:
    """One simulated person: an HTTP client, a live socket, and what they hold."""

    def __init__(self, name: str, token: str, server: b.Server, model: Model, seed: int) -> None:
        self.name = name
        self.model = model
        self.rng = random.Random(seed)
        self.http = httpx.AsyncClient(base_url=server.base_url, headers=b.auth(token), timeout=60)
        self.mirror = Mirror(model, server.base_url, token)
        self.held: list[str] = []
        self.pool: list[str] = []

    async def call(self, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        self.model.ops[op] += 1
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            self.model.violate(f"{op} {path}: the connection failed: {exc!r}")
            return None
        self.model.statuses[(op, response.status_code)] += 1
        if response.status_code >= 500:
            self.model.violate(f"{op} {path} -> {response.status_code}: {response.text[:200]}")
        return response

    async def run(self, until: float) -> None:
        while now() < until:
            await self.step()
            await asyncio.sleep(self.rng.uniform(*THINK_S))

    async def step(self) -> None:
        if self.held and (len(self.held) >= MAX_HOLDS or self.rng.random() < 0.4):
            await self.release(self.held.pop(self.rng.randrange(len(self.held))))
            return
        op = self.rng.choices(list(OPS), weights=list(OPS.values()))[0]
        known = sorted(self.mirror.files)
        if op == "upload" or not known:
            await self.upload(self.rng.choice(self.pool))
        elif op == "checkout":
            await self.checkout(self.rng.choice(known))
        elif op == "download":
            await self.download(self.rng.choice(known))
        elif op == "version":
            await self.download_version()
        elif op == "list":
            await self.list_files()
        else:
            self.model.ops["ws_reconnect"] += 1
            await self.mirror.reconnect()

    def content(self) -> bytes:
        return b.mcam_bytes(self.rng.randint(64, 32 * 1024), self.rng)

    async def upload(self, name: str) -> None:
        content = self.content()
        files = {"file": (name, content, "application/octet-stream")}
        response = await self.call("upload", "POST", "/api/files", files=files)
        if response is not None and response.status_code == 201:
            self.acked_version(name, response.json(), content)
            self.model.uploaded.setdefault(name, now())

    def acked_version(self, name: str, record: dict[str, Any], content: bytes) -> None:
        sha = hashlib.sha256(content).hexdigest()
        if record["sha256"] != sha:
            self.model.violate(f"{name} v{record['version']}: acked with another sha256")
        self.model.versions[(name, record["version"])] = sha

    async def checkout(self, name: str) -> None:
        if name in self.held:
            return
        hold = Hold(sent=now())
        self.model.holds_of(name, self.name).append(hold)
        response = await self.call("checkout", "POST", f"/api/files/{name}/checkout", json={})
        if response is not None and response.status_code == 200:
            self.model.checkout_acked(name, self.name, hold)
            self.held.append(name)
        else:
            hold.release_sent = hold.released = now()  # never held

    async def release(self, name: str) -> None:
        hold = self.model.current(name, self.name)
        assert hold is not None
        hold.release_sent = now()
        if self.rng.random() < 0.6:
            content = self.content()
            files = {"file": (name, content, "application/octet-stream")}
            data = {"message": f"soak check-in by {self.name}"}
            path = f"/api/files/{name}/checkin"
            response = await self.call("checkin", "POST", path, files=files, data=data)
            if response is not None and response.status_code == 200:
                self.acked_version(name, response.json(), content)
        else:
            path = f"/api/files/{name}/cancel-checkout"
            response = await self.call("cancel", "POST", path)
        if response is not None and response.status_code == 200:
            hold.released = now()
        else:
            self.model.violate(f"{self.name} could not release {name}: {_said(response)}")
            hold.release_sent = None
            self.held.append(name)

    async def download(self, name: str) -> None:
        response = await self.call("download", "GET", f"/api/files/{name}/content")
        if response is not None and response.status_code != 200:
            self.model.violate(f"download of {name} -> {_said(response)}")

    async def download_version(self) -> None:
        if not self.model.versions:
            return
        (name, version), sha = self.rng.choice(list(self.model.versions.items()))
        path = f"/api/files/{name}/content?version={version}"
        response = await self.call("download_version", "GET", path)
        if response is None:
            return
        if response.status_code != 200 or hashlib.sha256(response.content).hexdigest() != sha:
            self.model.violate(f"{name} v{version} does not give the acked bytes")

    async def list_files(self) -> dict[str, Any] | None:
        sent = now()
        response = await self.call("list", "GET", "/api/files")
        if response is None or response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        self.model.check_list(sent, now(), listed(body))
        return body


async def checker(users: list[User], until: float) -> None:
    """Every LIST_EVERY_S: GET the list and have every socket compare when it passes that seq."""
    while now() < until:
        await asyncio.sleep(LIST_EVERY_S)
        body = await users[0].list_files()
        if body is not None:
            files = listed(body)
            for user in users:
                user.mirror.expect(body["seq"], files)
        users[0].model.prune()


async def quiesce(users: list[User], model: Model) -> None:
    """After the users stop: every socket must end with exactly the server's list."""
    deadline = now() + QUIESCE_S
    while True:
        body = await users[0].list_files()
        files = listed(body) if body is not None else None
        behind = [u.name for u in users if not u.mirror.connected or u.mirror.files != files]
        if not behind:
            model.convergence_checks += len(users)
            return
        if now() > deadline:
            model.violate(f"sockets did not converge to GET /api/files: {behind}")
            return
        await asyncio.sleep(0.5)


def rss_verdict(samples: list[tuple[float, int]], started: float, seconds: float) -> dict[str, Any]:
    """Flat means: after the warm-up, RSS never exceeds the warm-up's level by more than
    max(24 MiB, 10%).

    The warm-up (a quarter of the run, 10-60 s) is when caches fill: the list cache, the
    session cache, SQLAlchemy's statement cache, the worker threads anyio starts (each
    thread's malloc arena), git's object cache. All of those are bounded by the vault's
    size, which the soak keeps constant (a fixed pool of names). What is left after that is
    allocator noise, a few MiB. A leak of 1 KiB per request (at ~100 requests a second)
    exceeds the bound within 5 minutes, so an hour's soak finds it; a 60 s run finds only
    leaks of ~10 KiB per request or more.
    """
    warm = started + min(60.0, max(10.0, seconds / 4))
    before = [kib for t, kib in samples if t <= warm]
    after = [kib for t, kib in samples if t > warm]
    level = max(before[-5:]) if before else 0
    bound = max(24 * 1024, level // 10)
    peak = max(after) if after else level
    return {
        "start_kib": samples[0][1] if samples else 0,
        "warm_kib": level,
        "end_kib": samples[-1][1] if samples else 0,
        "max_kib": max(kib for _t, kib in samples) if samples else 0,
        "growth_kib": peak - level,
        "bound_kib": bound,
        "flat": peak - level <= bound,
    }


def _said(response: httpx.Response | None) -> str:
    return "no answer" if response is None else f"{response.status_code} {response.text[:200]}"


def _arg(flag: str, default: int) -> int:
    value = m.option(flag)
    return int(value) if value is not None else default


async def soak(server: b.Server, tokens: dict[str, str], seconds: float, seed: int) -> Model:
    model = Model()
    rng = random.Random(seed)
    users = [
        User(name, token, server, model, rng.randrange(2**32)) for name, token in tokens.items()
    ]
    pool = [f"{5000000 + i * 7:07d}_SOAK.mcam" for i in range(FILES_PER_USER * len(users))]
    for user in users:
        user.pool = pool
        user.mirror.start()
    until = now() + seconds
    try:
        await asyncio.gather(*(u.run(until) for u in users), checker(users, until))
        for user in users:
            for name in list(user.held):
                user.held.remove(name)
                await user.release(name)
        await quiesce(users, model)
    finally:
        for user in users:
            await user.mirror.stop()
            await user.http.aclose()
    return model


def summary(model: Model, rss: dict[str, Any], seconds: float) -> None:
    total = sum(n for op, n in model.ops.items() if op != "ws_reconnect")
    print(f"\n== soak: {total} requests in {seconds:.0f} s "
          f"({total / seconds:.1f}/s) ==")  # fmt: skip
    for op, count in sorted(model.ops.items()):
        codes = ", ".join(f"{s}: {n}" for (o, s), n in sorted(model.statuses.items()) if o == op)
        print(f"  {op:<17} {count:>7}   {codes}")
    errors = Counter({s: n for (_o, s), n in model.statuses.items() if s >= 400})
    print(f"  errors by status: {dict(sorted(errors.items())) or 'none'}")
    print(f"  socket closes by the server, by code: {dict(model.ws_closes) or 'none'}")
    print(f"  convergence checks (socket list == GET /api/files at one seq): "
          f"{model.convergence_checks}")  # fmt: skip
    print(
        f"  server RSS: start {rss['start_kib'] / 1024:.1f} MiB, after warm-up "
        f"{rss['warm_kib'] / 1024:.1f}, end {rss['end_kib'] / 1024:.1f}, max "
        f"{rss['max_kib'] / 1024:.1f}; growth after warm-up {rss['growth_kib'] / 1024:.1f} MiB "
        f"(bound {rss['bound_kib'] / 1024:.1f}): {'flat' if rss['flat'] else 'GROWING'}"
    )
    print(f"  invariant violations: {len(model.violations)}")
    for line in model.violations[:50]:
        print(f"    {line}")


def main() -> int:
    seconds = float(_arg("--seconds", 60))
    users = _arg("--users", 20)
    seed = _arg("--seed", int(time.time()))
    print(f"soak: {users} users for {seconds:.0f} s, seed {seed}", flush=True)
    names = [f"soak{i:02d}" for i in range(users)]
    with b.temp_data_dir("soak") as data:
        b.add_users(data, names)
        with b.running_server(data) as server:
            # Four at once: the server runs at most four argon2 checks in parallel anyway.
            with ThreadPoolExecutor(4) as pool:
                logins = pool.map(lambda name: b.login(server.base_url, name), names)
                tokens = dict(zip(names, logins, strict=True))
            with m.RssSampler(server.pid, interval=1.0) as sampler:
                started = time.perf_counter()
                model = asyncio.run(soak(server, tokens, seconds, seed))
            alive = server.proc.poll() is None
    rss = rss_verdict(sampler.samples, started, seconds)
    if not alive:
        model.violate("the server died during the soak")
    if not rss["flat"]:
        model.violate(f"RSS grew {rss['growth_kib'] / 1024:.1f} MiB after the warm-up")
    summary(model, rss, seconds)
    print(f"\nsoak: {'FAILED' if model.violations else 'passed'} (seed {seed})")
    return 1 if model.violations else 0


if __name__ == "__main__":
    sys.exit(main())
