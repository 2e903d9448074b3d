"""Fixtures of the fuzz suites: apps with accounts (see running.py) on SQLite and PostgreSQL.

Logging in hashes a password (argon2, slow on a busy machine), so each module shares one
app per database instead of starting one per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from helpers import PASSWORD, fresh_postgres_database

from camvault.settings import Settings
from fuzz.running import RunningApp, running, seed

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(scope="module", params=BACKENDS)
def module_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """A fresh app with the accounts admin, ann and ben, shared by one module's tests."""
    with ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            assert PG_URL is not None
            url = stack.enter_context(fresh_postgres_database(PG_URL))
        data = tmp_path_factory.mktemp("fuzz") / "data"
        settings = Settings(data=data, database_url=url, admin_password=PASSWORD)
        yield stack.enter_context(running(settings))


@pytest.fixture(scope="module")
def seeded_app(module_app: RunningApp) -> RunningApp:
    """The module's app with files in every state (RunningApp.restore() keeps them so)."""
    seed(module_app)
    return module_app
