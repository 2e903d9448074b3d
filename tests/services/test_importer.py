"""``camvault import PATH``: a folder tree becomes version 1 of each valid file, through the
upload path's own checks; nothing is skipped silently and a re-run continues."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from anyio import to_thread
from helpers import Vault, mcam, upload
from sqlalchemy import select

from camvault.core import Camvault
from camvault.errors import NotFound
from camvault.history.lfs import parse_pointer
from camvault.services.importer import FolderImport, ImportReport, find_user
from camvault.settings import Settings
from camvault.store.models import events

pytestmark = pytest.mark.anyio

NC = b"%\nO1000 (BRACKET)\nG0 X0 Y0\nM30\n%\n"


def write(root: Path, relative: str, content: bytes) -> bytes:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return content


def shop_tree(root: Path) -> dict[str, bytes]:
    """A shop's folder: good files in sub-folders, and every kind of trouble. Returns the
    files that must be imported, by vault name."""
    good = {
        "1234567_A1.mcam": write(root, "1234567_A1.mcam", mcam(os.urandom(200_000))),
        "7654321.nc": write(root, "programs/7654321.nc", NC),
        "fixture.vnc": write(root, "programs/old/fixture.vnc", os.urandom(5000)),
        "same.nc": write(root, "a/same.nc", b"G0 X1\n"),
    }
    write(root, "b/SAME.nc", b"G0 X1\n")  # identical copy under the same name (any case)
    write(root, "c/clash.nc", b"G0 X2\n")
    write(root, "d/clash.nc", b"G0 X3\n")  # same name, other bytes: neither is taken
    write(root, "bad/notes.txt", b"hello")
    write(root, "bad/CON.nc", b"G0\n")
    write(root, "bad/nohdf.mcam", b"not hdf5 at all")
    write(root, "bad/empty.nc", b"")
    write(root, "bad/.hidden.nc", b"G0\n")
    (root / "link.nc").symlink_to(root / "programs" / "7654321.nc")
    return good


def refusals(report: ImportReport) -> dict[str, str]:
    return {r.source: r.code for r in report.refused}


async def run_import(camvault: Camvault, root: Path, **kwargs: Any) -> ImportReport:
    user = find_user(camvault.db, "admin")
    importer = FolderImport(camvault.vault, user, **kwargs)
    return await to_thread.run_sync(importer.run, root)


async def test_a_folder_tree_is_imported_and_every_refusal_reported(
    vault: Vault, tmp_path: Path
) -> None:
    good = shop_tree(tmp_path / "tree")
    report = await run_import(vault.camvault, tmp_path / "tree")

    assert sorted((d.name, d.version) for d in report.imported) == sorted(
        (name, 1) for name in good
    )
    assert refusals(report) == {
        "bad/notes.txt": "invalid_type",
        "bad/CON.nc": "invalid_name",
        "bad/nohdf.mcam": "bad_content",
        "bad/empty.nc": "empty",
        "bad/.hidden.nc": "invalid_name",
        "link.nc": "symlink",
    }
    assert {(d.name, d.sources, d.identical) for d in report.duplicates} == {
        ("same.nc", ("a/same.nc", "b/SAME.nc"), True),
        ("clash.nc", ("c/clash.nc", "d/clash.nc"), False),
    }
    assert report.failed

    async with await vault.login("admin") as admin:
        listing = (await admin.get("/api/files")).json()["groups"]
        names = sorted(r["filename"] for g in listing.values() for r in g)
        assert names == sorted(good)
        for name, content in good.items():
            got = await admin.get(f"/api/files/{name}/content")
            assert got.content == content, name
            (only,) = (await admin.get(f"/api/files/{name}/versions")).json()
            assert (only["version"], only["action"], only["author"]) == (1, "import", "admin")
        history = (await admin.get("/api/files/7654321.nc/versions")).json()
        assert history[0]["message"] == "Import programs/7654321.nc"

    repo = vault.camvault.vault.repo
    commits = repo.all_commits()
    assert sorted(c.filename for c in commits) == sorted(good), "one commit per file"
    assert {c.action for c in commits} == {"import"}
    pointer = repo.read_blob(repo.head or "", "1234567_A1.mcam")
    assert parse_pointer(pointer) == (
        hashlib.sha256(good["1234567_A1.mcam"]).hexdigest(),
        len(good["1234567_A1.mcam"]),
    )
    assert repo.read_blob(repo.head or "", "7654321.nc") == NC, ".nc stays a plain blob"
    with vault.camvault.db.read() as conn:
        types = conn.execute(select(events.c.type).where(events.c.type.like("file.%"))).scalars()
        assert list(types) == ["file.uploaded"] * len(good)


async def test_a_rerun_skips_what_is_there_and_never_overwrites(
    vault: Vault, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    write(tree, "1111111.mcam", mcam(b"one"))
    write(tree, "x/2222222.nc", b"G1\n")
    first = await run_import(vault.camvault, tree)
    assert len(first.imported) == 2 and not first.failed

    again = await run_import(vault.camvault, tree)
    assert again.imported == [] and not again.failed
    assert sorted((d.name, d.version) for d in again.already) == [
        ("1111111.mcam", 1),
        ("2222222.nc", 1),
    ]

    write(tree, "1111111.mcam", mcam(b"one, edited on the share"))
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "3333333.nc", b"G3\n")).status_code == 201
    write(tree, "3333333.nc", b"G3, another\n")
    clash = await run_import(vault.camvault, tree)
    assert clash.failed
    assert refusals(clash) == {"1111111.mcam": "exists", "3333333.nc": "exists"}
    assert "not overwritten" in clash.refused[0].reason
    async with await vault.login("admin") as admin:
        got = await admin.get("/api/files/1111111.mcam/content")
        assert got.content == mcam(b"one")


class Interrupt(Exception):
    pass


class StopMidway:
    """A progress sink that interrupts the import part-way through the Nth file's copy."""

    def __init__(self, after_bytes: int) -> None:
        self.after_bytes = after_bytes
        self.seen = 0

    def start(self, files: int, total_bytes: int | None) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        self.seen += nbytes
        if self.seen > self.after_bytes:
            raise Interrupt

    def file_done(self) -> None:
        return None


