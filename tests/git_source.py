"""A real source repository for ``camvault import --from-git`` tests, built with the real git
and git-lfs: an LFS-tracked .mcam changed over several commits by different authors, a
plain .nc program, a file deleted later, and files whose names or content the vault refuses."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from helpers import HDF5

LFS_SPEC = "version https://git-lfs.github.com/spec/v1"


def _git(repo: Path, env: dict[str, str], *args: str, **extra: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**env, **extra},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Version:
    """One version the import must produce."""

    author: str
    email: str
    when: datetime
    message: str
    content: bytes | None  # None: the commit deletes the file


@dataclass
class SourceRepo:
    path: Path
    env: dict[str, str]
    # Vault name -> its versions, oldest first.
    expected: dict[str, list[Version]] = field(default_factory=dict)
    # "short commit:path" -> error code, for every refusal the import must report.
    refused: dict[str, str] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)

    def commit(
        self,
        author: str,
        when: datetime,
        message: str,
        *,
        put: dict[str, bytes] | None = None,
        remove: tuple[str, ...] = (),
    ) -> str:
        email = f"{author.split()[0].lower()}@shop.example"
        for rel, content in (put or {}).items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            _git(self.path, self.env, "add", "--", rel)
        for rel in remove:
            _git(self.path, self.env, "rm", "-q", "--", rel)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        _git(
            self.path, self.env, "commit", "-q", "-m", message,
            GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=stamp,
            GIT_COMMITTER_NAME="ci", GIT_COMMITTER_EMAIL="ci@shop.example",
            GIT_COMMITTER_DATE=stamp,
        )  # fmt: skip
        commit = _git(self.path, self.env, "rev-parse", "HEAD").strip()
        self.commits.append(commit)
        for rel, content in (put or {}).items():
            name = Path(rel).name
            if name in self.expected or name.endswith((".mcam", ".nc")) and name[0].isdigit():
                self.expected.setdefault(name, []).append(
                    Version(author, email, when, message, content)
                )
        for rel in remove:
            name = Path(rel).name
            self.expected[name].append(Version(author, email, when, message, None))
        return commit

    def show(self, spec: str) -> str:
        return _git(self.path, self.env, "cat-file", "-p", spec)


def isolated_env(home: Path) -> dict[str, str]:
    """git reading no system or user config but ``home/.gitconfig`` (with git-lfs set up)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CAMVAULT_"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, timeout=60)
    return env


def build_source(path: Path, home: Path) -> SourceRepo:
    """The shop's old repository: see the module docstring."""
    env = isolated_env(home)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], env=env, check=True)
    repo = SourceRepo(path, env)
    _git(path, env, "lfs", "track", "*.mcam")
    _git(path, env, "add", ".gitattributes")

    def day(n: int) -> datetime:
        return datetime(2023, 1, n, 8, 30, tzinfo=UTC)

    mcam = [HDF5 + os.urandom(120_000) for _ in range(3)]
    c1 = repo.commit(
        "Ann Miller", day(2), "Add bracket model and program",
        put={"1234567_A1.mcam": mcam[0], "programs/7654321.nc": b"G0 X0\nM30\n",
             "programs/old/9999999.nc": b"G0 X9\n"},
    )  # fmt: skip
    repo.commit(
        "Bob Stone",
        day(5),
        "Deeper pocket\n\nThe customer asked for 2 mm more.",
        put={"1234567_A1.mcam": mcam[1]},
    )
    c3 = repo.commit(
        "Ann Miller", day(9), "Slower feed",
        put={"programs/7654321.nc": b"G0 X0\nG1 Z-1. F150.\nM30\n", "notes.txt": b"todo",
             "bad:name.nc": b"G0\n"},
    )  # fmt: skip
    c4 = repo.commit(
        "Carl Weber",
        day(12),
        "Final model",
        put={"1234567_A1.mcam": mcam[2], "broken.mcam": b"not an HDF5 file"},
    )
    repo.commit(
        "Bob Stone", day(20), "Old program is obsolete", remove=("programs/old/9999999.nc",)
    )
    repo.refused = {
        f"{c3[:12]}:notes.txt": "invalid_type",
        f"{c3[:12]}:bad:name.nc": "invalid_name",
        f"{c4[:12]}:broken.mcam": "bad_content",
    }
    assert c1
    return repo
