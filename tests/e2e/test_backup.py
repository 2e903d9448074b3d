"""Backup of a live server during a stream of check-ins, restored and served again."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from helpers import HDF5, PASSWORD, fresh_postgres_database

from e2e.server import Launcher, checkin, git, git_fsck, isolated_git_env, run_cli, upload

PG_URL = os.environ.get("CAMVAULT_TEST_DATABASE_URL")
NAMES = ["1234501_A.mcam", "1234502_A.mcam", "fixture.vnc", "7654321.nc"]


def content_for(name: str, round_: int) -> bytes:
    body = os.urandom(20_000 + round_ * 97)
    if name.endswith(".mcam"):
        return HDF5 + body
    if name.endswith(".nc"):
        return f"%\nO{round_:04d}\nG0 X{round_}\nM30\n%\n".encode()
    return body


class CheckIns:
    """Checks files out and in from a thread, recording each acknowledged version."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.acked: dict[tuple[str, int], str] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.more = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _ack(self, name: str, version: int, content: bytes) -> None:
        with self.more:
            self.acked[(name, version)] = hashlib.sha256(content).hexdigest()
            self.more.notify_all()

    def _run(self) -> None:
        client = self.client
        try:
            for name in NAMES:
                content = content_for(name, 0)
                response = upload(client, name, content, message=f"add {name}")
                assert response.status_code == 201, response.text
                self._ack(name, 1, content)
            round_ = 0
            while not self.stop.is_set():
                round_ += 1
                name = NAMES[round_ % len(NAMES)]
                taken = client.post(f"/api/files/{name}/checkout", json={})
                assert taken.status_code == 200, taken.text
                content = content_for(name, round_)
                response = checkin(client, name, content, message=f"round {round_}")
                assert response.status_code == 200, response.text
                self._ack(name, response.json()["version"], content)
        except BaseException as exc:  # reported by the test, never lost in the thread
            self.errors.append(repr(exc))
            with self.more:
                self.more.notify_all()

    def snapshot(self) -> dict[tuple[str, int], str]:
        with self.more:
            return dict(self.acked)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        with self.more:
            ok = self.more.wait_for(lambda: len(self.acked) >= count or self.errors, timeout)
        assert ok and not self.errors, self.errors or "check-ins too slow"


@contextmanager
def restore_target() -> Iterator[str | None]:
    """SQLite in the new data dir, or (testing PostgreSQL) another fresh database."""
    if PG_URL is None:
        yield None
        return
    with fresh_postgres_database(PG_URL) as url:
        yield url


def with_url(args: list[str], url: str | None) -> list[str]:
    return args if url is None else [*args, "--database-url", url]


@pytest.mark.slow
def test_a_backup_taken_during_check_ins_restores_every_acknowledged_version(
    launch: Launcher, tmp_path: Path, server_database_url: str | None
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    with server.client(server.login("admin", PASSWORD)) as client:
        writes = CheckIns(client)
        writes.thread.start()
        try:
            writes.wait_for(10)
            before = writes.snapshot()
            backup = tmp_path / "backup"
            made = run_cli(
                *with_url(["backup", str(backup), "--data", str(data)], server_database_url)
            )
            during = writes.snapshot()
            writes.wait_for(len(during) + 3)
        finally:
            writes.stop.set()
            writes.thread.join(timeout=60)
    assert not writes.errors, writes.errors
    assert made.returncode == 0, made.stdout + made.stderr
    assert "backup written to" in made.stdout and " in " in made.stdout, made.stdout
    acked = writes.snapshot()

    restored = tmp_path / "restored"
    with restore_target() as target_url:
        done = run_cli(*with_url(["restore", str(backup), "--data", str(restored)], target_url))
        assert done.returncode == 0, done.stdout + done.stderr
        again = launch.start(restored, admin_password=None, database_url=target_url)
        seen: dict[tuple[str, int], str] = {}
        with again.client(again.login("admin", PASSWORD)) as client:
            for name in NAMES:
                for entry in client.get(f"/api/files/{name}/versions").json():
                    response = client.get(
                        f"/api/files/{name}/content", params={"version": entry["version"]}
                    )
                    assert response.status_code == 200, response.text
                    seen[(name, entry["version"])] = hashlib.sha256(response.content).hexdigest()
        again.stop()

    missing = sorted(key for key in before if key not in seen)
    assert not missing, f"acknowledged before the backup but not restored: {missing}"
    for key, sha256 in seen.items():
        assert sha256 == acked.get(key), f"{key}: restored bytes differ from what was sent"
    for key, sha256 in before.items():
        assert seen[key] == sha256

    # A damaged backup: a clear one-line error, exit 1, nothing written.
    dump = backup / "database.jsonl.gz"
    spoiled = bytearray(dump.read_bytes())
    spoiled[-1] ^= 0x01
    dump.write_bytes(bytes(spoiled))
    refused = run_cli("restore", str(backup), "--data", str(tmp_path / "again"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "error: the backup is damaged: database.jsonl.gz" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "again").exists()

    env = isolated_git_env(tmp_path / "home")
    git("lfs", "install", "--skip-repo", env=env)
    git_fsck(restored / "vault.git", env)
    git("-C", str(restored / "vault.git"), "lfs", "fsck", env=env)
