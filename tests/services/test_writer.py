"""The one writer: lock operations that queue together share one COMMIT (group commit),
each still succeeds or fails on its own, and a caller that goes away is handled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import to_thread
from helpers import Vault, mcam, token_of, upload
from sqlalchemy import Connection, event, select, text

from camvault.events.log import EventType, LoggedEvent, append
from camvault.services.writer import Writer, WriterStopped
from camvault.store.db import Database, Done, Failed
from camvault.store.models import events

pytestmark = pytest.mark.anyio

NAMES = [f"{1000000 + i}.mcam" for i in range(8)]


@contextmanager
def counting_commits(db: Database) -> Iterator[list[int]]:
    """How many write transactions commit meanwhile (not reads, nor released savepoints)."""
    commits: list[int] = []

    def on_commit(conn: Connection) -> None:
        if conn.get_execution_options().get("camvault_write"):
            commits.append(1)

    event.listen(db.engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(db.engine, "commit", on_commit)


@asynccontextmanager
async def writer_held(writer: Writer) -> AsyncIterator[Callable[[int], Any]]:
    """Keep the writer busy with a write of its own until the block ends, so what is sent
    meanwhile queues behind it. Yields ``queued(n)``: wait until n writes are queued."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    holder = asyncio.ensure_future(writer.run(hold))
    while not started.is_set():
        await asyncio.sleep(0.01)

    async def queued(n: int) -> None:
        async with asyncio.timeout(10):
            while len(writer._queue) < n:
                await asyncio.sleep(0.01)

    try:
        yield queued
    finally:
        release.set()
        await holder


async def files_uploaded(admin: httpx.AsyncClient) -> None:
    for name in NAMES:
        assert (await upload(admin, name, mcam(name.encode()))).status_code == 201


async def test_lock_operations_queued_together_share_one_commit(vault: Vault) -> None:
    camvault = vault.camvault
    async with await vault.login("admin") as admin:
        await files_uploaded(admin)
        with counting_commits(camvault.db) as commits:
            async with writer_held(camvault.writer) as queued:
                sent = [
                    asyncio.ensure_future(admin.post(f"/api/files/{n}/checkout", json={}))
                    for n in NAMES
                ]
                await queued(len(NAMES))
                assert not any(s.done() for s in sent), "answered before its commit"
            answers = await asyncio.gather(*sent)
        assert [a.status_code for a in answers] == [200] * len(NAMES)
        assert [a.json()["lock"]["user"] for a in answers] == ["admin"] * len(NAMES)
        assert len(commits) == 1, f"{len(NAMES)} checkouts took {len(commits)} commits"
        listed = (await admin.get("/api/files")).json()["groups"]
    locked = {f["filename"] for group in listed.values() for f in group if f["lock"]}
    assert locked == set(NAMES)


async def test_a_step_that_fails_is_undone_alone(vault: Vault) -> None:
    camvault = vault.camvault
    published: list[LoggedEvent] = []

    def keep(items: Any) -> None:
        published.extend(i for i in items if isinstance(i, LoggedEvent))

    def half_done(conn: Connection) -> None:
        append(conn, EventType.NOTIFICATION, actor="admin", data={"to": "x", "kind": "test"})
        raise RuntimeError("this step fails after writing")

    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await files_uploaded(admin)
        assert (await bob.post(f"/api/files/{NAMES[0]}/checkout", json={})).is_success
        camvault.db.on_commit.append(keep)
        async with writer_held(camvault.writer) as queued:
            sent = [
                asyncio.ensure_future(admin.post(f"/api/files/{n}/checkout", json={}))
                for n in NAMES[:3]
            ]
            await queued(3)
            failing = asyncio.ensure_future(camvault.writer.step(half_done))
            sent.append(asyncio.ensure_future(admin.post(f"/api/files/{NAMES[3]}/checkout")))
            await queued(5)
        answers = await asyncio.gather(*sent)
        with pytest.raises(RuntimeError, match="fails after writing"):
            await failing
        camvault.db.on_commit.remove(keep)
    codes = [a.status_code for a in answers]
    assert codes == [409, 200, 200, 200], [a.text for a in answers]
    assert answers[0].json()["error"]["code"] == "locked"
    # The failed step's event is neither in the log nor handed to the hub; the others are,
    # with the seqs the log gives them.
    with camvault.db.read() as conn:
        rows = conn.execute(select(events).order_by(events.c.seq.desc()).limit(3)).all()
    assert [r.type for r in rows] == [str(EventType.FILE_CHECKED_OUT)] * 3
    assert sorted(r.seq for r in rows) == [e.seq for e in published]
    assert all(e.type == str(EventType.FILE_CHECKED_OUT) for e in published)


