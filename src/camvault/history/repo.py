"""The vault's history: one commit per change on ``refs/heads/main`` of a bare repository.

Commits are written with pygit2 straight into the object database (no work tree, no index).
The tree is flat: every vault file at the root, plus ``.gitattributes`` marking the LFS
extensions. Every commit carries ``Camvault-*`` trailers, so the file index can be rebuilt
from git alone.

All methods block; run them in a thread. A ``VaultRepo`` may be used from different threads
one after the other, but never concurrently: the caller's single vault writer serializes it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import pygit2
from pygit2.enums import FileMode, Option, RepositoryOpenFlag

from camvault.errors import GitProgramFailed, NotFound, StorageError
from camvault.faults import checkpoint
from camvault.history.lfs import check_sha256, fsync_dir, makedirs_durable, pointer_bytes

MAIN_REF = "refs/heads/main"
EMAIL_DOMAIN = "camvault.invalid"
GITATTRIBUTES = ".gitattributes"

LOCK_TRAILER = "Camvault-Lock"
# A .link entry's master (its content names it too): a rebuild restores the link from it.
LINK_TRAILER = "Camvault-Link"
# The commit an imported version came from (``camvault import --from-git``): a re-run skips it.
SOURCE_TRAILER = "Camvault-Source"
_TRAILERS = (
    "Camvault-File",
    "Camvault-Action",
    "Camvault-Version",
    "Camvault-Revision",
    "Camvault-Sha256",
    "Camvault-Size",
)
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
# An extension becomes a gitattributes glob, so it must not carry glob or space characters.
_EXTENSION_RE = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED_NAMES = {".", "..", ".git", GITATTRIBUTES}


@dataclass(frozen=True)
class CommitInfo:
    """One vault change as recorded in a commit's trailers."""

    commit: str
    parent: str | None
    filename: str
    action: str
    version: int
    revision: str
    sha256: str
    size: int
    author: str
    message: str
    when: datetime
    # A check-in that kept its lock says so (trailer "Camvault-Lock: kept"), so that a
    # check-in recovered from git after a crash releases the lock exactly as it would have.
    lock_kept: bool = False
    source: str | None = None
    link_target: str | None = None


def _check_line(what: str, value: str) -> str:
    # A newline in a trailer value would let it forge extra trailers or message lines.
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"{what} must be a single line: {value!r}")
    if value != value.strip():
        raise ValueError(f"{what} must not start or end with whitespace: {value!r}")
    return value


def _check_commit_id(what: str, value: str) -> str:
    if not _COMMIT_RE.fullmatch(value):
        raise ValueError(f"{what} is not a full commit id: {value!r}")
    return value


def _check_filename(filename: str) -> str:
    _check_line("filename", filename)
    # The tree is flat and git fsck rejects these; names are validated upstream, this is the
    # last line of defence for the history of record.
    if not filename or "/" in filename or filename.lower() in _RESERVED_NAMES:
        raise ValueError(f"not a valid vault file name: {filename!r}")
    return filename


def _normalize_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for ext in extensions:
        bare = ext.removeprefix(".")
        if not _EXTENSION_RE.fullmatch(bare):
            raise ValueError(f"not a usable LFS extension: {ext!r}")
        out.add(bare.lower())
    return tuple(sorted(out))


def _extension(filename: str) -> str:
    # Whatever follows the last dot, as the `*.<ext>` glob in .gitattributes sees it.
    _, dot, ext = filename.rpartition(".")
    return ext if dot else ""


