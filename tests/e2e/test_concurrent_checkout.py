"""Invariant 2 against the real server: concurrent checkouts leave exactly one lock holder."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from helpers import HDF5, PASSWORD

from e2e.server import Launcher, run_cli, upload

NAME = "1234567_A1.mcam"
REQUESTS = 50


@pytest.mark.slow
def test_concurrent_checkouts_across_two_users_give_one_holder(
    launch: Launcher, server_database_url: str | None, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    cli_db = ["--database-url", server_database_url] if server_database_url else []
    for user in ("alice", "bob"):
        added = run_cli(
            "user",
            "add",
            user,
            "--password-stdin",
            "--data",
            str(data),
            *cli_db,
            stdin="alice-and-bob-pw\n",
        )
        assert added.returncode == 0, added.stderr
    tokens = {user: server.login(user, "alice-and-bob-pw") for user in ("alice", "bob")}
    with server.client(tokens["alice"]) as alice:
        assert upload(alice, NAME, HDF5 + b"part").status_code == 201

    start = threading.Barrier(REQUESTS, timeout=30)
    results: list[tuple[str, int, str]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def take(user: str) -> None:
        try:
            # One connection per request, opened before the barrier: all arrive together.
            with server.client(tokens[user]) as client:
                assert client.get("/api/health").status_code == 200
                start.wait()
                response = client.post(f"/api/files/{NAME}/checkout", json={"message": user})
            code = response.json()["error"]["code"] if response.status_code != 200 else ""
            with guard:
                results.append((user, response.status_code, code))
        except (AssertionError, httpx.HTTPError, threading.BrokenBarrierError) as exc:
            with guard:
                errors.append(exc)

    threads = [
        threading.Thread(target=take, args=("alice" if i % 2 else "bob",)) for i in range(REQUESTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a checkout request hung"
    assert not errors, errors
    assert len(results) == REQUESTS

    winners = {user for user, status, _code in results if status == 200}
    assert len(winners) == 1, f"lock given to {winners}"
    (winner,) = winners
    for user, status, code in results:
        if user == winner:
            assert status == 200, "the holder's repeated checkouts are idempotent"
        else:
            assert (status, code) == (409, "locked")

    with server.client(tokens["alice"]) as alice:
        record = alice.get(f"/api/files/{NAME}").json()
        assert record["lock"]["user"] == winner
        assert record["version"] == 1
        # The loser cannot check in; the holder's lock is untouched by the storm.
        loser = "bob" if winner == "alice" else "alice"
    with server.client(tokens[loser]) as client:
        refused = client.post(
            f"/api/files/{NAME}/checkin",
            files={"file": (NAME, HDF5 + b"loser", "application/octet-stream")},
            data={"message": "should not land"},
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_lock_holder")
