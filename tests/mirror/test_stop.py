"""A remote that hangs: the push times out as an error, and shutdown does not wait for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio import to_thread
from git_server import GitHttpServer
from helpers import Vault, mcam, upload
from sqlalchemy import select

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings
from camvault.store.models import mirror
from mirror.util import MIRROR, wait_status

pytestmark = pytest.mark.anyio

TOKEN = "glpat-hangHANGhangHANG"


@pytest.fixture
def hanging(tmp_path: Path) -> Iterator[GitHttpServer]:
    (tmp_path / "srv").mkdir()
    with GitHttpServer(tmp_path / "srv", TOKEN, hang_seconds=30) as running:
        running.create_repo("vault.git")
        yield running


async def test_a_push_that_takes_too_long_is_a_timeout_error(
    settings: Settings, hanging: GitHttpServer
) -> None:
    fast = settings.model_copy(update={"mirror_timeout_seconds": 0.5})
    camvault = Camvault(fast)
    app = create_app(fast, camvault)
    async with app.router.lifespan_context(app):
        await to_thread.run_sync(camvault.bootstrap_admin)
        vault = Vault(app, camvault)
        async with await vault.login("admin") as admin:
            body = {"url": hanging.url("vault.git"), "token": TOKEN}
            assert (await admin.put(MIRROR, json=body)).status_code == 200
            status = await wait_status(admin, lambda s: s["error_kind"] is not None)
    assert status["error_kind"] == "timeout" and "longer than" in status["last_error"]


async def test_shutdown_kills_a_push_in_flight_and_records_nothing(
    settings: Settings, hanging: GitHttpServer
) -> None:
    camvault = Camvault(settings)
    app = create_app(settings, camvault)
    async with app.router.lifespan_context(app):
        await to_thread.run_sync(camvault.bootstrap_admin)
        vault = Vault(app, camvault)
        async with await vault.login("admin") as admin:
            body = {"url": hanging.url("vault.git"), "token": TOKEN}
            assert (await admin.put(MIRROR, json=body)).status_code == 200
            while hanging.arrived == 0:  # git is now waiting on the remote
                await asyncio.sleep(0.02)
            # A push that hangs never holds up a check-in.
            before = time.monotonic()
            assert (await upload(admin, "1234567_A1.mcam", mcam(b"x"))).status_code == 201
            assert time.monotonic() - before < 5
        started = time.monotonic()
    assert time.monotonic() - started < 5, "shutdown waited for the hanging push"
    with camvault.db.engine.connect() as conn:
        row = conn.execute(select(mirror)).one()
    camvault.db.dispose()
    assert row.failures == 0 and row.last_error is None and row.push_requested
