"""The hub: tails the event log and fans its frames out to WebSocket connections.

The log is the truth. The hub is woken after every committed write (``Database.on_commit``)
and also polls, so a write made by another process on the same database still arrives.
A write of this process hands over the rows it appended (``Database.publish``): when they
follow on from the hub's seq without a gap, the hub fans them out without reading them
back; after a gap (another process wrote in between) it reads the log, as on a poll.
Each connection has its own bounded queue (``Outbox``) and writer task: a client that stops
reading fills only its own queue and is then closed (1013), never delaying the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from camvault.events.frames import (
    BROADCAST_EVENTS,
    EventFrames,
    encode,
    frame,
    frames_for,
    snapshot_frame,
)
from camvault.events.log import LoggedEvent, latest_seq
from camvault.services.snapshot import SnapshotCache
from camvault.store.db import Database
from camvault.store.failures import database_failure, describe
from camvault.store.models import events

log = logging.getLogger("camvault.hub")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
# Application range (4000-4999): "too many", as HTTP 429. Not 1008 (the session is fine)
# nor 1013 (clients reconnect at once on that, which here would just be refused again).
CLOSE_TOO_MANY = 4429
# A socket over the limit is held this long before its 4429, and one user's refusals are
# closed at least REFUSE_SPACING_S apart, however many arrive at once: a client that
# ignores 4429 and reconnects at once costs a few handshakes a second, not one per socket
# it keeps open. At most REFUSE_HOLD_MAX_S of one user's refusals are queued (about 145
# sockets); past that, each is held REFUSE_DELAY_S without joining the queue.
REFUSE_DELAY_S = 1.0
REFUSE_SPACING_S = 0.2
REFUSE_HOLD_MAX_S = 30.0
PAGE = 1000
# The longest pause between two attempts to read the log while the database is away.
MAX_BACKOFF = 5.0
# Built once (a statement caches its own cache key): the hub reads the log after every write.
_EVENTS_AFTER = select(events).where(events.c.seq > bindparam("after")).order_by(events.c.seq)
_EVENTS_PAGE = _EVENTS_AFTER.limit(PAGE)
_EVENTS_UPTO = _EVENTS_AFTER.where(events.c.seq <= bindparam("upto"))


class Outbox:
    """A connection's outgoing frames: bounded, with one reader (its writer task).

    asyncio.Queue's interface for the part the hub uses, without its general machinery: a
    put is a deque append and, only when the writer is asleep, one future resolved. The
    fan-out makes one put per client per event, so this is on the hottest path there is.
    """

    __slots__ = ("_frames", "_limit", "_waiter")

    def __init__(self, limit: int) -> None:
        self._frames: deque[str] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, text: str) -> None:
        if len(self._frames) >= self._limit:
            raise asyncio.QueueFull
        self._frames.append(text)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> str:
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.popleft()

    def get_nowait(self) -> str:
        if not self._frames:
            raise asyncio.QueueEmpty
        return self._frames.popleft()

    def empty(self) -> bool:
        return not self._frames

    def qsize(self) -> int:
        return len(self._frames)


@dataclass(eq=False)
class Connection:
    """One open WebSocket: who it is, what it has been sent, and its outgoing queue."""

    username: str
    token: str
    queue_size: int
    is_admin: bool = False
    last_seq: int = 0
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    queue: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.queue = Outbox(self.queue_size)

    def send(self, text: str) -> None:
        """Queue a frame; a full queue means the client fell behind: close it (1013)."""
        if self.close_code is not None:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close(CLOSE_TRY_AGAIN)

    def close(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
            self.closed.set()


class Hub:
    """Fans the event log out to connections; tracks who is online."""

    def __init__(
        self,
        db: Database,
        snapshots: SnapshotCache,
        *,
        epoch: str,
        queue_size: int,
        replay_window: int,
        poll_interval: float,
        authenticate_many: Callable[[list[str]], set[str]],
        revalidate_interval: float = 30.0,
        on_sessions_changed: Callable[[], None] | None = None,
        on_config_changed: Callable[[], object] | None = None,
        max_per_user: int | None = None,
    ) -> None:
        self.db = db
        self.snapshots = snapshots
        self.epoch = epoch
        self.queue_size = queue_size
        self.replay_window = replay_window
        self.poll_interval = poll_interval
        self.revalidate_interval = revalidate_interval
        self.authenticate_many = authenticate_many
        self.on_sessions_changed = on_sessions_changed
        self.on_config_changed = on_config_changed
        self._rechecks: set[asyncio.Task[None]] = set()
        self.connections: set[Connection] = set()
        self._tabs: Counter[str] = Counter()  # username -> open sockets (presence)
        self.max_per_user = max_per_user
        self._admitted: Counter[str] = Counter()  # username -> sockets admitted, not yet gone
        self._last_refusal: dict[str, float] = {}  # username -> when its latest 4429 is due
        self.seq = 0
        self.last_broadcast = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._handed: list[LoggedEvent] = []  # this process's committed rows, not yet sent
        self._read_wanted = False  # a poll or a notification: read the log, whatever was handed
        self._last_read = time.monotonic()  # the poll is due poll_interval after the last read
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False
        self._stop_requested = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.seq, self.last_broadcast = await to_thread.run_sync(self._positions)
        # Load the list now, not when the first of many reconnecting clients asks for it.
        await to_thread.run_sync(self.snapshots.groups_json)
        self.db.on_commit.append(self.wake_threadsafe)
        self._tasks = [
            asyncio.create_task(self._tail(), name="hub-tail"),
            asyncio.create_task(self._revalidate(), name="hub-revalidate"),
        ]

    async def stop(self, code: int = CLOSE_GOING_AWAY) -> None:
        """Close every connection with ``code`` (1001 at shutdown) and stop tailing."""
        self.stopped = True
        for conn in list(self.connections):
            conn.close(code)
        if self.wake_threadsafe in self.db.on_commit:
            self.db.on_commit.remove(self.wake_threadsafe)
        # No task.cancel(): a task cancelled while its thread reads the database would let
        # the thread hand its connection back after the engine is disposed. Ask, then wait.
        self._wake.set()
        self._stop_requested.set()
        await asyncio.gather(*self._tasks)
        await asyncio.gather(*self._rechecks, return_exceptions=True)
        self._tasks = []

    def wake(self) -> None:
        """Read the log now (on the event loop: a notification from another instance)."""
        self._read_wanted = True
        self._wake.set()

    def notified(self, seq: int | None, origin: str | None) -> None:
        """A NOTIFY for ``seq`` written by ``origin`` (None: unknown): read the log, unless
        this process wrote it (its rows are handed over) or it was sent already."""
        if origin == self.db.origin or (seq is not None and seq <= self.seq):
            return
        self.wake()

    def wake_threadsafe(self, published: Sequence[object] = ()) -> None:
        """After a commit (in the writing thread): take its event rows and wake up."""
        rows = [item for item in published if isinstance(item, LoggedEvent)]
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._hand_over, rows)

    def _hand_over(self, rows: list[LoggedEvent]) -> None:
        self._handed += rows
        self._wake.set()

    def _take_handed(self) -> list[LoggedEvent] | None:
        """The handed-over rows not sent yet, if they are exactly the next ones after
        ``seq``; None after a gap (rows of another process come first)."""
        handed, self._handed = self._handed, []
        rows = sorted((r for r in handed if r.seq > self.seq), key=lambda r: r.seq)
        if any(r.seq != self.seq + i for i, r in enumerate(rows, 1)):
            return None
        return rows

    def newest_seq(self) -> int:
        """The newest seq in the database (blocking): with ``seq``, this instance's lag."""
        with self.db.read() as conn:
            return latest_seq(conn)

    def _positions(self) -> tuple[int, int]:
        with self.db.read() as conn:
            seq = latest_seq(conn)
            last = conn.execute(
                select(events.c.seq)
                .where(events.c.type.in_([str(t) for t in BROADCAST_EVENTS]))
                .order_by(events.c.seq.desc())
                .limit(1)
            ).scalar()
        return seq, int(last or 0)

    # --- connections ----------------------------------------------------------------------

    def admit(self, username: str) -> bool:
        """Reserve one of ``username``'s sockets; False if they hold ``max_per_user`` already.

        Synchronous, so two handshakes of one user cannot both take the last place.
        """
        if self.max_per_user is not None and self._admitted[username] >= self.max_per_user:
            return False
        self._admitted[username] += 1
        return True

    def refusal_delay(self, username: str, now: float | None = None) -> float:
        """Seconds to hold a socket ``admit`` refused before closing it with 4429.

        REFUSE_DELAY_S, and one user's refusals are closed REFUSE_SPACING_S apart while at
        most REFUSE_HOLD_MAX_S of them are queued; past that, REFUSE_DELAY_S again.
        """
        now = time.monotonic() if now is None else now
        if len(self._last_refusal) > 1024:  # forget users whose refusals are all closed
            self._last_refusal = {u: t for u, t in self._last_refusal.items() if t > now}
        due = max(now + REFUSE_DELAY_S, self._last_refusal.get(username, 0.0) + REFUSE_SPACING_S)
        if due - now > REFUSE_HOLD_MAX_S:
            return REFUSE_DELAY_S
        self._last_refusal[username] = due
        return due - now

    async def hold_refused(self, username: str) -> None:
        """Wait out ``refusal_delay`` for a refused socket, or until the hub stops: a held
        socket must not keep a shutting-down server waiting."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), self.refusal_delay(username))

    def release(self, username: str) -> None:
        """Give back a place taken by ``admit`` (the socket is gone)."""
        self._admitted[username] -= 1
        if self._admitted[username] <= 0:
            del self._admitted[username]

    async def attach(self, conn: Connection, after: int | None, epoch: str | None) -> None:
        """Start a connection: replay after ``after`` if we can, else a fresh snapshot."""
        if self.stopped:
            conn.close(CLOSE_GOING_AWAY)
            return
        async with self._lock:
            await self._catch_up(conn, after, epoch)
            self.connections.add(conn)
            self._tabs[conn.username] += 1
        conn.send(self._presence_frame())
        if self._tabs[conn.username] == 1:
            self._broadcast_presence(exclude=conn)

    def detach(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self._tabs[conn.username] -= 1
        if self._tabs[conn.username] <= 0:
            del self._tabs[conn.username]
            self._broadcast_presence()

    async def resume(self, conn: Connection, after: int) -> None:
        """A RESUME frame: replay from ``after`` (or a snapshot) on a live connection."""
        async with self._lock:
            await self._catch_up(conn, after, None)

    async def _catch_up(self, conn: Connection, after: int | None, epoch: str | None) -> None:
        replayable = (
            after is not None
            and (epoch is None or epoch == self.epoch)
            and 0 <= after <= self.seq
            and self.seq - after <= self.replay_window
            # A replay bigger than half the queue would overflow it: a snapshot is smaller.
            and self.seq - after <= conn.queue_size // 2
        )
        if replayable and after is not None:
            rows = await to_thread.run_sync(self._read_events, after, self.seq)
            # Files moved between groups in that range: records replayed one by one would
            # not move the rest, so the client gets the whole list instead.
            if not any(frames.regrouped for frames in rows):
                prev = after
                for frames in rows:
                    prev = self._deliver(conn, frames, prev)
                conn.last_seq = max(self.seq, after)
                return
        seq, groups_json = await to_thread.run_sync(self.snapshots.groups_json)
        conn.send(snapshot_frame(seq, self.epoch, groups_json))
        conn.last_seq = seq

    def online(self) -> list[str]:
        return sorted(self._tabs)

    def _presence_frame(self) -> str:
        return encode(frame("PRESENCE", {"online": self.online()}))

    def _broadcast_presence(self, exclude: Connection | None = None) -> None:
        text = self._presence_frame()
        for conn in list(self.connections):
            if conn is not exclude:
                conn.send(text)

    # --- tailing the log ------------------------------------------------------------------

    def _read_events(self, after: int, upto: int | None = None) -> list[EventFrames]:
        if upto is None:
            query, params = _EVENTS_PAGE, {"after": after}
        else:
            query, params = _EVENTS_UPTO, {"after": after, "upto": upto}
        with self.db.read() as conn:
            rows = conn.execute(query, params).all()
        return _frames_of(rows)

    def _deliver(self, conn: Connection, frames: EventFrames, prev: int) -> int:
        """Send one event's frames to one connection (replay); returns the new prev."""
        if frames.broadcast is not None:
            conn.send(encode({**frames.broadcast, "prev": prev}))
            prev = frames.seq
        for username, message in frames.targeted:
            if username == conn.username:
                conn.send(encode(message))
        if frames.admins is not None and conn.is_admin:
            conn.send(encode(frames.admins))
        return prev

    async def _tail(self) -> None:
        failures = 0
        while not self._stop_requested.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            if time.monotonic() - self._last_read >= self.poll_interval:
                # The poll (another process may have written): due by the clock, so a
                # stream of this process's own commits cannot put it off.
                self._read_wanted = True
            if self._stop_requested.is_set():
                return
            try:
                await self._drain()
            except (SQLAlchemyError, OSError, KeyError, ValueError) as exc:
                # The database went away for a moment, or a row is malformed: live updates
                # must not stop for good. Log it, back off, and retry from self.seq.
                failures += 1
                self._read_wanted = True  # what was handed over is read from the log instead
                self.log_failure(exc, f"live hub could not read the event log (attempt {failures})")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop_requested.wait(), min(MAX_BACKOFF, 0.5 * 2**failures)
                    )
            else:
                failures = 0

    def log_failure(self, exc: BaseException, what: str) -> None:
        """Log a failed database read: one line (no SQL, parameters or password) when the
        database is only away, the traceback when it is anything else."""
        if isinstance(exc, SQLAlchemyError) and database_failure(exc) is not None:
            log.warning("%s: %s", what, describe(exc, self.db.url))
        else:
            log.error("%s", what, exc_info=exc)

    async def _drain(self) -> None:
        async with self._lock:
            handed = self._take_handed()
            if handed is not None and not self._read_wanted:
                await self._send_all(_frames_of(handed))
                return
            self._read_wanted = False
            self._last_read = time.monotonic()
            while True:
                batch = await to_thread.run_sync(self._read_events, self.seq)
                await self._send_all(batch)
                if len(batch) < PAGE:
                    break

    async def _send_all(self, batch: list[EventFrames]) -> None:
        for frames in batch:
            self._fan_out(frames)
            if frames.config_changed:
                await self._config_changed(frames)
            if len(batch) > 1:
                # A burst: let the writer tasks empty the queues between events.
                await asyncio.sleep(0)

    def _fan_out(self, frames: EventFrames) -> None:
        broadcast = None
        if frames.broadcast is not None:
            broadcast = encode({**frames.broadcast, "prev": self.last_broadcast})
            self.last_broadcast = frames.seq
        targeted = [(user, encode(message)) for user, message in frames.targeted]
        admins = encode(frames.admins) if frames.admins is not None else None
        for conn in list(self.connections):
            if frames.seq <= conn.last_seq:
                continue  # already in this client's snapshot or replay
            if broadcast is not None:
                conn.send(broadcast)
            for username, text in targeted:
                if username == conn.username:
                    conn.send(text)
            if admins is not None and conn.is_admin:
                conn.send(admins)
            conn.last_seq = frames.seq
        self.seq = frames.seq
        if frames.sessions_of is not None:
            self._sessions_changed(frames.sessions_of)
        if frames.role_changed_of is not None:
            # The socket knows the role it was opened with; a fresh one learns the new one.
            for conn in list(self.connections):
                if conn.username == frames.role_changed_of:
                    conn.close(CLOSE_POLICY)

    async def _config_changed(self, frames: EventFrames) -> None:
        """Shop settings changed (here or on another instance): reload them, and after a
        regrouping send every client the whole list again."""
        if self.on_config_changed is not None:
            await to_thread.run_sync(self.on_config_changed)
        if not frames.regrouped:
            return
        seq, groups_json = await to_thread.run_sync(self.snapshots.groups_json)
        text = snapshot_frame(seq, self.epoch, groups_json)
        for conn in list(self.connections):
            conn.send(text)
            conn.last_seq = max(conn.last_seq, seq)

    def _sessions_changed(self, username: str) -> None:
        """Someone's sessions changed (here or in another process): forget cached sessions
        and close that user's sockets whose session is gone."""
        if self.on_sessions_changed is not None:
            self.on_sessions_changed()
        if any(c.username == username for c in self.connections):
            task = asyncio.create_task(self.revalidate(username), name="hub-recheck")
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _revalidate(self) -> None:
        """Close connections whose session ended (logout, expiry, disabled user)."""
        while not self._stop_requested.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), self.revalidate_interval)
            if not self._stop_requested.is_set():
                await self.revalidate()

    async def revalidate(self, username: str | None = None) -> None:
        """Close the sockets (of everyone, or of one user) whose session is no longer live."""
        tokens = {c.token for c in self.connections if username is None or c.username == username}
        if not tokens:
            return
        try:
            alive = await to_thread.run_sync(self.authenticate_many, list(tokens))
        except (SQLAlchemyError, OSError) as exc:
            # The query's parameters are token hashes: never the exception's text.
            self.log_failure(exc, "could not re-check the sessions of open WebSockets")
            return
        for conn in list(self.connections):
            if conn.token in tokens and conn.token not in alive:
                conn.close(CLOSE_POLICY)

    def drop_token(self, token: str) -> None:
        """Close the connections of a session that just ended (logout)."""
        for conn in list(self.connections):
            if conn.token == token:
                conn.close(CLOSE_POLICY)


def _frames_of(rows: Sequence[Any]) -> list[EventFrames]:
    """Frames for event rows, read from the log or handed over (``LoggedEvent``)."""
    return [frames_for(r.seq, r.type, r.actor, r.filename, r.data) for r in rows]
