"""The hub keeps streaming through a database hiccup and never overfills a queue on replay."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from anyio import to_thread
from helpers import Vault, mcam, token_of, upload
from protocol_schema import validate_frame
from sqlalchemy.exc import OperationalError

from camvault.events.hub import (
    REFUSE_DELAY_S,
    REFUSE_HOLD_MAX_S,
    REFUSE_SPACING_S,
    Connection,
    Hub,
    Outbox,
)
from camvault.events.listener import parse_note
from camvault.store.db import Database, Done

pytestmark = pytest.mark.anyio


async def next_frame(conn: Connection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await conn.queue.get())
            validate_frame(frame)
            if frame["type"] == kind:
                return frame


def another_instance(vault: Vault) -> Database:
    """The same database opened again, as another camvault process would: its writes are
    not handed to this hub, which learns of them only by reading the log."""
    return Database(vault.camvault.settings.sqlalchemy_url())


async def checkout_elsewhere(vault: Vault, token: str, name: str) -> None:
    """Check ``name`` out through ``another_instance``."""
    camvault = vault.camvault
    user = await to_thread.run_sync(camvault.auth.authenticate, token)
    assert user is not None
    other = another_instance(vault)
    try:
        [outcome] = await to_thread.run_sync(
            other.write_each, [lambda conn: camvault.vault._checkout(conn, user, name, "")]
        )
    finally:
        other.dispose()
    assert isinstance(outcome, Done), outcome


def count_reads(hub: Hub) -> list[int]:
    """Record the hub's reads of the log (each still reads it)."""
    real = hub._read_events
    reads: list[int] = []

    def counted(after: int, upto: int | None = None) -> Any:
        reads.append(after)
        return real(after, upto)

    hub._read_events = counted  # type: ignore[method-assign]
    return reads


async def quiet_polls(hub: Hub) -> None:
    """No poll of the log during the test: only what a test does wakes the hub."""
    hub.poll_interval = 3600.0
    hub.wake()  # the wait in progress ends and the next one takes the new interval
    await asyncio.sleep(0.1)


async def test_the_live_stream_survives_a_failed_read_of_the_log(vault: Vault) -> None:
    hub = vault.camvault.hub
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        token = token_of(admin)
    conn = Connection("admin", "token", 64)
    await hub.attach(conn, None, None)
    await next_frame(conn, "FILE_LIST_UPDATED")
    real = hub._read_events
    failures = []

    def flaky(after: int, upto: int | None = None) -> Any:
        if not failures:
            failures.append(after)
            raise OperationalError("SELECT", {}, Exception("database is restarting"))
        return real(after, upto)

    hub._read_events = flaky  # type: ignore[method-assign]
    # Another instance's change: only a read of the log brings it here.
    await checkout_elsewhere(vault, token, "1234567.mcam")
    hub.wake()
    frame = await next_frame(conn, "FILE_UPDATED")
    assert failures, "the injected failure never happened"
    assert frame["payload"]["file"]["filename"] == "1234567.mcam"
    assert frame["payload"]["file"]["lock"]["user"] == "admin"
    hub.detach(conn)


async def test_this_process_writes_reach_the_hub_without_a_read_of_the_log(
    vault: Vault,
) -> None:
    hub = vault.camvault.hub
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        await asyncio.sleep(0.2)
        await quiet_polls(hub)
        conn = Connection("admin", "token", 64)
        await hub.attach(conn, None, None)
        await next_frame(conn, "FILE_LIST_UPDATED")
        reads = count_reads(hub)
        for _ in range(3):
            assert (await admin.post("/api/files/1234567.mcam/checkout", json={})).is_success
            assert (await admin.post("/api/files/1234567.mcam/cancel-checkout")).is_success
        frames = [await next_frame(conn, "FILE_UPDATED") for _ in range(6)]
    locks = [f["payload"]["file"]["lock"] for f in frames]
    assert [lock["user"] if lock else None for lock in locks] == ["admin", None] * 3
    assert [f["seq"] for f in frames] == list(range(frames[0]["seq"], frames[0]["seq"] + 6))
    assert reads == [], "the hub read back rows its own process had handed to it"
    # The same frames as a client replaying from the log gets.
    replay = Connection("admin", "token", 64)
    await hub.attach(replay, frames[0]["seq"] - 1, hub.epoch)
    replayed = [json.loads(replay.queue.get_nowait()) for _ in range(6)]
    assert [f["payload"] for f in replayed] == [f["payload"] for f in frames]
    for c in (conn, replay):
        hub.detach(c)