async def test_a_batch_whose_transaction_fails_fails_every_step_in_it(vault: Vault) -> None:
    camvault = vault.camvault
    undone: list[str] = []

    def touches_git(conn: Connection) -> None:
        # Only whole writes may change git: in a shared transaction this is a bug, and
        # the whole batch is refused (and its git change taken back).
        Database.on_rollback(conn, lambda: undone.append("git"))

    async with await vault.login("admin") as admin:
        await files_uploaded(admin)
        user = await to_thread.run_sync(camvault.auth.authenticate, token_of(admin))
        assert user is not None
        async with writer_held(camvault.writer) as queued:
            sent = [asyncio.ensure_future(camvault.vault.checkout(user, n, "")) for n in NAMES[:2]]
            await queued(2)
            wrong = asyncio.ensure_future(camvault.writer.step(touches_git))
            await queued(3)
        outcomes = await asyncio.gather(*sent, wrong, return_exceptions=True)
        listed = (await admin.get("/api/files")).json()["groups"]
    assert [str(o) for o in outcomes] == ["a step of write_each must not change git"] * 3
    assert undone == ["git"]
    assert not any(f["lock"] for group in listed.values() for f in group)


async def test_a_caller_gone_before_its_turn_writes_nothing(vault: Vault) -> None:
    camvault = vault.camvault
    ran: list[str] = []
    async with await vault.login("admin") as admin:
        await files_uploaded(admin)
        async with writer_held(camvault.writer) as queued:
            gone = asyncio.ensure_future(camvault.writer.step(lambda _conn: ran.append("x")))
            kept = asyncio.ensure_future(admin.post(f"/api/files/{NAMES[0]}/checkout"))
            await queued(2)
            gone.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gone
            assert len(camvault.writer._queue) == 1
        assert (await kept).status_code == 200
    assert ran == []


async def test_a_caller_gone_mid_write_waits_for_it_and_it_stays_written(vault: Vault) -> None:
    camvault = vault.camvault
    release = threading.Event()
    started = threading.Event()

    def slow(conn: Connection) -> int:
        started.set()
        release.wait(30)
        return append(conn, EventType.NOTIFICATION, actor="admin", data={"to": "x"})

    caller = asyncio.ensure_future(camvault.writer.step(slow))
    while not started.is_set():
        await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0.1)
    # The server waits for a request's task at shutdown: it must not end before its write.
    assert not caller.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    with camvault.db.read() as conn:
        newest = conn.execute(select(events.c.type).order_by(events.c.seq.desc())).first()
    assert newest is not None and newest.type == str(EventType.NOTIFICATION)


async def test_a_drainer_that_stops_fails_the_writes_still_queued(vault: Vault) -> None:
    writer = vault.camvault.writer
    ran: list[int] = []
    async with writer_held(writer) as queued:
        waiting = asyncio.ensure_future(writer.step(lambda _conn: ran.append(1)))
        await queued(1)
        assert writer._drainer is not None
        writer._drainer.cancel()  # as when the server's loop goes away
    with pytest.raises(WriterStopped):
        await waiting
    assert ran == []
    # The next write starts a drainer again.
    async with await vault.login("admin") as admin:
        assert (await upload(admin, NAMES[0], mcam())).status_code == 201


def test_an_error_that_ends_the_sqlite_transaction_fails_the_whole_batch(tmp_path: Path) -> None:
    """SQLite ends the whole transaction on a full disk, not just the failed statement:
    the steps before must not be reported done (they are gone) nor those after committed
    on their own."""
    db = Database(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
            conn.exec_driver_sql("CREATE TABLE big (x BLOB)")
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

        @event.listens_for(db.engine, "connect")
        def small_disk(dbapi: Any, _record: Any) -> None:
            dbapi.execute(f"PRAGMA max_page_count={pages + 3}")

        db.engine.dispose()

        def row(tag: str) -> Callable[[Connection], str]:
            def step(conn: Connection) -> str:
                conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": tag})
                return tag

            return step

        def fill(conn: Connection) -> None:
            conn.execute(text("INSERT INTO big VALUES (:x)"), {"x": b"x" * 100_000})

        outcomes = db.write_each([row("a"), fill, row("c"), row("d")])
        assert [type(o) for o in outcomes] == [Failed] * 4, outcomes
        assert all(isinstance(o, Failed) and "full" in str(o.error) for o in outcomes)
        with db.read() as conn:
            assert conn.execute(text("SELECT x FROM t")).all() == []
        # The transaction was not left open: the next batch commits normally.
        assert [type(o) for o in db.write_each([row("e"), row("f")])] == [Done, Done]
    finally:
        db.dispose()
