"""The one writer: every mutation of the vault runs here, one at a time, in a thread.

Writes queue in arrival order (FIFO) and one task drains the queue. A write that changes
only the database (a checkout, a cancel, a lock broken) is a *step*: steps waiting next to
each other in the queue run together in one transaction, each in its own savepoint, and
share one COMMIT (group commit). On SQLite with ``synchronous=FULL`` the fsync of that
COMMIT is most of a checkout's time in the writer, so under load a burst of N lock
operations costs about one fsync instead of N, and the last of them waits that much less.
A step that fails is undone alone; nobody is told "done" before the COMMIT that made it so.

Across processes the database's write transaction (``Database.write``) does the same job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from anyio import to_thread
from sqlalchemy import Connection

from camvault.store.db import Database, Done, Failed, Outcome

log = logging.getLogger("camvault.writer")
P = ParamSpec("P")
T = TypeVar("T")

# A bound on one group commit, so one transaction's savepoints stay few and the first
# step's caller does not wait on a long tail of others.
MAX_STEPS_PER_COMMIT = 64


class WriterStopped(RuntimeError):
    """The writer stopped (its event loop is going away) before this write ran."""


@dataclass(eq=False)
class _Job:
    run: Callable[[], Any] | None  # a whole write of its own (git work and its transaction)
    step: Callable[[Connection], Any] | None  # or a step of a shared transaction
    future: asyncio.Future[Any] = field(init=False)
    started: bool = False


class Writer:
    """Serializes blocking write functions and runs them off the event loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: deque[_Job] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` alone in the writer's turn; it opens its own transaction(s)."""
        job = _Job(run=partial(fn, *args, **kwargs), step=None)
        result: T = await self._submit(job)
        return result

    async def step(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, ...)`` inside a write transaction it may share with other steps.

        ``fn`` must change nothing but the database (``Database.write_each``).
        """
        job = _Job(run=None, step=lambda conn: fn(conn, *args, **kwargs))
        result: T = await self._submit(job)
        return result

    async def _submit(self, job: _Job) -> Any:
        loop = asyncio.get_running_loop()
        drainer = self._drainer
        if drainer is not None and not drainer.done() and drainer.get_loop() is not loop:
            raise RuntimeError("the writer is still draining on another event loop")
        job.future = loop.create_future()
        self._queue.append(job)
        if drainer is None or drainer.done():
            self._drainer = loop.create_task(self._drain(), name="camvault-writer")
            self._drainer.add_done_callback(_report_failure)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            # The caller went away (a client that hung up). A write that has not started
            # never will; one that has runs to its end before the caller's cancel goes on,
            # as the caller's task is what the server waits for at shutdown.
            if not job.started:
                with contextlib.suppress(ValueError):  # gone already if the drainer stopped
                    self._queue.remove(job)
                job.future.cancel()
                raise
            await asyncio.wait([job.future])
            if not job.future.cancelled():
                job.future.exception()  # seen: its outcome belongs to nobody now
            raise

    async def _drain(self) -> None:
        batch: list[_Job] = []
        try:
            while self._queue:
                batch = self._next_batch()
                _settle(batch, await self._execute(batch))
        finally:
            # Reached with jobs left only if the drainer failed or was cancelled (its loop
            # is going away): nobody will run them, so their callers must not wait forever.
            # They get an error of their own, not a CancelledError they did not cause.
            for job in [*batch, *self._queue]:
                if not job.future.done():
                    job.future.set_exception(WriterStopped("the writer stopped before this"))
            self._queue.clear()

    def _next_batch(self) -> list[_Job]:
        """The first queued job, with the steps right behind it if it is a step."""
        batch = [self._queue.popleft()]
        if batch[0].step is not None:
            while (
                self._queue
                and self._queue[0].step is not None
                and len(batch) < MAX_STEPS_PER_COMMIT
            ):
                batch.append(self._queue.popleft())
        for job in batch:
            job.started = True
        return batch

    async def _execute(self, batch: list[_Job]) -> list[Outcome]:
        """Run one batch in a thread; a cancelled drainer still waits for the thread."""
        work = asyncio.ensure_future(to_thread.run_sync(self._blocking, batch))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # A thread cannot be stopped: wait for it, so its callers hear what happened.
            await asyncio.wait([work])
            if not work.cancelled() and work.exception() is None:
                _settle(batch, work.result())
            raise

    def _blocking(self, batch: list[_Job]) -> list[Outcome]:
        first = batch[0]
        if first.run is not None:
            try:
                return [Done(first.run())]
            except Exception as exc:
                return [Failed(exc)]
        return self.db.write_each([job.step for job in batch if job.step is not None])


def _settle(batch: list[_Job], outcomes: list[Outcome]) -> None:
    """Tell each job's caller its outcome (a caller that went away is told nothing)."""
    for job, outcome in zip(batch, outcomes, strict=True):
        if job.future.done():
            continue
        if isinstance(outcome, Done):
            job.future.set_result(outcome.value)
        else:
            job.future.set_exception(outcome.error)


def _report_failure(drainer: asyncio.Task[None]) -> None:
    """A drainer that failed has failed its jobs too; the reason belongs in the log."""
    if not drainer.cancelled() and (exc := drainer.exception()) is not None:
        log.error("the writer stopped", exc_info=exc)
