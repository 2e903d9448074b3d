"""A full disk, for real: the server's data dir on a small tmpfs filled to the brim.

Each refused write answers 507 ``insufficient_storage``, leaves no version, no temp file and
the lock as it was; once space is freed the same check-in succeeds, without a restart.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e.server import Launcher, Server, checkin, isolated_git_env, upload

from faults.state import check_vault, mcam

pytestmark = pytest.mark.slow

PASSWORD = "disk-full-test-password"
NAME = "1234567_A1.mcam"  # stored as an LFS object
PROGRAM = "1234567_A1.nc"  # stored as a plain git blob (and in the content store)
MIB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path, launch: Launcher) -> Iterator[Path]:
    """A 24 MiB tmpfs (we run as root, here and in CI); unmounted after the servers stop."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        launch.close()
        # Lazy: detached at once even if a killed process still holds a file there.
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk with one file, then give back just enough that ``leave`` bytes are free."""
    filler = disk / "filler"
    block = b"\0" * MIB
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    assert leave <= free < leave + MIB, f"{free} bytes free, wanted {leave}"
    return filler


def refused(response: httpx.Response, server: Server) -> None:
    assert response.status_code == 507, f"{response.status_code} {response.text}\n{server.logs()}"
    assert response.json() == {
        "error": {
            "code": "insufficient_storage",
            "message": "the server's disk is full; nothing was saved",
        }
    }


def test_a_full_disk_refuses_check_ins_with_507_and_nothing_partial(
    small_disk: Path, launch: Launcher, tmp_path: Path
) -> None:
    data = small_disk / "data"
    server = launch.start(data, admin_password=PASSWORD)
    token = server.login("admin", PASSWORD)
    git_env = isolated_git_env(tmp_path / "home")
    rng = random.Random(7)
    v1, v2 = mcam(1), mcam(2, 3 * MIB)
    program_v1, program_v2 = b"G0 X0\n", rng.randbytes(3 * MIB)  # incompressible
    with server.client(token) as api:
        assert upload(api, NAME, v1).status_code == 201
        assert upload(api, PROGRAM, program_v1).status_code == 201
        for name in (NAME, PROGRAM):
            assert api.post(f"/api/files/{name}/checkout", json={}).status_code == 200
    expected = {NAME: [v1], PROGRAM: [program_v1]}
    locks: dict[str, str | None] = {NAME: "admin", PROGRAM: "admin"}

    # Too little room for the body: the upload spool hits ENOSPC while receiving.
    filler = fill(small_disk, 512 * 1024)
    with server.client(token) as api:
        refused(checkin(api, NAME, v2, message="no room", keep_locked=True), server)
        refused(upload(api, "7654321.mcam", v2), server)
    check_vault(server, token, git_env, expected, locks)

    # Room for the body but not for its git blob too: `git hash-object` hits ENOSPC.
    filler.unlink()
    filler = fill(small_disk, 4 * MIB)
    with server.client(token) as api:
        refused(checkin(api, PROGRAM, program_v2, message="no room for git"), server)
    check_vault(server, token, git_env, expected, locks)

    # Space freed: the very same check-ins succeed on the same server.
    filler.unlink()
    with server.client(token) as api:
        done = checkin(api, NAME, v2, message="room again", keep_locked=True)
        assert done.status_code == 200, done.text
        done = checkin(api, PROGRAM, program_v2, message="room for git")
        assert done.status_code == 200, done.text
    expected = {NAME: [v1, v2], PROGRAM: [program_v1, program_v2]}
    check_vault(server, token, git_env, expected, {NAME: "admin", PROGRAM: None})
    assert "Traceback" not in server.stderr(), server.stderr()[-4000:]


def test_whichever_write_finds_the_disk_full_the_check_in_is_all_or_nothing(
    small_disk: Path, launch: Launcher, tmp_path: Path
) -> None:
    """Leave room for the body plus 0, 1, 2... pages until the check-in fits: whichever
    write finds the disk full (in practice libgit2 writing the tree), every attempt is all
    or nothing."""
    data = small_disk / "data"
    server = launch.start(data, admin_password=PASSWORD)
    token = server.login("admin", PASSWORD)
    git_env = isolated_git_env(tmp_path / "home")
    page = os.statvfs(small_disk).f_frsize
    contents = [mcam(1)]
    with server.client(token) as api:
        assert upload(api, NAME, contents[0]).status_code == 201
        assert api.post(f"/api/files/{NAME}/checkout", json={}).status_code == 200
    body = mcam(2, 16 * page)
    outcomes = []
    for extra in range(64):
        filler = fill(small_disk, len(body) + extra * page)
        with server.client(token) as api:
            response = checkin(api, NAME, body, message=f"{extra} pages spare", keep_locked=True)
        filler.unlink()
        outcomes.append(response.status_code)
        if response.status_code == 200:
            contents.append(body)
            check_vault(server, token, git_env, {NAME: contents}, {NAME: "admin"})
            break
        refused(response, server)
        check_vault(server, token, git_env, {NAME: contents}, {NAME: "admin"})
    # At least one attempt got past the spool and failed later, in git.
    assert outcomes[-1] == 200 and 507 in outcomes, outcomes
    with server.client(token) as api:
        assert checkin(api, NAME, mcam(3), message="plenty of room").status_code == 200
