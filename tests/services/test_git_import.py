"""``camvault import --from-git``: a real git + git-lfs repository's history becomes vault
versions with their authors, dates, messages and bytes; LFS pointers are resolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygit2
import pytest
from anyio import to_thread
from git_source import LFS_SPEC, SourceRepo, build_source
from helpers import Vault, upload

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