async def test_after_another_instance_wrote_the_hub_reads_the_gap_from_the_log(
    vault: Vault,
) -> None:
    hub = vault.camvault.hub
    async with await vault.login("admin") as admin:
        for name in ("1234567.mcam", "7654321.mcam"):
            await upload(admin, name, mcam())
        token = token_of(admin)
        await asyncio.sleep(0.2)
        await quiet_polls(hub)
        conn = Connection("admin", "token", 64)
        await hub.attach(conn, None, None)
        await next_frame(conn, "FILE_LIST_UPDATED")
        reads = count_reads(hub)
        if vault.camvault.listener is not None:
            await vault.camvault.listener.stop()  # its NOTIFY would wake the hub: no gap
        # Not handed over, and no wake: the hub does not know of it yet.
        await checkout_elsewhere(vault, token, "1234567.mcam")
        # This one is handed over, but the other instance's row comes before it.
        assert (await admin.post("/api/files/7654321.mcam/checkout", json={})).is_success
        first = await next_frame(conn, "FILE_UPDATED")
        second = await next_frame(conn, "FILE_UPDATED")
    assert [f["payload"]["file"]["filename"] for f in (first, second)] == [
        "1234567.mcam",
        "7654321.mcam",
    ]
    assert second["seq"] == first["seq"] + 1
    assert second["prev"] == first["seq"]
    assert len(reads) == 1, reads
    hub.detach(conn)


async def test_a_replay_longer_than_half_the_queue_becomes_a_snapshot(vault: Vault) -> None:
    hub = vault.camvault.hub
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        start = (await admin.get("/api/files")).json()["seq"]
        for _ in range(3):
            await admin.post("/api/files/1234567.mcam/checkout", json={})
            await admin.post("/api/files/1234567.mcam/cancel-checkout")
        await asyncio.sleep(0.2)  # let the hub catch up with the log

    assert hub.seq == start + 6, (hub.seq, start)
    small = Connection("admin", "token", 8)  # half the queue: 4 events at most
    await hub.attach(small, start, hub.epoch)
    first = json.loads(small.queue.get_nowait())
    assert first["type"] == "FILE_LIST_UPDATED"
    assert small.close_code is None

    roomy = Connection("admin", "token", 64)
    await hub.attach(roomy, start, hub.epoch)
    replayed = [json.loads(roomy.queue.get_nowait()) for _ in range(6)]
    assert [f["type"] for f in replayed] == ["FILE_UPDATED"] * 6
    assert [f["seq"] for f in replayed] == list(range(start + 1, start + 7))
    for conn in (small, roomy):
        hub.detach(conn)


async def test_an_outbox_is_bounded_wakes_its_reader_and_survives_a_cancelled_wait() -> None:
    box = Outbox(2)
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()
    reader = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put_nowait("a")
    assert await asyncio.wait_for(reader, 1) == "a"

    box.put_nowait("b")
    box.put_nowait("c")
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait("d")
    assert (box.qsize(), box.get_nowait(), await box.get(), box.empty()) == (2, "b", "c", True)

    # A writer task cancelled while it waits (the socket closed) leaves no stale waiter.
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    box.put_nowait("e")
    assert await asyncio.wait_for(box.get(), 1) == "e"


