"""Engine creation, migrations, and the two kinds of transaction the services use.

``read()`` is a consistent snapshot. ``write()`` is an exclusive write transaction: on SQLite
``BEGIN IMMEDIATE`` (the database's own write lock, shared by every process on the file), on
PostgreSQL a transaction-scoped advisory lock taken first. Every mutation of the vault runs
inside ``write()``, so events get their ``seq`` in commit order and two camvault processes on
one database never interleave a change.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import RootTransaction
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from camvault.errors import SchemaTooNew
from camvault.store.failures import mark_outcome_unknown

log = logging.getLogger("camvault.db")
_UNDO = "camvault_undo"
_PUBLISHED = "camvault_published"
_ORIGIN = "camvault_origin"
# Arbitrary constant naming camvault's writer lock among PostgreSQL advisory locks.
WRITER_LOCK_KEY = 0x63616D76  # "camv"
MIGRATION_LOCK_KEY = WRITER_LOCK_KEY + 1
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass(frozen=True, slots=True)
class Done:
    """A step of ``Database.write_each`` that committed, with what it returned."""

    value: Any


@dataclass(frozen=True, slots=True)
class Failed:
    """A step of ``Database.write_each`` that did not happen, with why."""

    error: Exception


Outcome = Done | Failed


class _NothingToCommit(Exception):
    """Every step failed: roll back rather than commit an empty transaction."""


class Database:
    """A SQLAlchemy engine plus camvault's transaction discipline."""

    def __init__(
        self, url: str, *, sqlite_synchronous: str = "FULL", sqlite_busy_timeout: float = 60.0
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout},
                # As many as the worker threads (40): an overflow connection would be opened
                # (with its PRAGMAs) and closed again for every request under load.
                pool_size=40,
                max_overflow=10,
                # Errors and their tracebacks never quote SQL parameters (password and
                # token hashes, tokens' ciphertext) into a log.
                hide_parameters=True,
            )
            _configure_sqlite(self.engine, sqlite_synchronous, sqlite_busy_timeout)
        else:
            self.engine = create_engine(
                url,
                pool_size=10,
                max_overflow=30,
                pool_pre_ping=True,
                # A database that went away fails a request in seconds, never hangs it.
                connect_args={"connect_timeout": 5},
                hide_parameters=True,
            )
        # Names this process's writes among those of other instances on the same database.
        self.origin = secrets.token_hex(4)
        # Called (in the writing thread) after every committed write with what the write
        # published (``publish``): the live hub's wake-up.
        self.on_commit: list[Callable[[Sequence[object]], None]] = []

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot of the database."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """An exclusive write transaction, serialized across threads and processes."""
        options: dict[str, Any] = {"camvault_write": True}
        with self.engine.connect().execution_options(**options) as conn:
            undo: list[Callable[[], None]] = []
            conn.info[_UNDO] = undo
            # conn.info belongs to the pooled DBAPI connection: set anew for every write.
            published: list[object] = []
            conn.info[_PUBLISHED] = published
            conn.info[_ORIGIN] = self.origin
            try:
                transaction = conn.begin()
                try:
                    if not self.is_sqlite:
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITER_LOCK_KEY}
                        )
                    yield conn
                    # Inside the try: a COMMIT that fails (on SQLite a full disk shows up
                    # there first) takes back git's change like any other failure.
                    transaction.commit()
                except BaseException as exc:
                    # Before the rollback, so (unless COMMIT itself failed) still under the
                    # write lock: nobody else can have built on what is undone.
                    self._undo(conn, undo, exc)
                    _rollback_quietly(transaction)
                    raise
            finally:
                conn.info.pop(_UNDO, None)
                conn.info.pop(_PUBLISHED, None)
                conn.info.pop(_ORIGIN, None)
            for hook in self.on_commit:
                # The write is committed: a wake-up that fails (a loop closing at shutdown)
                # must not make it look failed to its caller. The hub's poll still finds it.
                try:
                    hook(published)
                except Exception:
                    log.exception("a hook after a committed write failed")

    def write_each(self, steps: Sequence[Callable[[Connection], Any]]) -> list[Outcome]:
        """Run ``steps`` in one write transaction, each in a savepoint of its own: a step
        that raises is undone alone and the others commit together, with one COMMIT (one
        fsync) for all of them. Returns each step's result or exception, in order; if the
        transaction itself fails (BEGIN, COMMIT, a lost connection, an error after which
        the database ended the whole transaction, as SQLite does on a full disk), every
        step that had not failed on its own gets that error, since none of them happened.

        Only for steps that change nothing but the database: a savepoint cannot take back
        a git change (``on_rollback``), so a step that registers one fails the whole batch.
        """
        single = len(steps) == 1  # no savepoint needed: its failure is the transaction's
        outcomes: list[Outcome] = []
        try:
            with self.write() as conn:
                undo: list[Callable[[], None]] = conn.info[_UNDO]
                published: list[object] = conn.info[_PUBLISHED]
                for step in steps:
                    if single:
                        outcomes.append(Done(step(conn)))
                    else:
                        self._run_step(conn, step, published, outcomes)
                    if undo:  # a programming error: fail them all, and undo git with them
                        raise RuntimeError("a step of write_each must not change git")
                if not any(isinstance(o, Done) for o in outcomes):
                    raise _NothingToCommit
                self._require_transaction(conn)
        except _NothingToCommit:
            pass
        except Exception as exc:
            done = len(outcomes)
            outcomes = [o if isinstance(o, Failed) else Failed(exc) for o in outcomes]
            outcomes += [Failed(exc)] * (len(steps) - done)
        return outcomes

    def _run_step(
        self,
        conn: Connection,
        step: Callable[[Connection], Any],
        published: list[object],
        outcomes: list[Outcome],
    ) -> None:
        kept = len(published)
        raised: Exception | None = None
        try:
            with conn.begin_nested():
                try:
                    result = step(conn)
                except Exception as exc:
                    raised = exc
                    raise
        except Exception as exc:
            # The step's own error, not a failed ROLLBACK TO that followed it.
            failure = raised or exc
            del published[kept:]  # rolled back with its savepoint
            outcomes.append(Failed(failure))
            # Some errors end the whole transaction, not just the statement (SQLite: a
            # full disk, an I/O error). The next SAVEPOINT would then begin a transaction
            # of its own and its RELEASE commit it: the steps before would be lost yet
            # reported done. So the batch fails here, all of it.
            self._require_transaction(conn, failure)
        else:
            outcomes.append(Done(result))

    def _require_transaction(self, conn: Connection, cause: Exception | None = None) -> None:
        """Raise unless the write transaction of ``conn`` is still open and usable."""
        dbapi = conn.connection.dbapi_connection
        if self.is_sqlite:
            intact = bool(getattr(dbapi, "in_transaction", False))
        else:
            status = getattr(getattr(dbapi, "info", None), "transaction_status", None)
            intact = status == psycopg.pq.TransactionStatus.INTRANS
        if not intact:
            raise cause or RuntimeError("the write transaction ended before its COMMIT")

    @staticmethod
    def publish(conn: Connection, item: object) -> None:
        """Hand ``item`` to the ``on_commit`` hooks if, and once, the write transaction of
        ``conn`` commits: the event rows it appended, so the hub need not read them back.
        Outside ``write`` (a restore's own transaction) there are no hooks: nothing to do."""
        published: list[object] | None = conn.info.get(_PUBLISHED)
        if published is not None:
            published.append(item)

    @staticmethod
    def origin_of(conn: Connection) -> str | None:
        """The ``origin`` of the Database whose ``write`` ``conn`` is in (None outside)."""
        origin: str | None = conn.info.get(_ORIGIN)
        return origin

    @staticmethod
    def on_rollback(conn: Connection, undo: Callable[[], None]) -> None:
        """Call ``undo`` if the write transaction of ``conn`` fails before its commit: it
        takes back a change made outside the database (git's main moved) in step with it."""
        conn.info[_UNDO].append(undo)

    def _undo(self, conn: Connection, undo: list[Callable[[], None]], exc: BaseException) -> None:
        if not undo:
            return
        lost = conn.invalidated or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
        if lost and not self.is_sqlite:
            # The connection is gone, and with it maybe the advisory lock: another instance
            # may already have recorded our commit, or COMMIT may have gone through. Leave
            # it (catch_up keeps git and the database in step) and tell the client so.
            log.warning("write failed with the database connection lost; its git commit stays")
            mark_outcome_unknown(exc)
            return
        for step in reversed(undo):
            try:
                step()
            except Exception as failure:
                # The original failure still propagates; this one is the operator's to see.
                # What stays in git is recorded by the next write's catch_up.
                log.exception("could not take back a failed write's change to git")
                exc.add_note(f"and its git change could not be taken back: {failure}")
                mark_outcome_unknown(exc)
                return

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe with many instances)."""
        # A throwaway engine: migrations hold a session-level lock and leave nothing pooled.
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                if not self.is_sqlite:
                    # Two instances starting together must not both run the migrations.
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                    conn.commit()
                try:
                    config = alembic_config()
                    refuse_newer_schema(conn, config)
                    conn.commit()  # alembic runs the upgrade in a transaction of its own
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    conn.commit()
                finally:
                    if not self.is_sqlite:
                        conn.execute(
                            text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY}
                        )
                        conn.commit()
        finally:
            engine.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


def refuse_newer_schema(conn: Connection, config: Config) -> None:
    """Raise SchemaTooNew if the database names a revision this code does not have.

    During an upgrade of several instances an old one restarted against the migrated
    database must stop with a clear message, not with Alembic's traceback.
    """
    script = ScriptDirectory.from_config(config)
    for revision in MigrationContext.configure(conn).get_current_heads():
        try:
            known = script.get_revision(revision)
        except CommandError:
            known = None
        if known is None:
            raise SchemaTooNew(
                f"the database schema (revision {revision}) was migrated by a newer camvault "
                f"than this one (revision {script.get_current_head()}): upgrade camvault"
            )


def alembic_config() -> Config:
    """Alembic configuration pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _configure_sqlite(engine: Engine, synchronous: str, busy_timeout: float) -> None:
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"invalid sqlite synchronous mode: {synchronous}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Past this wait for another writer, "database is locked": a 503 the client retries.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock on a read->write upgrade.
        immediate = conn.get_execution_options().get("camvault_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def null_pool_engine(url: str) -> Engine:
    """A throwaway engine for one-off admin work (creating or dropping a database)."""
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _rollback_quietly(transaction: RootTransaction) -> None:
    """Roll back after a failure without hiding it: on a lost connection the rollback
    fails too, and the error worth reporting is the first one."""
    try:
        # Also after a failed COMMIT (no longer "active"): the driver may still be inside
        # the transaction (SQLite after SQLITE_BUSY), and the pool must get it back clean.
        transaction.rollback()
    except SQLAlchemyError as exc:
        log.warning("rollback after a failed write also failed: %s", type(exc).__name__)