def _parse_trailers(commit: pygit2.Commit) -> CommitInfo | None:
    text = commit.raw_message.decode("utf-8", errors="replace").rstrip("\n")
    # We always append the trailers as the last paragraph, after exactly one blank line.
    body, sep, block = text.rpartition("\n\n")
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    if not sep or "Camvault-File" not in fields:
        return None
    missing = [key for key in _TRAILERS if key not in fields]
    try:
        if missing:
            raise ValueError(f"missing trailers {missing}")
        version = int(fields["Camvault-Version"])
        size = int(fields["Camvault-Size"])
        sha256 = check_sha256(fields["Camvault-Sha256"])
    except ValueError as exc:
        # Skipping it would silently drop a version from a rebuild; history must be whole.
        raise StorageError(f"commit {commit.id} has malformed Camvault trailers: {exc}") from exc
    parents = commit.parent_ids
    return CommitInfo(
        commit=str(commit.id),
        parent=str(parents[0]) if parents else None,
        filename=fields["Camvault-File"],
        action=fields["Camvault-Action"],
        version=version,
        revision=fields["Camvault-Revision"],
        sha256=sha256,
        size=size,
        author=commit.author.name,
        message=body,
        when=datetime.fromtimestamp(commit.author.time, UTC),
        lock_kept=fields.get(LOCK_TRAILER) == "kept",
        source=fields.get(SOURCE_TRAILER),
        link_target=fields.get(LINK_TRAILER),
    )


