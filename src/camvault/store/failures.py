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

from camvault.errors import CamvaultError

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# git and libgit2 report a full disk only in their message text (strerror, C locale).
_DISK_FULL_TEXTS = tuple(os.strerror(code) for code in sorted(_DISK_FULL_ERRNOS))
# SQLite's primary result codes that mean "another writer, try again" or "cannot reach it".
_SQLITE_UNAVAILABLE = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN}
)
_PG_DISK_FULL = "53100"
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
        primary = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
        if primary == sqlite3.SQLITE_FULL:
            return Failure.FULL
        return Failure.UNAVAILABLE if primary in _SQLITE_UNAVAILABLE else None
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return Failure.FULL
    # psycopg raises OperationalError for a refused, dropped or terminated connection, and
    # InterfaceError for one already closed; SQL mistakes are ProgrammingError and friends.
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return Failure.UNAVAILABLE
    return None


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
        # libgit2 raises OSErrors without an errno: its message is all there is.
        if isinstance(current, CamvaultError | pygit2.GitError | OSError) and any(
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
