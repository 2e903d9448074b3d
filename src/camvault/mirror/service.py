"""The mirror: its configuration (admin API) and the background worker that pushes.

After every commit the worker is woken (``Database.on_commit``, from the writing thread)
and pushes the vault's LFS objects, then ``main``, to the remote. It never blocks a
check-in: it runs beside the writer, in its own task, with git in subprocesses. A failure
(remote down, refused, diverged) is recorded with exponential backoff and jitter, logged,
and reported to admins (GET and MIRROR_STATUS frames); it is never mistaken for success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pygit2
from anyio import to_thread
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import SQLAlchemyError

from camvault.errors import InvalidMirrorUrl, MirrorKeyMissing, NotFound
from camvault.events.log import EventType, append
from camvault.mirror import state
from camvault.mirror.crypto import KEY_HELP, TokenCipher, TokenDecryptError, load_cipher
from camvault.mirror.push import Pusher, PushError, Target, count_commits, read_head
from camvault.mirror.remote import (
    DEFAULT_USERNAME,
    check_token,
    check_username,
    parse_remote,
)
from camvault.mirror.state import MirrorRow, PushLock
from camvault.settings import Settings
from camvault.store.db import Database
from camvault.store.models import mirror

log = logging.getLogger("camvault.mirror")

LOCK_BUSY_RETRY = 2.0  # another process is pushing: look again soon


class MirrorService:
    """Configure, inspect and run the git mirror of one vault."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.repo_path = settings.repo_path
        self.cipher: TokenCipher | None = None
        self.pusher = Pusher(self.repo_path, settings.mirror_timeout_seconds)
        self.lock = PushLock(db, settings.data)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Whether a mirror was configured when last looked: with none, commits do not wake
        # the worker (it still polls, for a mirror configured by another instance).
        self._active = False
        self._wake = asyncio.Event()  # a commit was made (Database.on_commit)
        self._kick = asyncio.Event()  # an admin configured the mirror or asked for a push
        self._backing_off = False  # waiting for a retry: commits do not cut the wait short
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def open_sync(self) -> None:
        """Load the token key (blocking: reads the key file; raises if it is unusable)."""
        self.cipher = load_cipher(self.settings)

    # --- what admins do -------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await to_thread.run_sync(self._status)

    def _status(self) -> dict[str, Any]:
        with self.db.read() as conn:
            row = state.load(conn)
        return self._shape(row)

    def pending_count(self) -> int | None:
        """Commits not yet pushed, or None without a mirror (blocking; for /metrics)."""
        status = self._status()
        return int(status["pending"]) if status.get("configured") else None

    def _shape(self, row: MirrorRow | None) -> dict[str, Any]:
        if row is None:
            return state.unconfigured()
        pending = count_commits(self.repo_path, read_head(self.repo_path), row.last_pushed)
        return state.status(row, pending, self._token_source(row))

    def _token_source(self, row: MirrorRow) -> str | None:
        if row.token_ciphertext is not None:
            return "stored"
        if self.settings.mirror_token is not None and parse_remote(row.url).takes_token:
            return "environment"
        return None

    async def configure(
        self,
        actor: str,
        url: str,
        token: str | None,
        username: str | None,
        *,
        keep_token: bool = False,
    ) -> dict[str, Any]:
        """Set (or replace) the mirror; a token is stored encrypted. Pushes soon after.

        ``keep_token`` (no token given at all): keep the stored one if the URL is the same,
        so an admin can change the user name without retyping it. Never for another URL:
        the token was given for that remote only.
        """
        remote = parse_remote(url)
        username = check_username(username or DEFAULT_USERNAME)
        ciphertext = key_id = None
        if token is not None:
            if not remote.takes_token:
                raise InvalidMirrorUrl(
                    f"a token is only used with https:// or http:// remotes, not {remote.scheme}"
                )
            check_token(token)
            if self.cipher is None:
                raise MirrorKeyMissing(f"camvault has no key to encrypt the token with: {KEY_HELP}")
            ciphertext, key_id = self.cipher.encrypt(token, remote.url), self.cipher.key_id
        values = {
            "url": remote.url, "username": username, "token_ciphertext": ciphertext,
            "key_id": key_id, "generation": secrets.randbelow(2**31),
            "configured_at": state.now(), "configured_by": actor, "push_requested": True,
            "last_error": None, "error_kind": None, "failures": 0, "next_retry_at": None,
        }  # fmt: skip
        result = await to_thread.run_sync(self._configure, actor, values, keep_token)
        self.wake()
        return result

    def _configure(self, actor: str, values: dict[str, Any], keep_token: bool) -> dict[str, Any]:
        with self.db.write() as conn:
            old = state.load(conn)
            if keep_token and old is not None and old.url == values["url"]:
                values.update(token_ciphertext=old.token_ciphertext, key_id=old.key_id)
            if old is None:
                conn.execute(insert(mirror).values(id=1, last_pushed=None, **values))
            else:
                if old.url != values["url"]:  # another remote: nothing is known pushed there
                    values.update(last_pushed=None, last_pushed_at=None, last_attempt_at=None)
                conn.execute(update(mirror).where(mirror.c.id == 1).values(**values))
            shown = self._shape(state.load(conn))
            append(
                conn,
                EventType.MIRROR_CONFIGURED,
                actor=actor,
                data={"status": shown, "previous_url": old.url if old else None},
            )
        log.info("mirror set to %s by %s", shown["url"], actor)
        return shown

    async def remove(self, actor: str) -> None:
        await to_thread.run_sync(self._remove, actor)
        self.wake()

    def _remove(self, actor: str) -> None:
        with self.db.write() as conn:
            old = state.load(conn)
            if old is None:
                raise NotFound("no mirror is configured")
            conn.execute(delete(mirror).where(mirror.c.id == 1))
            data = {"status": state.unconfigured(), "previous_url": old.url}
            append(conn, EventType.MIRROR_REMOVED, actor=actor, data=data)
        log.info("mirror to %s removed by %s", old.url, actor)

    async def push_now(self) -> dict[str, Any]:
        """Skip any backoff and push at once (also when nothing is pending: a check)."""
        result = await to_thread.run_sync(self._request_push)
        self.wake()
        return result

    def _request_push(self) -> dict[str, Any]:
        with self.db.write() as conn:
            if state.load(conn) is None:
                raise NotFound("no mirror is configured")
            conn.execute(
                update(mirror)
                .where(mirror.c.id == 1)
                .values(push_requested=True, next_retry_at=None)
            )
            return self._shape(state.load(conn))

    # --- the worker -----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.db.on_commit.append(self.wake_threadsafe)
        self._task = asyncio.create_task(self._run(), name="mirror")

    async def stop(self) -> None:
        """Stop the worker; a push in flight is killed and not recorded (retried later)."""
        if self.wake_threadsafe in self.db.on_commit:
            self.db.on_commit.remove(self.wake_threadsafe)
        self._stopping.set()
        self.pusher.kill()
        if self._task is not None:
            # No cancel: a thread mid-transaction must hand its connection back first.
            await asyncio.gather(self._task)
            self._task = None

    def wake(self) -> None:
        self._kick.set()

    def wake_threadsafe(self, _published: Sequence[object] = ()) -> None:
        loop = self._loop
        if self._active and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            self._kick.clear()
            try:
                delay = await self._step()
            except (SQLAlchemyError, OSError, pygit2.GitError):
                # The database, the disk or the repository failed for a moment: log, back
                # off, go on; the mirror must not stop for good.
                failures += 1
                log.exception("the mirror could not read or record its state (%d)", failures)
                delay = min(60.0, 0.5 * 2**failures)
            else:
                failures = 0
            if delay > 0 and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(), delay)
        log.debug("mirror worker stopped")

    async def _wait(self) -> None:
        events = [self._kick, self._stopping]
        if not self._backing_off:
            events.append(self._wake)
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    def _due(self, row: MirrorRow | None, head: str | None) -> float:
        """0 if a push is due now, else how long to sleep before looking again."""
        poll = self.settings.mirror_poll_seconds
        self._backing_off = False
        if row is None:
            return poll
        if row.push_requested:
            return 0
        # Nothing new to push; but a failing mirror is retried even so, so that an error
        # clears by itself once the remote is back.
        if row.last_error is None and (head is None or head == row.last_pushed):
            return poll
        if row.next_retry_at is not None:
            wait = (row.next_retry_at - state.now()).total_seconds()
            if wait > 0:
                self._backing_off = True
                return min(poll, wait)
        return 0

    def _read(self) -> tuple[MirrorRow | None, str | None]:
        with self.db.read() as conn:
            row = state.load(conn)
        return row, read_head(self.repo_path)

    async def _step(self) -> float:
        row, head = await to_thread.run_sync(self._read)
        self._active = row is not None
        delay = self._due(row, head)
        if delay > 0:
            return delay
        if row is not None and not row.push_requested:
            # New commits: gather a burst of check-ins into one push. Fewer git processes
            # competing with the server for the CPU, and the remote still follows within
            # a second or so.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.mirror_batch_seconds)
            if self._stopping.is_set():
                return 0
        held = await to_thread.run_sync(self.lock.acquire)
        if held is None:
            return min(LOCK_BUSY_RETRY, self.settings.mirror_poll_seconds)
        try:
            # Under the lock, look again: another process may have just pushed.
            row, head = await to_thread.run_sync(self._read)
            delay = self._due(row, head)
            if delay > 0 or row is None:
                return delay
            started = state.now()
            try:
                pushed = await self.pusher.push(self._target(row), head)
            except PushError as exc:
                if self._stopping.is_set():
                    return 0  # killed by stop(): not the remote's fault, not recorded
                await to_thread.run_sync(self._record_failure, row, started, exc)
            else:
                await to_thread.run_sync(self._record_success, row, started, pushed)
        finally:
            await to_thread.run_sync(self.lock.release, held)
        return 0

    def _target(self, row: MirrorRow) -> Target:
        remote = parse_remote(row.url)
        token: str | None = None
        if row.token_ciphertext is not None:
            if self.cipher is None:
                raise PushError("config", f"the stored token cannot be decrypted: {KEY_HELP}")
            try:
                token = self.cipher.decrypt(row.token_ciphertext, row.url, row.key_id)
            except TokenDecryptError as exc:
                raise PushError("config", str(exc)) from exc
        elif self.settings.mirror_token is not None and remote.takes_token:
            token = self.settings.mirror_token.get_secret_value()
        return Target(remote, row.username, token)

    def _record_success(self, row: MirrorRow, started: datetime, pushed: str | None) -> None:
        values = {
            "last_pushed": pushed, "last_pushed_at": state.now(), "last_attempt_at": started,
            "last_error": None, "error_kind": None, "failures": 0, "next_retry_at": None,
            "push_requested": False,
        }  # fmt: skip
        if self._record(row, values, EventType.MIRROR_PUSHED):
            log.info("mirror: pushed main at %s to %s", (pushed or "(empty)")[:12], row.url)

    def _record_failure(self, row: MirrorRow, started: datetime, exc: PushError) -> None:
        failures = row.failures + 1
        delay = state.retry_delay(
            failures, self.settings.mirror_retry_seconds, self.settings.mirror_retry_max_seconds
        )
        values = {
            "last_attempt_at": started, "last_error": exc.message, "error_kind": exc.kind,
            "failures": failures, "next_retry_at": state.later(delay), "push_requested": False,
        }  # fmt: skip
        if self._record(row, values, EventType.MIRROR_FAILED):
            log.warning(
                "mirror push to %s failed (%s, attempt %d; retry in %.1f s): %s",
                row.url, exc.kind, failures, delay, exc.message,
            )  # fmt: skip

    def _record(self, row: MirrorRow, values: dict[str, Any], kind: EventType) -> bool:
        """Store an attempt's outcome and its event, unless the mirror was reconfigured or
        removed meanwhile (then the outcome is about a remote that is no longer ours)."""
        with self.db.write() as conn:
            current = state.load(conn)
            if current is None or current.generation != row.generation:
                return False
            conn.execute(update(mirror).where(mirror.c.id == 1).values(**values))
            shown = self._shape(state.load(conn))
            append(conn, kind, actor=None, data={"status": shown})
        return True
