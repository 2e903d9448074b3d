"""The command line: first start prints the admin password once; user management works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from camvault.store.db import null_pool_engine
from e2e.server import Launcher, free_port, run_cli

CREATED = re.compile(r"^Created user 'admin' with password: (\S+)$", re.MULTILINE)


@pytest.mark.slow
def test_first_start_prints_the_admin_password_once(launch: Launcher, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = launch.start(data, admin_password=None)
    printed = CREATED.findall(first.stdout())
    assert len(printed) == 1, first.logs()
    (password,) = printed
    first.login("admin", password)
    first.stop()

    second = launch.start(data, admin_password=None)
    assert "Created user" not in second.stdout()
    second.login("admin", password)
    second.stop()

    for server in (first, second):
        assert "INFO" in server.stderr(), "the server logs to stderr"
        assert password not in server.stderr(), "the password must never reach the logs"


@pytest.mark.slow
def test_cli_user_add_list_passwd(launch: Launcher, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = run_cli(
        "user",
        "add",
        "bob",
        "--role",
        "user",
        "--password-stdin",
        "--data",
        data,
        stdin="old-password-1\n",
    )
    assert added.returncode == 0, added.stderr
    assert "old-password-1" not in added.stdout + added.stderr

    listed = run_cli("user", "list", "--data", data)
    assert listed.returncode == 0, listed.stderr
    assert "bob\tuser\tactive" in listed.stdout.splitlines()

    changed = run_cli(
        "user", "passwd", "bob", "--password-stdin", "--data", data, stdin="new-password-2\n"
    )
    assert changed.returncode == 0, changed.stderr

    server = launch.start(Path(data), admin_password=None)
    with server.client() as anon:
        old = anon.post("/api/auth/login", json={"username": "bob", "password": "old-password-1"})
        assert old.status_code == 401, old.text
        new = anon.post("/api/auth/login", json={"username": "bob", "password": "new-password-2"})
        assert new.status_code == 200, new.text
        assert new.json()["user"] == {"username": "bob", "role": "user"}


@pytest.mark.slow
def test_serve_and_commands_refuse_a_database_migrated_by_a_newer_camvault(
    tmp_path: Path, server_database_url: str | None
) -> None:
    """What an old instance does when restarted during an upgrade: a clear error, exit 1."""
    data = str(tmp_path / "data")
    db = ["--database-url", server_database_url] if server_database_url else []
    assert run_cli("user", "list", "--data", data, *db).returncode == 0  # creates and migrates
    if server_database_url:
        url = make_url(server_database_url).set(drivername="postgresql+psycopg")
        engine = null_pool_engine(url.render_as_string(hide_password=False))
    else:
        engine = null_pool_engine(f"sqlite:///{data}/camvault.db")
    with engine.connect() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe9999'"))
    engine.dispose()
    for command in (["user", "list"], ["serve", "--port", str(free_port())]):
        done = run_cli(*command, "--data", data, *db)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "error: the database schema (revision f00dcafe9999) was migrated by a newer" in (
            done.stderr
        ), done.stderr
        assert "Traceback" not in done.stderr
        assert "listening" not in done.stdout
