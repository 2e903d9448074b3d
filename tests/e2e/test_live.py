"""The live stream against real ``camvault serve`` processes and real WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from e2e.live import LiveClient, Mirror
from e2e.server import Launcher, Server, camvault_command, clean_env, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "live-test-password"
HDF5 = b"\x89HDF\r\n\x1a\n"


def add_user(server: Server, name: str) -> str:
    done = server.cli("user", "add", name, "--role", "user", "--password-stdin",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return server.login(name, PASSWORD)


def is_update_of(name: str, **expect: Any) -> Any:
    def match(frame: dict[str, Any]) -> bool:
        if frame["type"] != "FILE_UPDATED":
            return False
        record = frame["payload"]["file"]
        return record["filename"] == name and all(
            (record["lock"] or {}).get("user") == v if k == "holder" else record[k] == v
            for k, v in expect.items()
        )

    return match


def assert_strictly_increasing(client: LiveClient) -> None:
    seqs = [f["seq"] for f in client.logged()]
    assert seqs == sorted(set(seqs)), seqs


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(launch: Launcher, server_database_url: str | None, tmp_path: Path) -> Server:
    """A server on SQLite, and on PostgreSQL when the test run has one."""
    return launch.start(
        tmp_path / "data", admin_password=PASSWORD, database_url=server_database_url
    )


async def test_twenty_connections_all_see_a_checkout_within_a_second(server: Server) -> None:
    admin = server.login("admin", PASSWORD)
    bob = add_user(server, "bob")
    with server.client(admin) as api:
        assert upload(api, "1234567_A1.mcam", HDF5 + b"x").status_code == 201
    clients = [await LiveClient(server.base_url, admin).connect() for _ in range(20)]
    try:
        for c in clients:
            await c.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
        started = time.monotonic()
        with server.client(bob) as api:
            assert api.post("/api/files/1234567_A1.mcam/checkout", json={}).status_code == 200
        frames = await asyncio.gather(
            *(c.wait_for(is_update_of("1234567_A1.mcam", holder="bob"), 1.0) for c in clients)
        )
        latest = max(max(c.received_at) for c in clients) - started
        assert latest < 1.0
        assert len({f["seq"] for f in frames}) == 1
        for c in clients:
            assert_strictly_increasing(c)
    finally:
        for c in clients:
            await c.close()


async def test_reconnecting_after_a_seq_replays_exactly_the_missed_changes(
    launch: Launcher, tmp_path: Path
) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD,
                          env={"CAMVAULT_REPLAY_WINDOW": "3"})  # fmt: skip
    admin = server.login("admin", PASSWORD)
    api = server.client(admin)
    upload(api, "1234567_A1.mcam", HDF5)
    first = await LiveClient(server.base_url, admin).connect()
    snapshot = await first.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
    await first.close()

    api.post("/api/files/1234567_A1.mcam/checkout", json={"message": "one"})
    api.post("/api/files/1234567_A1.mcam/cancel-checkout")
    api.post("/api/files/1234567_A1.mcam/checkout", json={"message": "three"})

    again = await LiveClient(server.base_url, admin, after=snapshot["seq"],
                             epoch=snapshot["epoch"]).connect()  # fmt: skip
    await again.wait_for(lambda f: f["type"] == "PRESENCE")
    replay = [f for f in again.frames if f["type"] != "PRESENCE"]
    assert [f["type"] for f in replay] == ["FILE_UPDATED"] * 3
    assert [f["seq"] for f in replay] == [snapshot["seq"] + i for i in (1, 2, 3)]
    locks = [f["payload"]["file"]["lock"] for f in replay]
    assert [lock and lock["message"] for lock in locks] == ["one", None, "three"]
    assert replay[0]["prev"] == snapshot["seq"]
    await again.close()

    # Four changes later the seq is older than the window (3): a fresh snapshot instead.
    for _ in range(2):
        api.post("/api/files/1234567_A1.mcam/cancel-checkout")
        api.post("/api/files/1234567_A1.mcam/checkout", json={})
    late = await LiveClient(server.base_url, admin, after=replay[-1]["seq"]).connect()
    first_frame = await late.wait_for(lambda f: True)
    assert first_frame["type"] == "FILE_LIST_UPDATED"
    assert first_frame["seq"] == replay[-1]["seq"] + 4
    # And a seq from another log (another epoch) gets a snapshot too.
    other = await LiveClient(server.base_url, admin, after=1, epoch="not-this-one").connect()
    assert (await other.wait_for(lambda f: True))["type"] == "FILE_LIST_UPDATED"
    for c in (late, other):
        await c.close()
    api.close()


async def test_clients_resume_after_a_crash_and_match_the_api(
    launch: Launcher, tmp_path: Path
) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD)
    admin = server.login("admin", PASSWORD)
    with server.client(admin) as api:
        upload(api, "1234567_A1.mcam", HDF5)
    mirrors = [Mirror(server.base_url, admin) for _ in range(3)]
    tasks = [asyncio.create_task(m.run()) for m in mirrors]
    try:
        await asyncio.sleep(0.5)
        server.kill()
        restarted = launch.start(server.data, admin_password=PASSWORD, port=server.port)
        with restarted.client(admin) as api:
            upload(api, "7654321_B2.mcam", HDF5 + b"while away")
            api.post("/api/files/1234567_A1.mcam/checkout", json={"message": "after crash"})
            expected = api.get("/api/files").json()
        wanted = {f["filename"]: f for g in expected["groups"].values() for f in g}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(m.files != wanted for m in mirrors):
            await asyncio.sleep(0.05)
        for m in mirrors:
            assert m.files == wanted
            assert m.seq == expected["seq"]
            assert m.reconnects >= 1
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_connections_without_a_valid_session_or_from_a_foreign_origin_are_refused(
    launch: Launcher, tmp_path: Path
) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD,
                          env={"CAMVAULT_SESSION_HOURS": "0.001"})  # ~3.6 s  # fmt: skip
    url = server.base_url.replace("http", "ws") + "/ws"

    async def status(**headers: str) -> int | str:
        try:
            async with websockets.connect(url, additional_headers=headers):
                return "accepted"
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    with server.client() as anon:
        login = anon.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    cookie = f"camvault_session={login.json()['token']}"
    assert await status() == 403
    assert await status(Authorization="Bearer forged") == 403
    assert await status(Cookie=cookie, Origin="https://evil.example") == 403
    assert await status(Cookie=cookie) == 403  # a cookie without Origin is not a browser
    assert await status(Cookie=cookie, Origin=server.base_url) == "accepted"
    token = login.json()["token"]
    live = await LiveClient(server.base_url, token).connect()
    await asyncio.sleep(4.0)  # the session expires
    assert await status(Cookie=cookie, Origin=server.base_url) == 403
    await live.close()


async def test_logout_closes_that_sessions_sockets_with_1008(server: Server) -> None:
    token = server.login("admin", PASSWORD)
    other = server.login("admin", PASSWORD)
    mine = await LiveClient(server.base_url, token).connect()
    theirs = await LiveClient(server.base_url, other).connect()
    with server.client(token) as api:
        assert api.post("/api/auth/logout").status_code == 204
    assert await mine.wait_closed() == 1008
    await asyncio.sleep(0.3)
    assert theirs.close_code is None
    await theirs.close()


async def test_bad_client_frames_get_errors_and_big_ones_close_with_1009(server: Server) -> None:
    token = server.login("admin", PASSWORD)
    client = await LiveClient(server.base_url, token).connect()
    await client.wait_for(lambda f: f["type"] == "PRESENCE")
    await client.send("{not json")
    await client.send(b"\x00\x01binary")
    await client.send(json.dumps({"type": "HELLO"}))
    await client.send(json.dumps({"type": "RESUME", "after": "x"}))
    await client.send(json.dumps({"type": "PING"}))
    await client.wait_for(lambda f: f["type"] == "PONG")
    codes = [f["payload"]["code"] for f in client.frames if f["type"] == "ERROR"]
    assert codes == ["bad_json", "binary_frame", "unknown_type", "bad_frame"]
    await client.send("x" * (1024 * 1024))
    assert await client.wait_closed() == 1009
    with server.client(token) as api:
        assert api.get("/api/health").status_code == 200
        assert api.get("/api/files").status_code == 200


def raw_websocket(server: Server, token: str, rcvbuf: int) -> socket.socket:
    """A handshaken WebSocket on a plain socket with a tiny receive buffer that we never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def stuck_online(frame: dict[str, Any]) -> bool:
    return frame["type"] == "PRESENCE" and "stuck" in frame["payload"]["online"]