async def test_refusals_over_the_socket_limit_are_held_and_spaced_per_user(vault: Vault) -> None:
    hub = vault.camvault.hub
    hub.max_per_user = 1
    assert hub.admit("ann") and not hub.admit("ann")
    # A burst of refusals for one user is closed one at a time, the first after the pause.
    burst = [hub.refusal_delay("ann", now=100.0) for _ in range(4)]
    assert burst == pytest.approx([REFUSE_DELAY_S + i * REFUSE_SPACING_S for i in range(4)])
    # Another user's refusals are not queued behind ann's.
    assert hub.refusal_delay("ben", now=100.0) == pytest.approx(REFUSE_DELAY_S)
    # Once ann's queued refusals are closed, the next one waits only the pause again.
    assert hub.refusal_delay("ann", now=200.0) == pytest.approx(REFUSE_DELAY_S)
    # What one user can queue is bounded: past REFUSE_HOLD_MAX_S, each refusal is held
    # the plain pause without joining the queue (never closed at once: no tight loop).
    delays = [hub.refusal_delay("mallory", now=300.0) for _ in range(400)]
    queued = [d for d in delays if d > REFUSE_DELAY_S]
    assert max(delays) <= REFUSE_HOLD_MAX_S
    assert abs(len(queued) + 1 - (REFUSE_HOLD_MAX_S - REFUSE_DELAY_S) / REFUSE_SPACING_S) <= 1
    assert delays[len(queued) + 1 :] == [REFUSE_DELAY_S] * (len(delays) - len(queued) - 1)
    hub.release("ann")
    assert hub.admit("ann")


async def test_a_held_refusal_ends_as_soon_as_the_hub_stops(vault: Vault) -> None:
    hub = vault.camvault.hub
    for _ in range(50):  # ten seconds of refusals queued ahead
        hub.refusal_delay("mallory")
    held = asyncio.create_task(hub.hold_refused("mallory"))
    await asyncio.sleep(0.1)
    assert not held.done()
    await hub.stop()
    await asyncio.wait_for(held, 1.0)


async def test_commits_of_this_process_do_not_put_off_the_poll(vault: Vault) -> None:
    hub = vault.camvault.hub
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        token = token_of(admin)
    if vault.camvault.listener is not None:
        await vault.camvault.listener.stop()  # only the poll may bring the other's change
    hub.poll_interval = 0.5
    conn = Connection("admin", "token", 64)
    await hub.attach(conn, None, None)
    await next_frame(conn, "FILE_LIST_UPDATED")
    await checkout_elsewhere(vault, token, "1234567.mcam")
    # Meanwhile this process commits every 0.1 s (writes without events): each wakes the
    # hub, more often than it polls.
    busy = True

    async def commit_often() -> None:
        while busy:
            await vault.camvault.writer.step(lambda _conn: None)
            await asyncio.sleep(0.1)

    committing = asyncio.ensure_future(commit_often())
    try:
        frame = await next_frame(conn, "FILE_UPDATED", timeout=3.0)
    finally:
        busy = False
        await committing
    assert frame["payload"]["file"]["lock"]["user"] == "admin"
    hub.detach(conn)


async def test_a_notification_wakes_the_hub_only_for_another_instance_news(
    vault: Vault,
) -> None:
    hub = vault.camvault.hub
    await quiet_polls(hub)
    hub._read_wanted = False
    hub.notified(hub.seq + 1, hub.db.origin)  # ours: handed over, never read back
    hub.notified(hub.seq, "another")  # sent already
    assert not hub._read_wanted
    hub.notified(hub.seq + 1, "another")
    assert hub._read_wanted
    hub._read_wanted = False
    hub.notified(None, None)  # after a reconnect, or from an older camvault
    assert hub._read_wanted


def test_a_notification_names_its_seq_and_the_instance_that_wrote_it() -> None:
    assert parse_note("12 ab12cd34") == (12, "ab12cd34")
    assert parse_note("12") == (12, None)  # an older camvault: read the log as before
    assert parse_note("") == (None, None)
