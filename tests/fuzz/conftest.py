"""Fixtures of the fuzz suites: seeded apps (see running.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PASSWORD, fresh_postgres_database

from camvault.settings import Settings
from fuzz.running import RunningApp, running, seed

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"] if PG_URL else ["sqlite"])
def seeded_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """One seeded app per module and database: logins hash passwords (argon2, slow on a
    busy machine), so the fuzz cases share an app and RunningApp.restore() undoes what
    they do to the seed instead of starting over."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    if request.param == "sqlite":
        with running(_settings(data, None)) as app:
            seed(app)
            yield app
        return
    assert PG_URL is not None
    with fresh_postgres_database(PG_URL) as url, running(_settings(data, url)) as app:
        seed(app)
        yield app


def _settings(data: Path, database_url: str | None) -> Settings:
    return Settings(data=data, database_url=database_url, admin_password=PASSWORD)
