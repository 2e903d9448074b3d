"""The vault's git history, checked with the real git and git-lfs CLIs on temp repos."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pygit2
import pytest

from camvault.errors import NotFound, StorageError
from camvault.history.lfs import ContentStore, parse_pointer
from camvault.history.repo import GIT_OBJECT_CACHE_BYTES, VaultRepo

LFS_EXTENSIONS = (".mcam", ".emcam", ".vnc")
GITATTRIBUTES = (
    b"*.[eE][mM][cC][aA][mM] filter=lfs diff=lfs merge=lfs -text\n"
    b"*.[mM][cC][aA][mM] filter=lfs diff=lfs merge=lfs -text\n"
    b"*.[vV][nN][cC] filter=lfs diff=lfs merge=lfs -text\n"
)
T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
HDF5 = b"\x89HDF\r\n\x1a\n"


@dataclass
class Vault:
    """A vault as the services layer sees it: the repo, its content store and a clock."""

    repo: VaultRepo
    store: ContentStore
    git_env: dict[str, str]
    tick: int = 0

    def put(
        self,
        filename: str,
        data: bytes,
        *,
        version: int = 1,
        action: str = "upload",
        author: str = "alice",
        message: str = "",
        revision: str = "A1",
    ) -> str:
        """Store ``data`` as the next version of ``filename``, as the upload service would."""
        lfs = self.repo.wants_lfs(filename)
        blob_id = None
        if lfs:
            sha = self.store.put_bytes(data)
        else:
            sha = hashlib.sha256(data).hexdigest()
            src = self.store.tmp_dir / "plain"
            src.write_bytes(data)
            blob_id = self.repo.create_blob_from_file(src)
            src.unlink()
        return self.commit(
            filename=filename,
            action=action,
            version=version,
            sha256=sha,
            size=len(data),
            lfs=lfs,
            blob_id=blob_id,
            author=author,
            message=message,
            revision=revision,
        )

    def delete(self, filename: str, *, version: int, author: str = "alice") -> str:
        return self.commit(
            filename=filename,
            action="delete",
            version=version,
            sha256="0" * 64,
            size=0,
            lfs=False,
            blob_id=None,
            author=author,
            message="obsolete",
            revision="A1",
        )

    def commit(self, **fields: object) -> str:
        self.tick += 1
        return self.repo.commit_change(
            when=T0 + timedelta(minutes=self.tick),
            expected_head=self.repo.head,
            **fields,  # type: ignore[arg-type]
        )

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=self.git_env,
            capture_output=True,
            check=True,
            text=True,
        ).stdout

    def bare(self, *args: str) -> str:
        return self.git(f"--git-dir={self.repo.path}", *args)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    home = tmp_path / "home"
    home.mkdir()
    # Keep the developer's git config (and any credential helper) out of the test.
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        # Only for the foreign commits some tests make with `git commit-tree`.
        GIT_AUTHOR_NAME="it",
        GIT_AUTHOR_EMAIL="it@shop.example",
        GIT_COMMITTER_NAME="it",
        GIT_COMMITTER_EMAIL="it@shop.example",
    )
    subprocess.run(
        ["git", "lfs", "install", "--skip-repo"],
        env=env,
        check=True,
        text=True,
        capture_output=True,
    )
    repo = VaultRepo.open_or_init(tmp_path / "data" / "vault.git", LFS_EXTENSIONS)
    store = ContentStore(repo.path / "lfs" / "objects", tmp_path / "data" / "tmp")
    store.tmp_dir.mkdir(parents=True)
    return Vault(repo, store, env)


def mcam(n: int) -> bytes:
    return HDF5 + hashlib.sha256(str(n).encode()).digest() * (1000 + n)


def test_open_or_init_creates_a_bare_repo_with_head_on_an_unborn_main(vault: Vault) -> None:
    path = vault.repo.path
    assert (path / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert vault.repo.head is None
    assert vault.repo.all_commits() == []
    assert vault.bare("rev-parse", "--is-bare-repository").strip() == "true"
    # No identity, credentials or remotes are written into the vault's own config.
    config = (path / "config").read_text()
    assert "[user" not in config and "credential" not in config and "[remote" not in config


def test_opening_the_vault_caps_libgit2s_object_cache(vault: Vault) -> None:
    """libgit2 caches every commit and tree up to 256 MiB by default: one check-in per
    commit made the server grow with every write (make soak found it)."""
    for i in range(300):
        vault.put("1234567_A1.mcam", mcam(i))
    used, limit = pygit2.settings.cached_memory
    assert limit == GIT_OBJECT_CACHE_BYTES
    assert 0 < used <= limit


def test_reopening_keeps_the_history(vault: Vault, tmp_path: Path) -> None:
    head = vault.put("1234567_A1.mcam", mcam(1))
    again = VaultRepo.open_or_init(vault.repo.path, LFS_EXTENSIONS)
    assert again.head == head
    assert [c.commit for c in again.all_commits()] == [head]


def test_open_or_init_refuses_a_repository_with_a_work_tree(tmp_path: Path) -> None:
    pygit2.init_repository(tmp_path / "work")
    with pytest.raises(StorageError):
        VaultRepo.open_or_init(tmp_path / "work", LFS_EXTENSIONS)


@pytest.mark.slow
def test_a_git_clone_with_git_lfs_gives_back_every_file_byte_for_byte(
    vault: Vault, tmp_path: Path
) -> None:
    nc_v1 = b"%\nO1000 (PART 1234567)\nG90 G54\nM30\n%\n"
    nc_v2 = nc_v1.replace(b"G54", b"G55")
    vault.put("1234567_A1.mcam", mcam(1))
    vault.put("1234567_A1.nc", nc_v1)
    vault.put("1234567_A1.mcam", mcam(2), version=2, action="checkin")
    vault.put("1234567_A1.nc", nc_v2, version=2, action="checkin")
    vault.put("spindle.vnc", b"\x00VNC\xff" * 5000)
    vault.put("7654321_SHOUT.MCAM", mcam(3))
    vault.put("same-content.mcam", mcam(2))  # stored once in LFS, committed twice

    vault.bare("fsck", "--strict", "--no-dangling")
    clone = tmp_path / "clone"
    vault.git("clone", "--quiet", vault.repo.path.as_uri(), str(clone))

    assert (clone / "1234567_A1.mcam").read_bytes() == mcam(2)
    assert (clone / "1234567_A1.nc").read_bytes() == nc_v2
    assert (clone / "spindle.vnc").read_bytes() == b"\x00VNC\xff" * 5000
    assert (clone / "7654321_SHOUT.MCAM").read_bytes() == mcam(3)
    assert (clone / "same-content.mcam").read_bytes() == mcam(2)
    assert (clone / ".gitattributes").read_bytes() == GITATTRIBUTES
    assert sorted(p.name for p in clone.iterdir() if p.name != ".git") == [
        ".gitattributes",
        "1234567_A1.mcam",
        "1234567_A1.nc",
        "7654321_SHOUT.MCAM",
        "same-content.mcam",
        "spindle.vnc",
    ]
    vault.git("lfs", "fsck", cwd=clone)
    # The clone sees a clean work tree: the smudged files match what git-lfs would clean.
    assert vault.git("status", "--porcelain", cwd=clone) == ""
    # An old LFS version is reachable too.
    first = vault.repo.all_commits()[0].commit
    vault.git("lfs", "fetch", "origin", first, cwd=clone)
    vault.git("checkout", "--quiet", first, cwd=clone)
    assert (clone / "1234567_A1.mcam").read_bytes() == mcam(1)


def test_lfs_files_are_pointers_and_plain_files_are_real_blobs(vault: Vault) -> None:
    vault.put("1234567_A1.mcam", mcam(1))
    head = vault.put("1234567_A1.nc", b"G0 X0\n")
    assert parse_pointer(vault.repo.read_blob(head, "1234567_A1.mcam")) == (
        hashlib.sha256(mcam(1)).hexdigest(),
        len(mcam(1)),
    )
    assert vault.repo.read_blob(head, "1234567_A1.nc") == b"G0 X0\n"
    assert vault.repo.read_blob(head, ".gitattributes") == GITATTRIBUTES
    with pytest.raises(NotFound):
        vault.repo.read_blob(head, "missing.nc")


def test_git_log_shows_one_commit_per_version_with_trailers(vault: Vault) -> None:
    vault.put("1234567_A1.mcam", mcam(1), author="alice", message="first cut")
    vault.put("other.nc", b"G1\n", author="bob")
    vault.put(
        "1234567_A1.mcam",
        mcam(2),
        version=2,
        action="checkin",
        author="bob",
        message="  fix the\n\nfeeds  \n",
        revision="A2",
    )

    log = vault.bare("log", "--format=%an <%ae>%n%B%x00", "--", "1234567_A1.mcam")
    entries = [e.strip("\n") for e in log.split("\x00") if e.strip()]
    sha2 = hashlib.sha256(mcam(2)).hexdigest()
    assert entries[0] == (
        "bob <bob@camvault.invalid>\n"
        "fix the\n\nfeeds\n\n"
        "Camvault-File: 1234567_A1.mcam\n"
        "Camvault-Action: checkin\n"
        "Camvault-Version: 2\n"
        "Camvault-Revision: A2\n"
        f"Camvault-Sha256: {sha2}\n"
        f"Camvault-Size: {len(mcam(2))}"
    )
    assert entries[1].startswith("alice <alice@camvault.invalid>\nfirst cut\n\n")
    assert len(entries) == 2
    # git itself reads them as trailers.
    trailers = vault.bare("log", "-1", "--format=%(trailers:key=Camvault-Version,valueonly)")
    assert trailers.strip() == "2"


def test_commit_info_round_trips_every_field(vault: Vault) -> None:
    when = datetime(2024, 6, 2, 10, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    sha = vault.store.put_bytes(mcam(1))
    commit = vault.repo.commit_change(
        filename="1234567_A1.mcam",
        action="upload",
        version=3,
        revision="B7",
        sha256=sha,
        size=len(mcam(1)),
        lfs=True,
        blob_id=None,
        author="carol",
        message="new fixture\n\nwith a body",
        when=when,
        expected_head=None,
    )
    [info] = vault.repo.all_commits()
    assert info.commit == commit
    assert info.parent is None
    assert (info.filename, info.action, info.version, info.revision) == (
        "1234567_A1.mcam",
        "upload",
        3,
        "B7",
    )
    assert (info.sha256, info.size, info.author) == (sha, len(mcam(1)), "carol")
    assert info.message == "new fixture\n\nwith a body"
    assert info.when == when and info.when.tzinfo == UTC
    assert vault.bare("log", "-1", "--format=%ad", "--date=iso-strict") == (
        "2024-06-02T08:00:05+00:00\n"
    )


def test_an_empty_message_becomes_action_and_filename(vault: Vault) -> None:
    vault.put("1234567_A1.mcam", mcam(1), message="  \n ")
    [info] = vault.repo.all_commits()
    assert info.message == "upload 1234567_A1.mcam"


def test_a_user_message_cannot_forge_trailers(vault: Vault) -> None:
    forged = "looks innocent\n\nCamvault-Version: 99\nCamvault-File: evil.mcam"
    vault.put("1234567_A1.mcam", mcam(1), message=forged)
    [info] = vault.repo.all_commits()
    assert (info.filename, info.version, info.message) == ("1234567_A1.mcam", 1, forged)
    assert vault.bare("log", "-1", "--format=%(trailers:key=Camvault-Version,valueonly)") == (
        "1\n\n"
    )


@pytest.mark.parametrize(
    "field",
    ["filename", "revision", "action", "author"],
)
@pytest.mark.parametrize("newline", ["\n", "\r"])
def test_a_newline_in_any_trailer_value_is_refused(vault: Vault, field: str, newline: str) -> None:
    good = {"filename": "x.nc", "revision": "A1", "action": "upload", "author": "alice"}
    good[field] = good[field] + newline + "Camvault-Version: 99"
    blob = vault.repo.create_blob_from_file(Path(__file__))
    with pytest.raises(ValueError):
        vault.commit(
            version=1, sha256="0" * 64, size=1, lfs=False, blob_id=blob, message="", **good
        )
    assert vault.repo.head is None


def test_the_lfs_flag_must_agree_with_gitattributes(vault: Vault) -> None:
    blob = vault.repo.create_blob_from_file(Path(__file__))
    with pytest.raises(ValueError):
        vault.commit(
            filename="part.mcam",
            action="upload",
            version=1,
            revision="A1",
            sha256="0" * 64,
            size=1,
            lfs=False,
            blob_id=blob,
            author="a",
            message="",
        )
    with pytest.raises(ValueError):
        vault.commit(
            filename="part.nc",
            action="upload",
            version=1,
            revision="A1",
            sha256="0" * 64,
            size=1,
            lfs=True,
            blob_id=None,
            author="a",
            message="",
        )
    assert vault.repo.head is None


def test_delete_removes_the_file_from_the_tree_and_keeps_its_history(vault: Vault) -> None:
    first = vault.put("1234567_A1.mcam", mcam(1))
    vault.put("keep.nc", b"G0\n")
    deleted = vault.delete("1234567_A1.mcam", version=2)

    assert vault.bare("ls-tree", "--name-only", deleted).split() == [".gitattributes", "keep.nc"]
    assert vault.bare("log", "--format=%H", "--", "1234567_A1.mcam").split() == [deleted, first]
    assert [c.action for c in vault.repo.all_commits()] == ["upload", "upload", "delete"]
    vault.bare("fsck", "--strict", "--no-dangling")
    with pytest.raises(StorageError):
        vault.delete("1234567_A1.mcam", version=3)


def test_gitattributes_is_rewritten_when_the_lfs_extensions_change(vault: Vault) -> None:
    vault.put("1234567_A1.mcam", mcam(1))
    narrower = VaultRepo.open_or_init(vault.repo.path, ["mcam"])
    head = narrower.commit_change(
        filename="b.nc",
        action="upload",
        version=1,
        revision="A1",
        sha256="0" * 64,
        size=3,
        lfs=False,
        blob_id=narrower.create_blob_from_file(Path(__file__)),
        author="a",
        message="",
        when=T0,
        expected_head=narrower.head,
    )
    assert narrower.read_blob(head, ".gitattributes") == (
        b"*.[mM][cC][aA][mM] filter=lfs diff=lfs merge=lfs -text\n"
    )


def test_a_stale_expected_head_is_refused_and_main_is_unchanged(vault: Vault) -> None:
    first = vault.put("1234567_A1.mcam", mcam(1))
    second = vault.put("1234567_A1.mcam", mcam(2), version=2)
    with pytest.raises(StorageError):
        vault.repo.commit_change(
            filename="1234567_A1.mcam",
            action="checkin",
            version=3,
            revision="A1",
            sha256=vault.store.put_bytes(mcam(3)),
            size=len(mcam(3)),
            lfs=True,
            blob_id=None,
            author="bob",
            message="",
            when=T0,
            expected_head=first,
        )
    assert vault.repo.head == second
    assert vault.bare("rev-parse", "refs/heads/main").strip() == second


def test_a_first_commit_does_not_overwrite_a_main_that_now_exists(vault: Vault) -> None:
    head = vault.put("1234567_A1.mcam", mcam(1))
    with pytest.raises(StorageError):
        vault.repo.commit_change(
            filename="other.mcam",
            action="upload",
            version=1,
            revision="A1",
            sha256=vault.store.put_bytes(mcam(2)),
            size=len(mcam(2)),
            lfs=True,
            blob_id=None,
            author="bob",
            message="",
            when=T0,
            expected_head=None,
        )
    assert vault.repo.head == head


class RacedVaultRepo(VaultRepo):
    """Lets another writer move main after the early head check, while the tree is built."""

    intruder: Callable[[], object] | None = None

    def _build_tree(self, *args: object, **kwargs: object) -> pygit2.Oid:
        tree = super()._build_tree(*args, **kwargs)  # type: ignore[arg-type]
        if self.intruder is not None:
            self.intruder()
        return tree


def test_main_moved_by_another_writer_mid_commit_is_detected(vault: Vault) -> None:
    first = vault.put("1234567_A1.mcam", mcam(1))
    other = vault.put("1234567_A1.mcam", mcam(2), version=2)
    vault.bare("update-ref", "refs/heads/main", first)

    raced = RacedVaultRepo.open_or_init(vault.repo.path, LFS_EXTENSIONS)
    raced.intruder = lambda: vault.bare("update-ref", "refs/heads/main", other)
    with pytest.raises(StorageError):
        raced.commit_change(
            filename="1234567_A1.mcam",
            action="checkin",
            version=2,
            revision="A1",
            sha256=vault.store.put_bytes(mcam(3)),
            size=len(mcam(3)),
            lfs=True,
            blob_id=None,
            author="bob",
            message="",
            when=T0,
            expected_head=first,
        )
    assert vault.repo.head == other


def test_commits_since_returns_exactly_the_later_commits_oldest_first(vault: Vault) -> None:
    ids = [vault.put(f"{n}.mcam", mcam(n)) for n in range(5)]
    assert [c.commit for c in vault.repo.commits_since(ids[1])] == ids[2:]
    assert [c.parent for c in vault.repo.commits_since(ids[1])] == ids[1:4]
    assert vault.repo.commits_since(ids[-1]) == []
    assert [c.commit for c in vault.repo.commits_since(None)] == ids
    assert [c.filename for c in vault.repo.all_commits()] == [f"{n}.mcam" for n in range(5)]


def test_commits_since_a_base_that_is_not_an_ancestor_raises(vault: Vault) -> None:
    base = vault.put("a.mcam", mcam(1))
    vault.put("b.mcam", mcam(2))
    # A commit that exists in the repo but is not on main's line.
    stray = vault.bare("commit-tree", f"{base}^{{tree}}", "-m", "stray").strip()
    with pytest.raises(StorageError):
        vault.repo.commits_since(stray)
    with pytest.raises(StorageError):
        vault.repo.commits_since("f" * 40)


def test_commits_without_camvault_trailers_are_skipped(vault: Vault) -> None:
    first = vault.put("a.mcam", mcam(1))
    foreign = vault.bare(
        "commit-tree",
        f"{first}^{{tree}}",
        "-p",
        first,
        "-m",
        "housekeeping\n\nSigned-off-by: it <it@shop.example>",
    ).strip()
    vault.bare("update-ref", "refs/heads/main", foreign, first)
    last = vault.put("b.mcam", mcam(2))

    assert [c.commit for c in vault.repo.all_commits()] == [first, last]
    assert vault.repo.commits_since(first)[0].parent == foreign


def test_a_commit_with_broken_camvault_trailers_is_an_error_not_a_gap(vault: Vault) -> None:
    first = vault.put("a.mcam", mcam(1))
    broken = vault.bare(
        "commit-tree",
        f"{first}^{{tree}}",
        "-p",
        first,
        "-m",
        "hand-edited\n\nCamvault-File: a.mcam\nCamvault-Version: two",
    ).strip()
    vault.bare("update-ref", "refs/heads/main", broken, first)
    with pytest.raises(StorageError):
        vault.repo.all_commits()
