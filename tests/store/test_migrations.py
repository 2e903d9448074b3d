"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from camvault.errors import SchemaTooNew
from camvault.settings import Settings
from camvault.store.db import Database
from camvault.store.models import metadata


def test_the_migrated_schema_matches_the_models(settings: Settings) -> None:
    settings.data.mkdir(parents=True)
    url = settings.sqlalchemy_url()
    Database(url).migrate()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_a_schema_migrated_by_a_newer_camvault_is_refused_and_left_alone(
    settings: Settings,
) -> None:
    settings.data.mkdir(parents=True)
    url = settings.sqlalchemy_url()
    Database(url).migrate()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe9999'"))
        with pytest.raises(SchemaTooNew, match=r"revision f00dcafe9999.*upgrade camvault"):
            Database(url).migrate()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                ("f00dcafe9999",)
            ]
    finally:
        engine.dispose()
