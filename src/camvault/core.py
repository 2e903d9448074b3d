"""The running vault: every long-lived part, built from settings, opened and closed once.

``Camvault(settings)`` does no I/O; ``open()`` creates the data dir, migrates the database,
opens the git repo and reconciles the two; ``close()`` releases them.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import shutil
from datetime import timedelta
from pathlib import Path
from typing import IO

from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from camvault import faults
from camvault.errors import Exists
from camvault.events.hub import Hub
from camvault.events.listener import NotifyListener, libpq_dsn
from camvault.events.log import ensure_epoch
from camvault.history.lfs import ContentStore
from camvault.history.repo import VaultRepo
from camvault.mirror.service import MirrorService
from camvault.services.auth import AuthService, LoginLimiter, Role
from camvault.services.shop import ShopConfig, ShopSettings
from camvault.services.vault import VaultService
from camvault.services.writer import Writer
from camvault.settings import Settings
from camvault.store.db import Database
from camvault.store.failures import describe

log = logging.getLogger("camvault")


class Camvault:
    """Holds the database, the git repo, the content store and the services on top."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(
            settings.sqlalchemy_url(),
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout=settings.sqlite_busy_timeout,
        )
        self.writer = Writer(self.db)
        self.auth = AuthService(
            self.db,
            session_hours=settings.session_hours,
            limiter=LoginLimiter(settings.login_max_failures, settings.login_window_seconds),
        )
        self.shop = ShopSettings(settings, self.db)
        self.shop.listeners.append(self._apply_shop)
        self.mirror = MirrorService(settings, self.db)
        self._vault: VaultService | None = None
        self._hub: Hub | None = None
        self.listener: NotifyListener | None = None
        self._tmp_lock: IO[bytes] | None = None
        self.tmp_dir = settings.tmp_path / f"i{os.getpid()}-{secrets.token_hex(4)}"
        self.epoch = ""

    def _apply_shop(self, config: ShopConfig) -> None:
        """Settings other services hold as plain values follow the shop settings."""
        self.auth.session_lifetime = timedelta(hours=config.session_hours)

    @property
    def vault(self) -> VaultService:
        if self._vault is None:
            raise RuntimeError("Camvault.open() has not run")
        return self._vault

    @property
    def live(self) -> bool:
        """Whether the hub is running (between ``open()`` and ``close_live()``)."""
        return self._hub is not None and not self._hub.stopped

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("Camvault.open() has not run")
        return self._hub

    def open_sync(self) -> None:
        """Create or open everything on disk (blocking)."""
        faults.arm_from_environment()
        data = self.settings.data
        data.mkdir(parents=True, exist_ok=True)
        self.settings.tmp_path.mkdir(exist_ok=True)
        _sweep_tmp(self.settings.tmp_path)
        self.tmp_dir.mkdir()
        self._tmp_lock = _hold_lock(self.tmp_dir / ".lock")
        self.db.migrate()
        self.mirror.open_sync()
        with self.db.write() as conn:
            self.epoch = ensure_epoch(conn)
        self.shop.load()
        repo = VaultRepo.open_or_init(self.settings.repo_path, self.settings.lfs_extensions)
        store = ContentStore(self.settings.repo_path / "lfs" / "objects", self.tmp_dir)
        self._vault = VaultService(
            self.settings, self.db, repo, store, self.writer, self.tmp_dir, self.shop
        )

    async def open(self) -> None:
        """Open storage, reconcile DB with git, and start the live hub."""
        await to_thread.run_sync(self.open_sync)
        await self.vault.reconcile()
        self._hub = Hub(
            self.db,
            self.vault.snapshots,
            epoch=self.epoch,
            queue_size=self.settings.ws_queue_size,
            max_per_user=self.settings.ws_max_per_user,
            replay_window=self.settings.replay_window,
            poll_interval=self.settings.ws_poll_interval,
            authenticate_many=self.auth.authenticate_many,
            revalidate_interval=self.settings.ws_revalidate_seconds,
            on_sessions_changed=self.auth.session_cache.clear,
            on_config_changed=self.shop.load,
        )
        await self._hub.start()
        if not self.db.is_sqlite:
            self.listener = NotifyListener(libpq_dsn(self.db.url), self._hub.notified)
            await self.listener.start()
        await self.mirror.start()

    async def close_live(self, grace: float = 2.0) -> None:
        """Close every WebSocket with 1001 and give them ``grace`` seconds to go."""
        if self._hub is None:
            return
        hub = self._hub
        if self.listener is not None:
            await self.listener.stop()
        await hub.stop()
        for _ in range(int(grace / 0.05)):
            if not hub.connections:
                break
            await asyncio.sleep(0.05)

    async def aclose(self) -> None:
        """Stop the mirror, close live connections (1001: come back soon), release storage."""
        await self.mirror.stop()
        await self.close_live()
        await to_thread.run_sync(self.close)

    def close(self) -> None:
        self.db.dispose()
        if self._tmp_lock is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self._tmp_lock.close()
            self._tmp_lock = None

    def health(self) -> dict[str, str]:
        """Can this instance use its database and its vault right now? (blocking)"""
        checks = {"database": "ok", "vault": "ok"}
        try:
            with self.db.read() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health: the database is unreachable: %s", describe(exc, self.db.url))
            checks["database"] = "unavailable"
        repo = self.settings.repo_path
        writable = (repo, repo / "objects", self.tmp_dir)
        if not (repo / "HEAD").is_file() or not all(os.access(p, os.W_OK) for p in writable):
            log.warning("health: the vault is not readable and writable")
            checks["vault"] = "unavailable"
        return checks

    def bootstrap_admin(self) -> str | None:
        """With no users yet, create ``admin``; returns the password if it was generated."""
        if self.auth.user_count() > 0:
            return None
        given = self.settings.admin_password
        password = given.get_secret_value() if given is not None else secrets.token_urlsafe(12)
        try:
            self.auth.create_user("admin", Role.ADMIN, password)
        except Exists:
            return None  # another instance starting at the same moment made it first
        return None if given is not None else password


def _hold_lock(path: Path) -> IO[bytes]:
    """An exclusive flock held for the process's life: marks its tmp dir as in use."""
    handle = open(path, "wb")  # noqa: SIM115 - closed in Camvault.close
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _sweep_tmp(tmp: Path) -> None:
    """Remove the tmp dirs of instances that died (their flock is free): in-flight uploads
    of a dead process are garbage, while those of a live instance sharing the data dir stay."""
    for entry in tmp.iterdir():
        if not entry.is_dir():
            continue
        try:
            with open(entry / ".lock", "ab") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(entry)
        except BlockingIOError:
            continue
        except FileNotFoundError:
            shutil.rmtree(entry, ignore_errors=True)
