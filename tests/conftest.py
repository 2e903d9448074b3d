"""Shared fixtures: a fresh vault per test on SQLite and, when configured, PostgreSQL.

``CAMVAULT_TEST_DATABASE_URL`` (set by .ci/run) names a PostgreSQL server; each test that
asks for ``database_url`` gets its own freshly created database there, dropped afterwards,
so runs and tests never collide.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers import PASSWORD, Vault, fresh_postgres_database
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy.engine import make_url

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
_HYPOTHESIS_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Property tests must find the same examples on every run (CI is never flaky because of
    # them) and must not write into the repo: no example database, and the caches
    # Hypothesis keeps (module constants, Unicode tables) go to a temporary directory.
    hypothesis_settings.register_profile("camvault", derandomize=True, database=None)
    hypothesis_settings.load_profile("camvault")
    config.stash[_HYPOTHESIS_HOME] = home = tempfile.mkdtemp(prefix="camvault-hypothesis-")
    set_hypothesis_home_dir(home)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HYPOTHESIS_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    if PG_URL:
        where = make_url(PG_URL)
        return f"PostgreSQL: {where.host}:{where.port or 5432}, a fresh database per test"
    return (
        "PostgreSQL: CAMVAULT_TEST_DATABASE_URL is not set, so tests run on SQLite only and "
        "the PostgreSQL-only tests are deselected (.ci/run sets it)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a PostgreSQL server, deselect (not skip) the tests marked `postgresql`."""
    if PG_URL:
        return
    postgres_only = [item for item in items if item.get_closest_marker("postgresql")]
    if postgres_only:
        config.hook.pytest_deselected(items=postgres_only)
        items[:] = [item for item in items if not item.get_closest_marker("postgresql")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for tests marked `postgresql`."""
    assert PG_URL is not None, "a test using postgres_url must be marked postgresql"
    with fresh_postgres_database(PG_URL) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data dir, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data=tmp_path / "data",
        database_url=database_url,
        admin_password=PASSWORD,
        login_max_failures=3,
        login_window_seconds=60,
    )


@pytest.fixture
async def vault(settings: Settings) -> AsyncIterator[Vault]:
    camvault = Camvault(settings)
    app = create_app(settings, camvault)
    async with app.router.lifespan_context(app):
        from anyio import to_thread

        await to_thread.run_sync(camvault.bootstrap_admin)
        yield Vault(app, camvault)
