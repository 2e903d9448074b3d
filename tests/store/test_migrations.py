"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

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
