"""A database COMMIT that fails after git's main moved takes the git change back.

On SQLite a full disk tends to show first at COMMIT (WAL pages are written then); on
PostgreSQL a statement timeout or serialization failure can end a transaction with the
connection still fine. Either way the client is told nothing was saved, so the version
must never turn up later through the next write's catch-up. The failure is raised from
SQLAlchemy's ``commit`` event, just before the driver's COMMIT, once.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from helpers import Vault, checkin, mcam, upload
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

pytestmark = pytest.mark.anyio

NAME = "1234567_A1.mcam"


def commit_failure(is_sqlite: bool) -> OperationalError:
    orig: Exception
    if is_sqlite:
        orig = sqlite3.OperationalError("database or disk is full")
        orig.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    else:
        orig = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    return OperationalError("COMMIT", {}, orig)


async def test_a_failed_commit_moves_main_back_and_the_version_never_appears(
    vault: Vault,
) -> None:
    db = vault.camvault.db
    admin = await vault.login("admin")
    assert (await upload(admin, NAME, mcam(b"v1"))).status_code == 201
    assert (await admin.post(f"/api/files/{NAME}/checkout", json={})).status_code == 200
    head = vault.camvault.vault.repo.head
    armed = [commit_failure(db.is_sqlite)]

    def fail_once(conn: Any) -> None:
        if armed and conn.get_execution_options().get("camvault_write"):
            raise armed.pop()

    event.listen(db.engine, "commit", fail_once)
    try:
        failed = await checkin(admin, NAME, mcam(b"v2"))
    finally:
        event.remove(db.engine, "commit", fail_once)
    expected = (507, "insufficient_storage") if db.is_sqlite else (503, "unavailable")
    assert (failed.status_code, failed.json()["error"]["code"]) == expected
    assert "nothing" in failed.json()["error"]["message"]
    assert vault.camvault.vault.repo.head == head  # main moved back

    # The next write's catch-up finds nothing to record: still version 1, still locked.
    assert (await upload(admin, "7654321_A1.mcam", mcam(b"other"))).status_code == 201
    record = (await admin.get(f"/api/files/{NAME}")).json()
    assert record["version"] == 1
    assert record["lock"]["user"] == "admin"
    versions = (await admin.get(f"/api/files/{NAME}/versions")).json()
    assert [v["version"] for v in versions] == [1]

    # And the same check-in, sent again, succeeds.
    again = await checkin(admin, NAME, mcam(b"v2"))
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
