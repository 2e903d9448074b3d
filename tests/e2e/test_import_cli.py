"""The real ``camvault import`` and ``camvault rebuild`` next to a running ``camvault serve``:
the server keeps working, and its WebSocket clients see what the other process changed."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import anyio
import pytest
from anyio import to_thread
from git_source import build_source
from helpers import HDF5, PASSWORD

from e2e.live import LiveClient
from e2e.server import (
    Launcher,
    Server,
    camvault_command,
    checkin,
    clean_env,
    git_fsck,
    isolated_git_env,
    run_cli,
    upload,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def db_args(database_url: str | None) -> list[str]:
    return [] if database_url is None else ["--database-url", database_url]


def files_of(server: Server, token: str) -> dict[str, dict[str, object]]:
    with server.client(token) as http:
        groups = http.get("/api/files").json()["groups"]
    return {r["filename"]: r for group in groups.values() for r in group}


async def test_import_with_the_server_running_reaches_its_live_clients(
    launch: Launcher, tmp_path: Path, server_database_url: str | None
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    token = server.login("admin", PASSWORD)
    tree = tmp_path / "share"
    (tree / "2023").mkdir(parents=True)
    contents = {
        "1234567_A1.mcam": HDF5 + os.urandom(300_000),
        "7654321.nc": b"G0 X0\nM30\n",
        "fixture.vnc": os.urandom(20_000),
    }
    (tree / "1234567_A1.mcam").write_bytes(contents["1234567_A1.mcam"])
    (tree / "2023" / "7654321.nc").write_bytes(contents["7654321.nc"])
    (tree / "2023" / "fixture.vnc").write_bytes(contents["fixture.vnc"])
    (tree / "2023" / "readme.txt").write_bytes(b"not a CAM file")

    live = await LiveClient(server.base_url, token).connect()
    try:
        await live.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")
        args = ["import", str(tree), "--data", str(data), *db_args(server_database_url)]
        done = await to_thread.run_sync(lambda: run_cli(*args))
        assert done.returncode == 1, "a refused file makes the exit status non-zero"
        assert "refused: 2023/readme.txt: files of type .txt are not allowed" in done.stdout
        assert "imported: 3 files" in done.stdout, done.stdout
        assert "files" in done.stderr and "ETA" in done.stderr, "the progress bar: stderr"
        for name in contents:
            await live.wait_for(
                lambda f, n=name: (
                    f["type"] == "FILE_UPDATED" and f["payload"]["file"]["filename"] == n
                ),
                timeout=10,
            )
    finally:
        await live.close()

    listed = files_of(server, token)
    assert sorted(listed) == sorted(contents)
    with server.client(token) as http:
        for name, content in contents.items():
            assert http.get(f"/api/files/{name}/content").content == content
        # The server builds on the other process's commits.
        response = upload(http, "1111111.nc", b"G1\n")
        assert response.status_code == 201, response.text

    again = await to_thread.run_sync(
        lambda: run_cli("import", str(tree / "2023" / "7654321.nc"), "--data", str(data),
                        *db_args(server_database_url))
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped, already in the vault: 1" in again.stdout


async def test_rebuild_with_the_server_running_keeps_locks_and_writes_going(
    launch: Launcher, tmp_path: Path, server_database_url: str | None
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    token = server.login("admin", PASSWORD)
    with server.client(token) as http:
        assert upload(http, "1234567.mcam", HDF5 + b"v1").status_code == 201
        assert http.post("/api/files/1234567.mcam/checkout", json={"message": "x"}).is_success
        assert checkin(http, "1234567.mcam", HDF5 + b"v2", message="two", keep_locked=True)
    before = files_of(server, token)

    done = await to_thread.run_sync(
        lambda: run_cli("rebuild", "--data", str(data), *db_args(server_database_url))
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 files, 2 versions" in done.stdout and "locks kept: 1" in done.stdout

    assert files_of(server, token) == before
    with server.client(token) as http:
        response = checkin(http, "1234567.mcam", HDF5 + b"v3", message="three")
        assert response.status_code == 200, response.text
        versions = http.get("/api/files/1234567.mcam/versions").json()
    assert [v["version"] for v in versions] == [3, 2, 1]


async def test_import_from_git_on_the_command_line(
    launch: Launcher, tmp_path: Path, server_database_url: str | None
) -> None:
    source = build_source(tmp_path / "source", tmp_path / "home")
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    args = ["import", "--from-git", f"file://{source.path}", "--data", str(data)]
    done = await to_thread.run_sync(lambda: run_cli(*args, *db_args(server_database_url)))
    assert done.returncode == 1, done.stdout + done.stderr
    for refused in source.refused:
        assert f"refused: {refused}:" in done.stdout
    assert "deleted: 9999999.nc" in done.stdout

    token = server.login("admin", PASSWORD)
    with server.client(token) as http:
        for name in ("1234567_A1.mcam", "7654321.nc"):
            expected = source.expected[name]
            versions = http.get(f"/api/files/{name}/versions").json()[::-1]
            assert [(v["author"], v["message"]) for v in versions] == [
                (e.author, e.message) for e in expected
            ]
            for v, e in zip(versions, expected, strict=True):
                got = http.get(f"/api/files/{name}/content?version={v['version']}")
                assert got.content == e.content


def test_import_needs_exactly_one_source(tmp_path: Path) -> None:
    neither = run_cli("import", "--data", str(tmp_path / "data"))
    assert neither.returncode == 1 and "give either a PATH" in neither.stderr
    both = run_cli("import", str(tmp_path), "--from-git", "x", "--data", str(tmp_path / "d"))
    assert both.returncode == 1


def test_import_without_the_user_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    done = run_cli("import", str(tmp_path / "tree"), "--data", str(tmp_path / "data"))
    assert done.returncode == 1
    assert "no user named 'admin'" in done.stderr


async def test_an_import_killed_midway_leaves_nothing_partial_and_a_rerun_finishes(
    launch: Launcher, tmp_path: Path, server_database_url: str | None
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD, database_url=server_database_url)
    token = server.login("admin", PASSWORD)
    tree = tmp_path / "share"
    tree.mkdir()
    contents = {f"{1_000_000 + i}_A1.mcam": HDF5 + os.urandom(1_500_000) for i in range(25)}
    for name, content in contents.items():
        (tree / name).write_bytes(content)
    args = [camvault_command(), "import", str(tree), "--data", str(data)]
    proc = subprocess.Popen(
        [*args, *db_args(server_database_url)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while len(files_of(server, token)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "import too fast/slow"
            await anyio.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    done_before = files_of(server, token)
    assert 3 <= len(done_before) < len(contents)

    again = await to_thread.run_sync(
        lambda: run_cli("import", str(tree), "--data", str(data), *db_args(server_database_url))
    )
    assert again.returncode == 0, again.stdout + again.stderr
    # The file in flight when the process died may have reached git but not the database
    # (the listing above): the re-run's catch-up replays it, and it counts as already there.
    already = re.search(r"skipped, already in the vault: (\d+)", again.stdout)
    assert already is not None, again.stdout
    assert int(already.group(1)) in (len(done_before), len(done_before) + 1), again.stdout
    listed = files_of(server, token)
    assert sorted(listed) == sorted(contents)
    with server.client(token) as http:
        for name, content in contents.items():
            assert http.get(f"/api/files/{name}/content").content == content
            assert len(http.get(f"/api/files/{name}/versions").json()) == 1
    # The killed process's tmp dir was swept by the re-run; nothing else is left behind.
    leftovers = [p for p in (data / "tmp").iterdir() if p.is_dir()]
    assert len(leftovers) == 1, "only the running server's own tmp dir"
    env = isolated_git_env(tmp_path / "home")
    git_fsck(data / "vault.git", env)
