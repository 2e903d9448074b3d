"""The one writer: every mutation of the vault runs here, one at a time, in a thread.

In-process, an ``asyncio.Lock`` queues writers fairly (FIFO) without busy-waiting; across
processes the database's write transaction (``Database.write``) does the same job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from anyio import to_thread

P = ParamSpec("P")
T = TypeVar("T")


class Writer:
    """Serializes blocking write functions and runs them off the event loop."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """Whether a write is running (so a new one would wait)."""
        return self._lock.locked()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._lock:
            # The write runs in its own task so that cancelling the caller (a client that
            # hung up) cannot release the lock while the thread is still writing.
            job = asyncio.ensure_future(to_thread.run_sync(lambda: fn(*args, **kwargs)))
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                await asyncio.wait([job])
                raise
