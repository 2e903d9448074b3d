"""The vault's history is plain git: a clone with git-lfs gives back every file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import HDF5, PASSWORD

from e2e.server import Launcher, checkin, git, git_fsck, isolated_git_env, run_cli, upload

LFS_SPEC = "version https://git-lfs.github.com/spec/v1"


@pytest.mark.slow
def test_git_clone_of_the_vault_gives_every_file_byte_for_byte(
    launch: Launcher, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = launch.start(data, admin_password=PASSWORD)
    added = run_cli(
        "user", "add", "bob", "--password-stdin", "--data", str(data), stdin="bob-pw-1\n"
    )
    assert added.returncode == 0, added.stderr
    tokens = {"admin": server.login("admin", PASSWORD), "bob": server.login("bob", "bob-pw-1")}
    clients = {user: server.client(token) for user, token in tokens.items()}
    # Each file: the users who wrote its versions, in order, and each version's bytes.
    plan: dict[str, list[tuple[str, bytes]]] = {
        "1234567_A1.mcam": [
            ("admin", HDF5 + os.urandom(300_000)),
            ("bob", HDF5 + os.urandom(200_000)),
            ("admin", HDF5 + b"\x00" * 70_000 + os.urandom(10)),
        ],
        "fixture.vnc": [("bob", os.urandom(50_000)), ("admin", os.urandom(80_000))],
        "7654321_B2.nc": [
            ("admin", b"%\nO1000 (BRACKET)\nG0 X0 Y0\nM30\n%\n"),
            ("bob", b"%\nO1000 (BRACKET)\nG0 X0 Y0\nG1 Z-1. F200.\nM30\n%\n"),
        ],
        "gone.nc": [("admin", b"G0 X1\n")],
        "gone.mcam": [("bob", HDF5 + b"obsolete")],
    }
    try:
        for name, versions in plan.items():
            (first_user, first), *later = versions
            response = upload(clients[first_user], name, first, message=f"add {name}")
            assert response.status_code == 201, response.text
            for user, content in later:
                client = clients[user]
                taken = client.post(f"/api/files/{name}/checkout", json={"message": "edit"})
                assert taken.status_code == 200, taken.text
                response = checkin(client, name, content, message=f"{user} edits {name}")
                assert response.status_code == 200, response.text
        for name in ("gone.nc", "gone.mcam"):
            response = clients["admin"].delete(f"/api/files/{name}")
            assert response.status_code == 204, response.text
    finally:
        for client in clients.values():
            client.close()

    env = isolated_git_env(tmp_path / "home")
    git("lfs", "install", "--skip-repo", env=env)
    clone = tmp_path / "clone"
    git("clone", "--quiet", f"file://{data / 'vault.git'}", str(clone), env=env)

    current = {name: versions[-1][1] for name, versions in plan.items() if "gone" not in name}
    checked_out = {path.name: path.read_bytes() for path in clone.iterdir() if path.name != ".git"}
    assert checked_out.pop(".gitattributes").startswith(b"*.")
    assert sorted(checked_out) == sorted(current), "deleted files must be gone, the rest there"
    for name, content in current.items():
        assert checked_out[name] == content, f"{name} differs from its newest version"

    git("-C", str(clone), "lfs", "fsck", env=env)
    git_fsck(clone, env)
    git_fsck(data / "vault.git", env)

    for name, versions in plan.items():
        authors = git("-C", str(clone), "log", "--format=%an", "--", name, env=env).split()
        expected = [user for user, _content in reversed(versions)]
        if "gone" in name:
            expected.insert(0, "admin")  # the delete commit
        assert authors == expected, f"history of {name}"

    # `git log --follow` of a file: one commit per version, newest first, with its author,
    # the user's message and trailers naming the file and version; each version's content
    # comes back through git-lfs from that commit.
    for name, versions in plan.items():
        if "gone" in name:
            continue
        log = git(
            "-C",
            str(clone),
            "log",
            "--follow",
            "--format=%H%x1f%an%x1f%B%x1e",
            "--",
            name,
            env=env,
        )
        commits = [entry.strip("\n").split("\x1f") for entry in log.split("\x1e") if entry.strip()]
        assert len(commits) == len(versions), f"{name}: one commit per version"
        for number, ((commit, author, body), (user, content)) in enumerate(
            zip(commits, reversed(versions), strict=True)
        ):
            version = len(versions) - number
            assert author == user
            message = f"add {name}" if version == 1 else f"{user} edits {name}"
            assert body.startswith(message), body
            trailers = git_bytes(
                clone, "interpret-trailers", "--parse", env=env, stdin=body.encode()
            )
            trailers = trailers.decode()
            assert f"Camvault-File: {name}" in trailers
            assert f"Camvault-Version: {version}" in trailers
            shown = git_bytes(clone, "show", f"{commit}:{name}", env=env)
            if name.endswith(".nc"):
                assert shown == content
            else:  # the tree holds the pointer; the smudge filter gives the bytes back
                smudged = git_bytes(clone, "lfs", "smudge", name, env=env, stdin=shown)
                assert smudged == content, f"{name} version {version}"

    program = git("-C", str(clone), "show", "HEAD:7654321_B2.nc", env=env)
    assert program.encode() == current["7654321_B2.nc"], ".nc files must be plain git blobs"
    for name in ("1234567_A1.mcam", "fixture.vnc"):
        pointer = git("-C", str(clone), "cat-file", "-p", f"HEAD:{name}", env=env)
        assert pointer.startswith(LFS_SPEC), f"{name} must be an LFS pointer in the tree"
        assert f"size {len(current[name])}" in pointer.splitlines()


def git_bytes(repo: Path, *args: str, env: dict[str, str], stdin: bytes = b"") -> bytes:
    """Run git in ``repo`` with bytes in and out (content that is not text)."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout
