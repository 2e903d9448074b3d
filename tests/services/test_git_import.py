"""``camvault import --from-git``: a real git + git-lfs repository's history becomes vault
versions with their authors, dates, messages and bytes; LFS pointers are resolved."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest
from anyio import to_thread
from git_source import LFS_SPEC, SourceRepo, build_source, isolated_env
from helpers import HDF5, Vault, upload

from camvault.core import Camvault
from camvault.services.git_import import GitImport
from camvault.services.importer import ImportReport
from camvault.services.rebuild import rebuild

pytestmark = pytest.mark.anyio


@pytest.fixture
def source(tmp_path: Path) -> SourceRepo:
    return build_source(tmp_path / "source", tmp_path / "home")


async def run_import(camvault: Camvault, url: str, **kwargs: Any) -> ImportReport:
    return await to_thread.run_sync(GitImport(camvault.vault, **kwargs).run, url)


async def test_every_commit_becomes_a_version_with_author_date_message_and_bytes(
    vault: Vault, source: SourceRepo
) -> None:
    assert source.show("HEAD:1234567_A1.mcam").startswith(LFS_SPEC), "the source uses LFS"
    report = await run_import(vault.camvault, str(source.path))

    assert {r.source: r.code for r in report.refused} == source.refused
    assert report.failed
    assert [d.name for d in report.deleted] == ["9999999.nc"]
    assert report.deleted[0].source == f"{source.commits[-1][:12]}:programs/old/9999999.nc"
    assert report.warnings == []
    async with await vault.login("admin") as admin:
        listing = (await admin.get("/api/files")).json()["groups"]
        live = sorted(r["filename"] for g in listing.values() for r in g)
        assert live == ["1234567_A1.mcam", "7654321.nc"], "the deleted file is gone"
        for name in live:
            expected = source.expected[name]
            history = (await admin.get(f"/api/files/{name}/versions")).json()[::-1]
            assert [v["version"] for v in history] == list(range(1, len(expected) + 1))
            for got, want in zip(history, expected, strict=True):
                assert got["author"] == want.author
                assert got["message"] == want.message
                assert got["created_at"] == want.when.isoformat().replace("+00:00", ".000Z")
                assert got["action"] == "import"
                content = await admin.get(f"/api/files/{name}/content?version={got['version']}")
                assert content.content == want.content, f"{name} v{got['version']} bytes"

    # The vault's own git history keeps the source's author, email and date too.
    vault_git = pygit2.Repository(str(vault.camvault.vault.repo.path))
    mcam_commits = [
        c for c in vault.camvault.vault.repo.all_commits() if c.filename == "1234567_A1.mcam"
    ]
    for info, want in zip(mcam_commits, source.expected["1234567_A1.mcam"], strict=True):
        commit = vault_git[info.commit]
        assert isinstance(commit, pygit2.Commit)
        assert (commit.author.name, commit.author.email) == (want.author, want.email)
        assert commit.author.time == int(want.when.timestamp())
        assert info.source in source.commits
    deleted = [c for c in vault.camvault.vault.repo.all_commits() if c.action == "delete"]
    assert [(c.filename, c.author, c.message) for c in deleted] == [
        ("9999999.nc", "Bob Stone", "Old program is obsolete")
    ]


async def test_a_rerun_imports_nothing_twice(vault: Vault, source: SourceRepo) -> None:
    first = await run_import(vault.camvault, str(source.path))
    head = vault.camvault.vault.repo.head
    again = await run_import(vault.camvault, f"file://{source.path}")
    assert again.imported == [] and again.deleted == []
    # Every version and the delete: known by (source commit, name).
    assert len(again.already) == len(first.imported) + len(first.deleted)
    assert vault.camvault.vault.repo.head == head
    assert {r.source for r in again.refused} == {r.source for r in first.refused}


async def test_an_imported_history_rebuilds_to_the_same_index(
    vault: Vault, source: SourceRepo
) -> None:
    await run_import(vault.camvault, str(source.path))
    camvault = vault.camvault
    report = await to_thread.run_sync(
        rebuild, camvault.db, camvault.vault.repo, camvault.vault.store
    )
    assert report.changed == [] and report.removed == []
    assert report.versions == 6


async def test_a_name_the_vault_has_from_elsewhere_is_left_alone(
    vault: Vault, source: SourceRepo
) -> None:
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "7654321.nc", b"G0 mine\n")).status_code == 201
        report = await run_import(vault.camvault, str(source.path))
        assert (await admin.get("/api/files/7654321.nc/content")).content == b"G0 mine\n"
        history = (await admin.get("/api/files/1234567_A1.mcam/versions")).json()
        assert len(history) == 3
    clashes = [r for r in report.refused if r.code == "exists"]
    assert len(clashes) == 1 and clashes[0].source.endswith(":programs/7654321.nc")


async def test_a_dry_run_writes_nothing(vault: Vault, source: SourceRepo) -> None:
    head = vault.camvault.vault.repo.head
    report = await run_import(vault.camvault, str(source.path), dry_run=True)
    assert len(report.imported) == 6
    assert {r.source: r.code for r in report.refused} == source.refused
    assert vault.camvault.vault.repo.head == head


async def test_an_unreachable_source_is_a_clear_error(vault: Vault, tmp_path: Path) -> None:
    from camvault.errors import BadRequest

    with pytest.raises(BadRequest, match="git clone of"):
        await run_import(vault.camvault, f"file://{tmp_path / 'nothing-here'}")
    leftovers = [p.name for p in vault.camvault.tmp_dir.iterdir() if p.name != ".lock"]
    assert leftovers == []


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def test_a_merge_counts_once_on_the_main_line(vault: Vault, tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "home")
    env.update(GIT_AUTHOR_NAME="Ann", GIT_AUTHOR_EMAIL="ann@x", GIT_COMMITTER_NAME="Ann",
               GIT_COMMITTER_EMAIL="ann@x")  # fmt: skip
    repo = tmp_path / "merged"
    git(tmp_path, env, "init", "-q", "-b", "main", str(repo))
    (repo / "1234567.nc").write_bytes(b"G0 main 1\n")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "start")
    git(repo, env, "checkout", "-qb", "feature")
    (repo / "7777777.nc").write_bytes(b"G0 feature a\n")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "feature a")
    (repo / "7777777.nc").write_bytes(b"G0 feature b\n")
    git(repo, env, "commit", "-qam", "feature b")
    git(repo, env, "checkout", "-q", "main")
    (repo / "1234567.nc").write_bytes(b"G0 main 2\n")
    git(repo, env, "commit", "-qam", "main 2")
    git(repo, env, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")

    report = await run_import(vault.camvault, str(repo))
    assert not report.failed
    commits = vault.camvault.vault.repo.all_commits()
    assert [(c.filename, c.version, c.message) for c in commits] == [
        ("1234567.nc", 1, "start"),
        ("1234567.nc", 2, "main 2"),
        ("7777777.nc", 1, "Merge feature"),
    ]
    async with await vault.login("admin") as admin:
        got = await admin.get("/api/files/7777777.nc/content")
        assert got.content == b"G0 feature b\n"


async def test_a_version_whose_lfs_object_is_missing_is_refused(
    vault: Vault, tmp_path: Path
) -> None:
    env = isolated_env(tmp_path / "home")
    env.update(GIT_AUTHOR_NAME="Ann", GIT_AUTHOR_EMAIL="ann@x", GIT_COMMITTER_NAME="Ann",
               GIT_COMMITTER_EMAIL="ann@x")  # fmt: skip
    repo = tmp_path / "lossy"
    git(tmp_path, env, "init", "-q", "-b", "main", str(repo))
    git(repo, env, "lfs", "track", "*.mcam")
    (repo / "1111111.mcam").write_bytes(HDF5 + b"kept")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "good")
    # A pointer whose object was never pushed (someone committed with LFS misconfigured).
    lost = HDF5 + b"lost"
    pointer = f"version {LFS_SPEC.split()[1]}\noid sha256:{hashlib.sha256(lost).hexdigest()}\n"
    (repo / "2222222.mcam").write_bytes(f"{pointer}size {len(lost)}\n".encode())
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-qm", "lossy")

    report = await run_import(vault.camvault, str(repo))
    assert [(r.source.split(":")[1], r.code) for r in report.refused] == [
        ("2222222.mcam", "lfs_missing")
    ]
    assert len(report.warnings) == 1 and "lfs fetch" in report.warnings[0]
    assert [d.name for d in report.imported] == ["1111111.mcam"]


async def test_a_password_in_the_source_url_never_reaches_the_error(vault: Vault) -> None:
    from e2e.server import free_port

    from camvault.errors import BadRequest

    url = f"http://importer:s3cret-token@127.0.0.1:{free_port()}/shop.git"
    with pytest.raises(BadRequest) as caught:
        await run_import(vault.camvault, url)
    assert "git clone of http://***@127.0.0.1" in caught.value.message
    assert "s3cret" not in caught.value.message
