"""PostgreSQL LISTEN/NOTIFY: the wake-up that tells an instance another one wrote.

Every event row written on PostgreSQL also sends ``NOTIFY camvault_events, '<seq>'`` in its
transaction, so the notification leaves only when the row is committed. The payload is a
hint: the hub always reads the log from its own position, so a lost, duplicated or late
notification costs latency, never correctness. The listener holds one dedicated connection;
when it drops (a restart, ``pg_terminate_backend``, a network cut caught by TCP keepalives)
it reconnects with jittered backoff and wakes the hub at once, which catches up from the
log. The hub's periodic poll stays as the last safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from camvault.events.log import CHANNEL

log = logging.getLogger("camvault.listener")


def parse_note(payload: str) -> tuple[int | None, str | None]:
    """``"<seq> <origin>"`` (an older camvault sends only the seq) as (seq, origin)."""
    seq, _, origin = payload.partition(" ")
    return (int(seq) if seq.isdigit() else None), (origin or None)


def libpq_dsn(sqlalchemy_url: str) -> str:
    """The libpq form of a ``postgresql+psycopg://`` SQLAlchemy URL."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class NotifyListener:
    """LISTENs on the events channel and calls ``wake`` (on the event loop) for each note,
    with the seq and the writer's origin it names (None, None after a reconnect)."""

    def __init__(
        self,
        dsn: str,
        wake: Callable[[int | None, str | None], None],
        *,
        max_backoff: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.wake = wake
        self.max_backoff = max_backoff
        self.application_name = f"camvault-listen-{os.getpid()}"
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-listener")

    async def stop(self) -> None:
        # Only async I/O runs in this task (no thread holds a database connection), so
        # cancelling it is safe: the connection closes with the context manager.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                # Never the DSN in a log line: it may carry a password.
                log.warning(
                    "event listener lost its connection (%s); reconnecting", type(exc).__name__
                )
            if self.connected.is_set():
                failures = 0  # it worked for a while: the first retry comes quickly
                self.connected.clear()
            failures = min(failures + 1, 6)
            self.reconnects += 1
            delay = min(self.max_backoff, 0.2 * 2**failures)
            await asyncio.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not crypto

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            application_name=self.application_name,
            # A peer that vanished without a FIN (a cut cable) is noticed within ~25 s.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            connect_timeout=10,
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            # Whatever was written while nobody listened: the hub reads it from the log now.
            self.wake(None, None)
            async for note in conn.notifies():
                self.wake(*parse_note(note.payload))
        raise psycopg.OperationalError("the listening connection closed")