async def test_an_interrupted_import_leaves_no_partial_file_and_a_rerun_continues(
    vault: Vault, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    contents = {f"100000{i}.mcam": mcam(os.urandom(3 * 1024 * 1024)) for i in range(3)}
    for name, content in contents.items():
        write(tree, name, content)
    camvault = vault.camvault
    with pytest.raises(Interrupt):
        # Dies inside the second file's copy (after 1.5 files' bytes).
        await run_import(camvault, tree, progress=StopMidway(int(4.5 * 1024 * 1024)))
    leftovers = [p.name for p in camvault.tmp_dir.iterdir() if p.name != ".lock"]
    assert leftovers == [], "no temp file survives an interrupted copy"
    assert [c.filename for c in camvault.vault.repo.all_commits()] == ["1000000.mcam"]

    report = await run_import(camvault, tree)
    assert [d.name for d in report.already] == ["1000000.mcam"]
    assert sorted(d.name for d in report.imported) == ["1000001.mcam", "1000002.mcam"]
    async with await vault.login("admin") as admin:
        for name, content in contents.items():
            assert (await admin.get(f"/api/files/{name}/content")).content == content


async def test_a_dry_run_reports_and_writes_nothing(vault: Vault, tmp_path: Path) -> None:
    good = shop_tree(tmp_path / "tree")
    camvault = vault.camvault
    head = camvault.vault.repo.head
    report = await run_import(camvault, tmp_path / "tree", dry_run=True)
    assert sorted(d.name for d in report.imported) == sorted(good)
    assert "bad/nohdf.mcam" in refusals(report)
    assert camvault.vault.repo.head == head
    async with await vault.login("admin") as admin:
        assert (await admin.get("/api/files")).json()["groups"] == {}


async def test_shop_rules_apply_as_for_uploads(settings: Settings, tmp_path: Path) -> None:
    strict = settings.model_copy(
        update={"name_pattern": r"[0-9]{7}_[A-Z][0-9]\..*", "max_upload_bytes": 1000}
    )
    tree = tmp_path / "tree"
    write(tree, "1234567_A1.nc", b"G0\n")
    write(tree, "free-name.nc", b"G0\n")
    write(tree, "7654321_B2.nc", b"G" * 1001)
    camvault = Camvault(strict)
    camvault.open_sync()
    try:
        camvault.bootstrap_admin()
        report = FolderImport(camvault.vault, find_user(camvault.db, "admin")).run(tree)
    finally:
        camvault.close()
    assert [d.name for d in report.imported] == ["1234567_A1.nc"]
    assert refusals(report) == {"free-name.nc": "invalid_name", "7654321_B2.nc": "too_large"}


async def test_an_unknown_user_is_refused_before_anything_happens(vault: Vault) -> None:
    with pytest.raises(NotFound, match="no user named 'nobody'"):
        find_user(vault.camvault.db, "nobody")