def _any_case(ext: str) -> str:
    """A gitattributes glob matching the extension in any letter case: mcam -> [mM][cC]..."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)


def git_program() -> str:
    """The path of the git program (StorageError if it is not installed)."""
    found = shutil.which("git")
    if found is None:
        raise StorageError("the git program is not installed; camvault needs it for text files")
    return found


def git_env(git_dir: Path) -> dict[str, str]:
    """The environment for a git subprocess on ``git_dir``: no system or user config."""
    return {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_DIR": str(git_dir),
    }


GIT_OBJECT_CACHE_BYTES = 4 * 1024 * 1024


class VaultRepo:
    """The bare ``vault.git`` repository and its ``main`` branch."""

    def __init__(self, repo: pygit2.Repository, lfs_extensions: Sequence[str]) -> None:
        self._repo = repo
        self.lfs_extensions = _normalize_extensions(lfs_extensions)

    @classmethod
    def open_or_init(cls, path: Path, lfs_extensions: Sequence[str]) -> Self:
        """Open the bare repository at ``path``, creating it (HEAD -> main) if missing."""
        # Process-wide libgit2 switch, read when a repository's odb and refdb are opened, so it
        # must be set before opening: without it an acknowledged commit may not survive a
        # power loss.
        pygit2.option(Option.ENABLE_FSYNC_GITDIR, 1)
        # libgit2 keeps every commit and tree it reads or writes in a per-process cache of
        # up to 256 MiB: a server writing a commit per check-in grew ~1 KiB per write until
        # then (measured with make soak). A few MiB hold the recent commits and trees that
        # the next write reads.
        pygit2.settings.cache_max_size(GIT_OBJECT_CACHE_BYTES)
        path = Path(path)
        try:
            if (path / "HEAD").exists() or (path / ".git").exists():
                # NO_SEARCH: never walk up and adopt some enclosing repository by accident.
                # A repo that exists but fails to open is an error, never re-initialized.
                repo = pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
            else:
                repo = pygit2.init_repository(path, bare=True, initial_head="main")
        except pygit2.GitError as exc:
            raise StorageError(f"cannot open the vault repository at {path}: {exc}") from exc
        if not repo.is_bare:
            raise StorageError(f"{path} is a git repository with a work tree, not a bare vault")
        return cls(repo, lfs_extensions)

    @property
    def path(self) -> Path:
        """The repository's directory."""
        return Path(self._repo.path)

    @property
    def head(self) -> str | None:
        """The commit id ``main`` points at, or None while it is unborn."""
        try:
            ref = self._repo.lookup_reference(MAIN_REF)
        except KeyError:
            return None
        target = ref.target
        if not isinstance(target, pygit2.Oid):
            raise StorageError(f"{MAIN_REF} is a symbolic reference to {target}")
        return str(target)

    def wants_lfs(self, filename: str) -> bool:
        """Tell whether ``.gitattributes`` routes this file through LFS (extension in any case)."""
        return _extension(filename).lower() in self.lfs_extensions

    def gitattributes(self) -> bytes:
        """The ``.gitattributes`` content every commit carries."""
        # Names are unique ignoring case and Windows users type A1.MCAM: match any case.
        lines = (
            f"*.{_any_case(ext)} filter=lfs diff=lfs merge=lfs -text\n"
            for ext in self.lfs_extensions
        )
        return "".join(lines).encode("ascii")

    def create_blob_from_file(self, path: Path, scratch: Path | None = None) -> str:
        """Store a file as a plain git blob, streamed from disk, and return its id.

        Done by ``git hash-object`` in a subprocess: libgit2 holds the GIL while it hashes
        and compresses, which would freeze the server's event loop for a large file, and a
        separate process never shares this object's repository handle with another thread.
        git writes into a private object directory under ``scratch`` (on the repository's
        filesystem; default the repository itself) and the finished object is then moved
        in: git leaves its temp file behind when it fails (a full disk) or is killed, and
        that must never be inside the repository, where only a ``git prune`` would find it.
        """
        quarantine = Path(tempfile.mkdtemp(prefix="objects-", dir=scratch or self.path))
        try:
            blob = self._hash_object(path, quarantine)
            written = quarantine / blob[:2] / blob[2:]
            if written.is_file():  # else the repository had it already
                dest = self.path / "objects" / blob[:2] / blob[2:]
                makedirs_durable(dest.parent)
                os.replace(written, dest)
                fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot store a blob: {exc}") from exc
        finally:
            shutil.rmtree(quarantine, ignore_errors=True)
        return blob

    def _hash_object(self, path: Path, objects: Path) -> str:
        env = {
            **git_env(self.path),
            "GIT_OBJECT_DIRECTORY": str(objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self.path / "objects"),
        }
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [
                    git_program(),
                    "-c",
                    "core.fsync=loose-object,pack",
                    "-c",
                    "core.fsyncMethod=fsync",
                    "hash-object",
                    "-w",
                    "--no-filters",
                    "--",
                    str(path),
                ],  # fmt: skip
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=3600,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StorageError(f"cannot run git to store a blob: {exc}") from exc
        if done.returncode != 0:
            raise GitProgramFailed(f"git hash-object failed: {done.stderr.strip()}")
        return _check_commit_id("blob id", done.stdout.strip())

    def commit_change(
        self,
        *,
        filename: str,
        action: str,
        version: int,
        revision: str,
        sha256: str,
        size: int,
        lfs: bool,
        blob_id: str | None,
        author: str,
        message: str,
        when: datetime,
        expected_head: str | None,
        keep_lock: bool = False,
        email: str | None = None,
        source: str | None = None,
        link_target: str | None = None,
    ) -> str:
        """Commit one change on ``main`` and move ``main`` from ``expected_head`` to it.

        ``email`` replaces the author's ``NAME@camvault.invalid`` (imported history keeps its
        own); ``source`` records the commit an imported version came from. Raises
        StorageError, leaving ``main`` untouched, if ``main`` is no longer at
        ``expected_head``.
        """
        _check_filename(filename)
        _check_line("action", action)
        _check_line("revision", revision)
        _check_line("author", author)
        check_sha256(sha256)
        if not action or any(ch.isspace() for ch in action):
            raise ValueError(f"not a valid action: {action!r}")
        if not author or "<" in author or ">" in author:
            raise ValueError(f"not a valid author name: {author!r}")
        if version < 1 or size < 0:
            raise ValueError(f"bad version {version} or size {size}")
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("when must be timezone-aware")
        if "\0" in message:
            raise ValueError("message must not contain NUL")
        if expected_head is not None:
            _check_commit_id("expected_head", expected_head)
        if email is not None:
            _check_line("email", email)
            if "<" in email or ">" in email:
                raise ValueError(f"not a valid author email: {email!r}")
        if source is not None:
            _check_commit_id("source", source)
        if link_target is not None:
            _check_filename(link_target)

        # Fail before writing objects when main has visibly moved; the ref CAS below still
        # guards the window between this check and the update.
        current = self.head
        if current != expected_head:
            raise StorageError(f"{MAIN_REF} is at {current}, expected {expected_head}")

        tree_id = self._build_tree(filename, action, sha256, size, lfs, blob_id, expected_head)
        address = f"{author}@{EMAIL_DOMAIN}" if email is None else email
        signature = pygit2.Signature(author, address, int(when.timestamp()), 0)
        full_message = self._message(
            filename, action, version, revision, sha256, size, message.strip()
        )
        if keep_lock:
            full_message += f"{LOCK_TRAILER}: kept\n"
        if source is not None:
            full_message += f"{SOURCE_TRAILER}: {source}\n"
        if link_target is not None:
            full_message += f"{LINK_TRAILER}: {link_target}\n"
        parents = [pygit2.Oid(hex=expected_head)] if expected_head else []
        try:
            commit_id = self._repo.create_commit(
                None, signature, signature, full_message, tree_id, parents
            )
        except (pygit2.GitError, OSError) as exc:  # libgit2's I/O failures are OSErrors
            raise StorageError(f"cannot write the commit for {filename}: {exc}") from exc
        checkpoint(f"{action}.commit_written")
        self._move_main(commit_id, expected_head)
        return str(commit_id)

    def _build_tree(
        self,
        filename: str,
        action: str,
        sha256: str,
        size: int,
        lfs: bool,
        blob_id: str | None,
        base: str | None,
    ) -> pygit2.Oid:
        repo = self._repo
        try:
            builder = repo.TreeBuilder(self._commit(base).tree) if base else repo.TreeBuilder()
            if action == "delete":
                if builder.get(filename) is None:
                    raise StorageError(f"cannot delete {filename}: not in {MAIN_REF}")
                builder.remove(filename)
            else:
                # A mismatch here would make a clone hand out pointer text instead of content
                # (or make git-lfs flag a raw blob), so the caller must agree with .gitattributes.
                if lfs != self.wants_lfs(filename):
                    raise ValueError(f"lfs={lfs} disagrees with .gitattributes for {filename}")
                if lfs:
                    if blob_id is not None:
                        raise ValueError("an LFS file takes no blob_id")
                    entry = repo.create_blob(pointer_bytes(sha256, size))
                else:
                    if blob_id is None:
                        raise ValueError("a plain file needs its blob_id")
                    entry = pygit2.Oid(hex=blob_id)
                    if repo.get(entry) is None or not isinstance(repo[entry], pygit2.Blob):
                        raise ValueError(f"{blob_id} is not a blob in the vault repository")
                builder.insert(filename, entry, FileMode.BLOB)
            self._sync_gitattributes(builder)
            return builder.write()
        except (pygit2.GitError, OSError) as exc:
            raise StorageError(f"cannot build the tree for {filename}: {exc}") from exc

    def _sync_gitattributes(self, builder: pygit2.TreeBuilder) -> None:
        wanted = self.gitattributes()
        current = builder.get(GITATTRIBUTES)
        if not wanted:
            if current is not None:
                builder.remove(GITATTRIBUTES)
            return
        if current is not None and self._repo[current.id].read_raw() == wanted:
            return
        builder.insert(GITATTRIBUTES, self._repo.create_blob(wanted), FileMode.BLOB)

    @staticmethod
    def _message(
        filename: str,
        action: str,
        version: int,
        revision: str,
        sha256: str,
        size: int,
        user_message: str,
    ) -> str:
        values = (filename, action, str(version), revision, sha256, str(size))
        trailers = "".join(
            f"{key}: {value}".rstrip() + "\n" for key, value in zip(_TRAILERS, values, strict=True)
        )
        return f"{user_message or f'{action} {filename}'}\n\n{trailers}"

    def _move_main(self, commit_id: pygit2.Oid, expected_head: str | None) -> None:
        repo = self._repo
        lost = f"{MAIN_REF} moved while committing; expected {expected_head}"
        if expected_head is None:
            try:
                # force=False: libgit2 creates the ref only if it does not exist yet.
                repo.create_reference_direct(MAIN_REF, commit_id, False)
            except pygit2.AlreadyExistsError as exc:
                raise StorageError(lost) from exc
            except (pygit2.GitError, OSError) as exc:
                raise StorageError(f"cannot create {MAIN_REF}: {exc}") from exc
            return
        try:
            ref = repo.lookup_reference(MAIN_REF)
        except KeyError as exc:
            raise StorageError(lost) from exc
        if ref.target != pygit2.Oid(hex=expected_head):
            raise StorageError(lost)
        try:
            # set_target passes the value read above as the old id, so libgit2 refuses the
            # update under the ref lock if anyone moved main in between.
            ref.set_target(commit_id)
        except (pygit2.GitError, OSError) as exc:
            raise StorageError(f"{lost}: {exc}") from exc

    def reset_main(self, commit: str, previous: str | None) -> None:
        """Take back ``commit``: move main from it to ``previous`` (delete it if None), for a
        change whose database transaction failed. StorageError if main is elsewhere."""
        try:
            ref = self._repo.lookup_reference(MAIN_REF)
            if ref.target != pygit2.Oid(hex=_check_commit_id("commit", commit)):
                raise StorageError(f"{MAIN_REF} is at {ref.target}, not at {commit}")
            if previous is None:
                ref.delete()
            else:
                # Compare-and-swap against the value just read, as in _move_main.
                ref.set_target(pygit2.Oid(hex=_check_commit_id("previous", previous)))
        except (KeyError, pygit2.GitError, OSError) as exc:
            raise StorageError(f"cannot move {MAIN_REF} back from {commit}: {exc}") from exc

    def clear_stale_ref_lock(self) -> bool:
        """Remove ``refs/heads/main.lock`` left by a process killed while moving main.

        Only call this while holding the vault's write lock: then no live writer can own
        the file, so it is stale. Returns whether one was removed.
        """
        lock = self.path / "refs" / "heads" / "main.lock"
        try:
            lock.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot clear a stale lock on {MAIN_REF}: {exc}") from exc
        return True

    def commits_since(self, base: str | None, *, head: str | None = None) -> list[CommitInfo]:
        """Vault commits on main's first-parent line after ``base`` (exclusive), oldest first.

        ``head`` walks back from that commit instead of main's current tip (a backup pins
        the commit it bundled while main keeps moving).
        """
        if base is not None:
            _check_commit_id("base", base)
        if head is not None:
            _check_commit_id("head", head)
        else:
            head = self.head
        out: list[CommitInfo] = []
        oid = head
        while oid is not None and oid != base:
            commit = self._commit(oid)
            info = _parse_trailers(commit)
            if info is not None:
                out.append(info)
            parents = commit.parent_ids
            oid = str(parents[0]) if parents else None
        if base is not None and oid != base:
            raise StorageError(f"{base} is not an ancestor of {MAIN_REF} ({head})")
        out.reverse()
        return out

    def all_commits(self) -> list[CommitInfo]:
        """Every vault commit on main, oldest first."""
        return self.commits_since(None)

    def read_blob(self, commit: str, filename: str) -> bytes:
        """The raw blob of ``filename`` at ``commit`` (the pointer text for LFS files)."""
        tree = self._commit(_check_commit_id("commit", commit)).tree
        if filename not in tree:
            raise NotFound(f"{filename} is not in commit {commit}")
        blob = self._repo[tree[filename].id]
        if not isinstance(blob, pygit2.Blob):
            raise StorageError(f"{filename} at {commit} is not a file")
        return blob.data

    def blob_id(self, commit: str, filename: str) -> str:
        """The id of ``filename``'s blob at ``commit`` (the pointer's, for LFS files)."""
        tree = self._commit(_check_commit_id("commit", commit)).tree
        if filename not in tree:
            raise NotFound(f"{filename} is not in commit {commit}")
        return str(tree[filename].id)

    def _commit(self, commit: str) -> pygit2.Commit:
        obj = self._repo.get(commit)
        if not isinstance(obj, pygit2.Commit):
            raise StorageError(f"commit {commit} is missing from the vault repository")
        return obj
