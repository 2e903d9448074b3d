"""A git write failing mid check-in. For real, part of the repository read-only through a
read-only bind mount (root ignores file modes, not a read-only mount); through the fault
hook, a failure right after the commit object is written (main never moves), after main
moved, and after the database rows are written but before they commit.

Each answers 500 ``storage_error`` (an operator must fix the storage; retrying does not
help until then), keeps the holder's lock, adds no version (main is moved back when the
database transaction fails after it moved), leaves git and the database agreeing, and the
next check-in works.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pytest
from e2e.server import Launcher, Server, checkin, isolated_git_env, upload

from faults.state import check_vault, mcam

pytestmark = pytest.mark.slow

PASSWORD = "git-fails-test-password"
NAME = "1234567_A1.mcam"
STORAGE_ERROR = {
    "error": {
        "code": "storage_error",
        "message": "the vault could not store this change; nothing was saved",
    }
}


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for everyone, root included, until the block ends."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fails_then_recovers(
    server: Server, tmp_path: Path, failing: AbstractContextManager[None], expect_log: str
) -> None:
    token = server.login("admin", PASSWORD)
    v1, v2 = mcam(1), mcam(2)
    with server.client(token) as api:
        assert upload(api, NAME, v1).status_code == 201
        assert api.post(f"/api/files/{NAME}/checkout", json={}).status_code == 200
        with failing:
            failed = checkin(api, NAME, v2, message="fails")
    assert failed.status_code == 500, failed.text
    assert failed.json() == STORAGE_ERROR
    assert expect_log in server.stderr(), server.stderr()[-3000:]
    git_env = isolated_git_env(tmp_path / "home")
    check_vault(server, token, git_env, {NAME: [v1]}, {NAME: "admin"})

    with server.client(token) as api:
        again = checkin(api, NAME, v2, message="storage fixed")
        assert again.status_code == 200, again.text
        assert again.json()["version"] == 2
    check_vault(server, token, git_env, {NAME: [v1, v2]}, {NAME: None})


@pytest.mark.parametrize(
    ("where", "expect_log"),
    [
        # libgit2 cannot write the pointer blob, tree and commit objects.
        ("objects", "cannot build the tree for 1234567_A1.mcam"),
        # The stale-lock check before every commit cannot touch refs/heads (so this case
        # fails before git writes anything; the git steps after it are the fail: faults).
        ("refs/heads", "cannot clear a stale lock on refs/heads/main"),
    ],
)
def test_a_read_only_part_of_the_repository_fails_the_check_in_cleanly(
    launch: Launcher, tmp_path: Path, where: str, expect_log: str
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD)
    fails_then_recovers(server, tmp_path, read_only(data / "vault.git" / where), expect_log)
    assert "Read-only file system" in server.stderr()


@pytest.mark.parametrize(
    "step", ["checkin.commit_written", "checkin.main_moved", "checkin.db_written"]
)
def test_a_check_in_failing_at_a_git_step_changes_nothing(
    launch: Launcher, tmp_path: Path, step: str, server_database_url: str | None
) -> None:
    server = launch.start(
        tmp_path / "data",
        admin_password=PASSWORD,
        env={"CAMVAULT_FAULT": f"fail:{step}"},
        database_url=server_database_url,
    )
    assert "FAULT INJECTION ENABLED: fail at " + step in server.stderr()
    fails_then_recovers(server, tmp_path, nullcontext(), f"fault injected at {step}")
