"""Which infrastructure failures a client may simply retry, and how to log them safely.

The database busy or unreachable for a moment is ``UNAVAILABLE`` (503, Retry-After); a full
disk, ours or the database's, is ``FULL`` (507). Anything else, such as a SQL error or a
constraint violation, is a bug and stays a 500: only the failures named here are mapped.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from enum import StrEnum

import pygit2
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from camvault.errors import GitProgramFailed

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# git and libgit2 report a full disk only in their message text (strerror, C locale).
_DISK_FULL_TEXTS = tuple(os.strerror(code) for code in sorted(_DISK_FULL_ERRNOS))
_PG_DISK_FULL = "53100"
# PostgreSQL errors a retry can get past, besides class 08 (connection exceptions): the
# server shutting down or starting (57P01-57P03), out of connections (53300), a
# serialization failure or deadlock (40001, 40P01), a lock or statement timeout (55P03,
# 57014), and a read-only standby after a failover (25006). Everything else is a bug or
# needs an operator (corruption, permissions) and stays a 500.
_PG_UNAVAILABLE = frozenset(
    {"57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03", "57014", "25006"}
)
_OUTCOME_UNKNOWN = "camvault_outcome_unknown"
RETRY_AFTER_SECONDS = 5


class Failure(StrEnum):
    UNAVAILABLE = "unavailable"
    FULL = "full"


def database_failure(exc: BaseException) -> Failure | None:
    """Classify a SQLAlchemy error: the database busy or gone, full, or None (a bug)."""
    if isinstance(exc, PoolTimeout):
        return Failure.UNAVAILABLE  # every pooled connection busy for the pool's timeout
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        # In SQLite an OperationalError is also "no such table": only these codes qualify.
        # BUSY is another writer holding the lock past the busy timeout; a file that cannot
        # be opened or a same-connection LOCKED needs an operator, not a retry.
        primary = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        if primary == sqlite3.SQLITE_FULL:
            return Failure.FULL
        return Failure.UNAVAILABLE if primary == sqlite3.SQLITE_BUSY else None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == _PG_DISK_FULL:
        return Failure.FULL
    if exc.connection_invalidated:
        return Failure.UNAVAILABLE
    if sqlstate is None:
        # psycopg's own errors carry no SQLSTATE: a refused, dropped or closed connection
        # (OperationalError, InterfaceError).
        return Failure.UNAVAILABLE if isinstance(exc, OperationalError | InterfaceError) else None
    if sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE:
        return Failure.UNAVAILABLE
    return None


def mark_outcome_unknown(exc: BaseException) -> None:
    """Note on ``exc`` that its write may have been saved after all (the connection was
    lost after git's main moved): the client must not be told "nothing was changed"."""
    setattr(exc, _OUTCOME_UNKNOWN, True)


def outcome_unknown(exc: BaseException) -> bool:
    return bool(getattr(exc, _OUTCOME_UNKNOWN, False))


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if isinstance(current, SQLAlchemyError) and database_failure(current) is Failure.FULL:
            return True
        # libgit2 raises OSErrors without an errno, and the git program says it on stderr:
        # their text is all there is. Never our own messages: they may quote a file's name.
        if isinstance(current, GitProgramFailed | pygit2.GitError | OSError) and any(
            text in str(current) for text in _DISK_FULL_TEXTS
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException, database_url: str) -> str:
    """One log line for a database failure: the driver's error, never the SQL, its
    parameters or the URL's password (a connection error may quote the URL)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    sqlstate = getattr(orig, "sqlstate", None)
    text = f"{type(orig).__name__}{f' [{sqlstate}]' if sqlstate else ''}: {first_line}"
    password = make_url(database_url).password
    if password:
        text = text.replace(str(password), "***")
    return text
