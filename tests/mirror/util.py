"""What the mirror tests share: making versions, waiting for the mirror, checking a clone."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from e2e.server import git, git_fsck, isolated_git_env
from helpers import checkin, mcam, upload

MIRROR = "/api/admin/mirror"


async def wait_status(
    client: httpx.AsyncClient, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll GET /api/admin/mirror until ``done(status)``; fail with the last status."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(MIRROR)
        assert response.status_code == 200, response.text
        status = response.json()
        if done(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"mirror status never became what the test waits for: {status}")


def synced_at(head: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["state"] == "synced" and s["last_pushed"] == head and s["pending"] == 0


class Versions:
    """Makes versions through the API and remembers every byte it sent."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.current: dict[str, bytes] = {}
        self.lfs_sha256: set[str] = set()  # every LFS version's object, old ones too

    async def put(self, name: str, content: bytes) -> None:
        if name in self.current:
            taken = await self.client.post(f"/api/files/{name}/checkout", json={})
            assert taken.status_code == 200, taken.text
            response = await checkin(self.client, name, content, message=f"edit {name}")
            assert response.status_code == 200, response.text
        else:
            response = await upload(self.client, name, content, message=f"add {name}")
            assert response.status_code == 201, response.text
        self.current[name] = content
        if not name.endswith(".nc"):
            self.lfs_sha256.add(hashlib.sha256(content).hexdigest())

    async def some(self, n: int, start: int = 0) -> None:
        """``n`` versions over a few .mcam (LFS), .vnc (LFS) and .nc (plain) files."""
        for i in range(start, start + n):
            kind = i % 3
            if kind == 0:
                await self.put(f"12345{i % 4}0_A.mcam", mcam(os.urandom(2000 + i)))
            elif kind == 1:
                await self.put("fixture.vnc", os.urandom(3000 + i))
            else:
                await self.put("7654321_B.nc", f"%\nO1000\nG0 X{i}\nM30\n%\n".encode())


def vault_head(data: Path) -> str:
    return git("--git-dir", str(data / "vault.git"), "rev-parse", "main").strip()


def clone_and_check(
    url: str, dest: Path, expected: dict[str, bytes], head: str, *config: str
) -> None:
    """Clone with the real git + git-lfs and compare every file byte for byte; the clone's
    main must be the vault's head, `git lfs fsck` and `git fsck --strict` clean."""
    env = isolated_git_env(dest.parent / f"{dest.name}-home")
    git("lfs", "install", "--skip-repo", env=env)
    extra = [arg for pair in config for arg in ("-c", pair)]
    git(*extra, "clone", "--quiet", url, str(dest), env=env)
    # The clone's own config keeps no credentials: later commands get them again.
    got = {p.name: p.read_bytes() for p in dest.iterdir() if p.name not in (".git",)}
    got.pop(".gitattributes")
    assert sorted(got) == sorted(expected)
    for name, content in expected.items():
        assert got[name] == content, f"{name} differs in the clone"
    assert git("-C", str(dest), "rev-parse", "HEAD", env=env).strip() == head
    git(*extra, "-C", str(dest), "lfs", "fsck", env=env)
    git_fsck(dest, env)


def remote_lfs_objects(bare: Path) -> set[str]:
    root = bare / "lfs" / "objects"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def diverge(remote_url: str, work: Path, *config: str) -> str:
    """Push a commit the vault does not have to the remote's main (as someone else might)."""
    env = isolated_git_env(work.parent / f"{work.name}-home")
    extra = [arg for pair in config for arg in ("-c", pair)]
    env["GIT_LFS_SKIP_SMUDGE"] = "1"
    git(*extra, "clone", "--quiet", remote_url, str(work), env=env)
    (work / "stray.txt").write_text("pushed behind camvault's back\n")
    git("-C", str(work), "add", "stray.txt", env=env)
    git("-C", str(work), "-c", "user.name=it", "-c", "user.email=it@example.invalid",
        "commit", "--quiet", "-m", "stray", env=env)  # fmt: skip
    git(*extra, "-C", str(work), "push", "--quiet", "origin", "HEAD:main", env=env)
    done = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