def stuck_gone(reader: LiveClient, joined: dict[str, Any]) -> bool:
    """Has ``reader`` seen "stuck" go offline after the ``joined`` presence frame?"""
    later = reader.frames[next(i for i, f in enumerate(reader.frames) if f is joined) + 1 :]
    return any(f["type"] == "PRESENCE" and not stuck_online(f) for f in later)


async def test_a_client_that_never_reads_is_cut_and_delays_nobody(
    launch: Launcher, tmp_path: Path
) -> None:
    # No heartbeat during the test: the stuck client must be cut for its full queue alone.
    server = launch.start(tmp_path / "data", admin_password=PASSWORD,
                          env={"CAMVAULT_WS_QUEUE_SIZE": "16",
                               "CAMVAULT_WS_PING_INTERVAL": "600"})  # fmt: skip
    admin = server.login("admin", PASSWORD)
    stuck_token = add_user(server, "stuck")
    api = server.client(admin)
    names = [f"{1000000 + i}_A.mcam" for i in range(20)]
    for name in names:
        assert upload(api, name, HDF5 + name.encode()).status_code == 201
    # Ten readers are enough to show nobody waits for the stuck one; more only load the
    # test process, which parses every frame of every reader.
    readers = [await LiveClient(server.base_url, admin).connect() for _ in range(10)]
    for r in readers:
        await r.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED", 10)
    stuck = raw_websocket(server, stuck_token, rcvbuf=2048)
    try:
        joined = await readers[0].wait_for(stuck_online)
        # ~4 KB per frame (the lock message): the stuck socket's buffers fill fast.
        note = "waiting for the fixture drawing " * 125
        # Write until the server has dropped the stuck client: its queue overflows once the
        # kernel's socket buffers (megabytes, autotuned) are full. Batches of one round per
        # file run in threads while this loop's readers keep reading.
        rounds = 0

        def round_trip(name: str) -> None:
            checkout = api.post(f"/api/files/{name}/checkout", json={"message": note})
            assert checkout.status_code == 200
            assert api.post(f"/api/files/{name}/cancel-checkout").status_code == 200

        with ThreadPoolExecutor(8) as pool:
            while rounds < 1600 and not stuck_gone(readers[0], joined):
                await asyncio.to_thread(lambda: list(pool.map(round_trip, names)))
                rounds += len(names)
        expected = api.get("/api/files").json()["seq"]
        for r in readers:
            await r.wait_for(lambda f, e=expected: f.get("seq") == e, 60)
            assert_strictly_increasing(r)
            updates = [f for f in r.logged() if f["type"] == "FILE_UPDATED"]
            assert len(updates) == 2 * rounds  # every single update, none lost
            assert r.close_code is None
        # The server dropped the stuck client: the others see it go offline...
        assert stuck_gone(readers[0], joined)
        # ...and its socket ends once it reads what was already buffered.
        # (A TimeoutError here means the server never closed it.)
        stuck.settimeout(20)
        with contextlib.suppress(ConnectionResetError):
            while stuck.recv(1 << 20):
                pass
    finally:
        stuck.close()
        for r in readers:
            await r.close()
        api.close()


async def test_logins_are_announced_and_presence_counts_each_user_once(server: Server) -> None:
    admin = server.login("admin", PASSWORD)
    add_user(server, "bob")
    watcher = await LiveClient(server.base_url, admin).connect()
    await watcher.wait_for(lambda f: f["type"] == "PRESENCE")
    bob = server.login("bob", PASSWORD)
    await watcher.wait_for(
        lambda f: f["type"] == "USER_LOGGED_IN" and f["payload"]["username"] == "bob"
    )
    tabs = [await LiveClient(server.base_url, bob).connect() for _ in range(3)]
    await watcher.wait_for(
        lambda f: f["type"] == "PRESENCE" and f["payload"]["online"] == ["admin", "bob"]
    )
    for tab in tabs:  # each tab learns who is online when it connects
        await tab.wait_for(
            lambda f: f["type"] == "PRESENCE" and f["payload"]["online"] == ["admin", "bob"]
        )
    before = len([f for f in watcher.frames if f["type"] == "PRESENCE"])
    await tabs[0].close()
    await tabs[1].close()
    await asyncio.sleep(0.3)
    assert len([f for f in watcher.frames if f["type"] == "PRESENCE"]) == before  # still online
    await tabs[2].close()
    await watcher.wait_for(
        lambda f: f["type"] == "PRESENCE" and f["payload"]["online"] == ["admin"]
    )
    await watcher.close()


async def test_shutdown_closes_sockets_with_1001(server: Server) -> None:
    token = server.login("admin", PASSWORD)
    client = await LiveClient(server.base_url, token).connect()
    await client.wait_for(lambda f: f["type"] == "PRESENCE")
    server.proc.terminate()
    assert await client.wait_closed() == 1001


def test_camvault_watch_prints_events_as_they_arrive(server: Server) -> None:
    token = server.login("admin", PASSWORD)
    watch = subprocess.Popen(
        [camvault_command(), "watch", "--server", server.base_url, "--json", "--count", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(CAMVAULT_TOKEN=token),
    )
    # Upload only once the watcher is connected (its snapshot and presence are printed):
    # a slow start would otherwise fold the upload into the snapshot.
    watchdog = threading.Timer(60, watch.kill)
    watchdog.start()
    try:
        assert watch.stdout is not None
        first = [watch.stdout.readline(), watch.stdout.readline()]
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            upload(api, "1234567_A1.mcam", HDF5)
        out, err = watch.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if watch.poll() is None:
            watch.kill()
    frames = [json.loads(line) for line in [*first, *out.splitlines()]]
    assert [f["type"] for f in frames] == ["FILE_LIST_UPDATED", "PRESENCE", "FILE_UPDATED"]
    assert token not in out + err


async def test_a_dead_peer_is_dropped_by_the_heartbeat(launch: Launcher, tmp_path: Path) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD,
                          env={"CAMVAULT_WS_PING_INTERVAL": "1"})  # fmt: skip
    admin = server.login("admin", PASSWORD)
    ghost_token = add_user(server, "ghost")
    watcher = await LiveClient(server.base_url, admin).connect()
    # A peer that went away without closing: it never reads, so it never answers a ping.
    ghost = raw_websocket(server, ghost_token, rcvbuf=4096)
    try:
        await watcher.wait_for(
            lambda f: f["type"] == "PRESENCE" and "ghost" in f["payload"]["online"]
        )
        await watcher.wait_for(
            lambda f: f["type"] == "PRESENCE" and "ghost" not in f["payload"]["online"],
            timeout=10,
        )
    finally:
        ghost.close()
        await watcher.close()
