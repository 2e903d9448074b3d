"""Fixtures for the end-to-end tests: a server launcher and the database to point it at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.nginx import NginxLauncher
from e2e.server import Launcher


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launcher]:
    """Start servers with ``launch.start(...)``; all are stopped when the test ends."""
    launcher = Launcher(tmp_path / "logs")
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxLauncher]:
    """Start a real nginx with ``nginx.start([upstreams])``; stopped when the test ends."""
    launcher = NginxLauncher(tmp_path / "nginx")
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def server_database_url(database_url: str | None) -> str | None:
    """None for SQLite in the data dir, or a fresh PostgreSQL database (see tests/conftest.py)."""
    return database_url
