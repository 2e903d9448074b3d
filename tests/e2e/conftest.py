"""Fixtures for the end-to-end tests: a server launcher and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from camvault.store.db import null_pool_engine
from e2e.server import Launcher

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """Start servers with ``launch.start(...)``; all are stopped when the test ends."""
    launcher = Launcher(tmp_path / "logs")
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(params=BACKENDS)
def server_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for SQLite in the data dir, or a fresh PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    assert PG_URL is not None
    name = f"camvault_e2e_{secrets.token_hex(6)}"
    server_url = make_url(PG_URL)
    admin = null_pool_engine(
        server_url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE: a server killed with SIGKILL may leave a backend the kernel has not
            # yet reported closed.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
