"""Only real outages map to 503/507: a SQL mistake or a constraint stays a 500 bug. Checked
on errors raised by the real databases, not constructed by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from camvault.store.db import Database
from camvault.store.failures import Failure, database_failure, describe


def error_of(url: str, *statements: str) -> SQLAlchemyError:
    engine = create_engine(url, connect_args={"timeout": 0.1} if url.startswith("sqlite") else {})
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statements} did not fail")


def test_sqlite_mistakes_stay_bugs_and_a_held_lock_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert database_failure(error_of(url, "SELECT * FROM missing")) is None
    assert database_failure(error_of(url, "SELEKT 1")) is None
    constraint = error_of(
        url,
        "CREATE TABLE t (x INTEGER UNIQUE)",
        "INSERT INTO t VALUES (1)",
        "INSERT INTO t VALUES (1)",
    )
    assert database_failure(constraint) is None

    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        locked = error_of(url, "INSERT INTO t VALUES (2)")
    finally:
        holder.rollback()
        holder.close()
    assert database_failure(locked) is Failure.UNAVAILABLE
    assert describe(locked, url) == "OperationalError: database is locked"


@pytest.mark.postgresql
def test_postgresql_mistakes_stay_bugs_and_a_refused_connection_is_unavailable(
    postgres_url: str,
) -> None:
    assert database_failure(error_of(postgres_url, "SELECT * FROM missing")) is None
    assert database_failure(error_of(postgres_url, "SELECT 1/0")) is None
    # Port 1 on localhost: nothing listens there, the connection is refused at once.
    url = make_url(postgres_url).set(port=1, password="s3cret-pw").render_as_string(False)
    gone = error_of(url, "SELECT 1")
    assert database_failure(gone) is Failure.UNAVAILABLE
    assert "s3cret-pw" not in describe(gone, url)


def test_a_logged_database_failure_shows_neither_the_password_nor_the_sql() -> None:
    url = "postgresql://camvault:s3cret-pw@db.example/camvault"
    # A driver message may quote the connection string; the SQL and its parameters are on
    # the SQLAlchemy error around it.
    orig = psycopg.OperationalError("connection failed: password=s3cret-pw was refused")
    text = describe(OperationalError("SELECT 1 WHERE :t", {"t": "t0ken"}, orig), url)
    assert text == "OperationalError: connection failed: password=*** was refused"


def test_an_unexpected_database_error_never_quotes_its_parameters(tmp_path: Path) -> None:
    """Unclassified errors reach the log with their traceback: the engine hides parameters."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with pytest.raises(SQLAlchemyError) as raised, db.engine.connect() as conn:
            conn.execute(text("SELECT * FROM missing WHERE x = :p"), {"p": "token-hash-123"})
    finally:
        db.engine.dispose()
    assert "missing" in str(raised.value)
    assert "token-hash-123" not in str(raised.value)
