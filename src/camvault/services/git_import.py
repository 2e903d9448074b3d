"""Import a git repository's history of CAM files (``camvault import --from-git URL|PATH``).

The source is cloned bare, with the real git, into this instance's tmp dir under the data
dir, and ``git lfs fetch --all`` brings every LFS object its history references. The walk
follows the first-parent line of the source's HEAD (a merge counts as one change, against
its first parent), oldest first. Files are known by their base name, as in a folder import;
every commit that changes a file's content becomes one vault version with the commit's
author, date and message and a ``Camvault-Source: <commit>`` trailer. A re-run skips the
source commits already imported. Deleting a file in the source deletes it in the vault.

Names the vault rules refuse, refused content, a name at two paths with different content
and a name the vault already holds from elsewhere are reported, never imported silently.
Content is streamed (``git cat-file``) and hashed in chunks: memory stays bounded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

import pygit2
from pygit2.enums import DeltaStatus, FileMode, SortMode

from camvault.errors import BadRequest, LockedByOther, StorageError
from camvault.events.log import EventType, append, get_meta
from camvault.history.lfs import parse_pointer
from camvault.history.repo import git_program
from camvault.names import name_key, validate_name
from camvault.services.importer import (
    REFUSED,
    Done,
    Duplicate,
    ImportReport,
    NoProgress,
    Progress,
    Refusal,
    shown,
)
from camvault.services.uploads import ReceivedUpload, spool_to_tmp
from camvault.services.vault import VaultService, next_revision
from camvault.store.queries import file_row, version_row

CHUNK = 1024 * 1024
MAX_POINTER = 1024
_REGULAR = {int(FileMode.BLOB), int(FileMode.BLOB_EXECUTABLE)}
_NOT_FILES = {int(FileMode.LINK): "a symbolic link", int(FileMode.COMMIT): "a submodule"}
_MAX_AUTHOR = 64
# The repository's own configuration, not files of its history: never imported, not reported.
GIT_METADATA = frozenset({".gitattributes", ".gitignore", ".gitmodules", ".mailmap"})


class LfsMissing(BadRequest):
    """A version's Git LFS object is not available from the source: that version is refused."""

    code = "lfs_missing"


@dataclass(frozen=True)
class _Author:
    name: str
    email: str | None
    when: datetime
    message: str


@dataclass(frozen=True)
class _Change:
    """One file changed by one source commit: put ``oid`` at ``name``, or delete (oid None)."""

    commit: str
    key: str
    name: str
    path: str
    oid: str | None
    size: int
    lfs_oid: str | None
    author: _Author

    @property
    def source(self) -> str:
        return f"{self.commit[:12]}:{self.path}"


class GitImport:
    """One run of ``camvault import --from-git``."""

    def __init__(
        self, vault: VaultService, *, dry_run: bool = False, progress: Progress | None = None
    ) -> None:
        self.vault = vault
        self.progress = progress or NoProgress()
        self.report = ImportReport(dry_run=dry_run)
        self._blocked: set[str] = set()
        self._done: set[tuple[str, str]] = set()
        self._ours: set[str] = set()  # vault commits made from this source's commits

    def run(self, source: str) -> ImportReport:
        """Clone ``source`` and import its history (blocking)."""
        work = self.vault.tmp_dir / f"git-import-{secrets.token_hex(8)}"
        work.mkdir(parents=True)
        try:
            clone = work / "source.git"
            warning = _clone(source, clone)
            if warning:
                self.report.warnings.append(warning)
            repo = pygit2.Repository(str(clone))
            self._read_vault(repo)
            changes = list(self._plan(repo))
            self.progress.start(len(changes), sum(c.size for c in changes))
            for change in changes:
                self._apply(clone, change)
                self.progress.file_done()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.report

    # --- what the vault already has -------------------------------------------------------

    def _read_vault(self, source: pygit2.Repository) -> None:
        for info in self.vault.repo.all_commits():
            if info.source is not None and info.source in source:
                self._done.add((info.source, name_key(info.filename)))
                self._ours.add(info.commit)

    # --- planning: which file changes, commit by commit -----------------------------------

    def _plan(self, repo: pygit2.Repository) -> Iterator[_Change]:
        if repo.head_is_unborn:
            return
        walker = repo.walk(repo.head.target, SortMode.TOPOLOGICAL | SortMode.REVERSE)
        walker.simplify_first_parent()
        paths: dict[str, dict[str, str]] = {}  # name key -> {path: blob id}
        with _Sizes(Path(repo.path)) as sizes:
            for commit in walker:
                author = _author_of(commit)
                base = commit.parents[0].tree if commit.parents else None
                # No parent: diff against the empty tree (swap: the commit is the new side).
                diff = (
                    base.diff_to_tree(commit.tree)
                    if base is not None
                    else commit.tree.diff_to_tree(swap=True)
                )
                touched: dict[str, str] = {}  # name key -> a path of this commit holding it
                for delta in diff.deltas:
                    path = delta.new_file.path or delta.old_file.path
                    if PurePosixPath(path).name in GIT_METADATA:
                        continue
                    if delta.status != DeltaStatus.ADDED:
                        self._forget(paths, delta.old_file.path)
                    if delta.status != DeltaStatus.DELETED:
                        new = delta.new_file
                        name = self._valid_name(str(commit.id), new.path, int(new.mode))
                        if name is not None:
                            paths.setdefault(name_key(name), {})[new.path] = str(new.id)
                    touched[name_key(PurePosixPath(path).name)] = path
                for key, path in sorted(touched.items()):
                    at = paths.get(key, {})
                    change = self._change(repo, sizes, commit, author, key, path, at)
                    if change is not None:
                        yield change

    def _change(
        self,
        repo: pygit2.Repository,
        sizes: _Sizes,
        commit: pygit2.Commit,
        author: _Author,
        key: str,
        touched: str,
        at: dict[str, str],
    ) -> _Change | None:
        commit_id = str(commit.id)
        if not at:
            # Gone from the tree (or never valid): a delete, if the vault has it from us.
            name = PurePosixPath(touched).name
            return _Change(commit_id, key, name, touched, None, 0, None, author)
        path = sorted(at)[0]
        if len(at) > 1:
            sources = tuple(shown(f"{commit_id[:12]}:{p}") for p in sorted(at))
            identical = len(set(at.values())) == 1
            name = PurePosixPath(path).name
            self.report.duplicates.append(Duplicate(shown(name), sources, identical))
            if not identical:
                return None
        oid = at[path]
        size = sizes.size(oid)
        lfs_oid = None
        if size <= MAX_POINTER:
            blob = repo[oid]
            pointer = parse_pointer(blob.data) if isinstance(blob, pygit2.Blob) else None
            if pointer is not None:
                lfs_oid, size = pointer
        name = PurePosixPath(path).name
        return _Change(commit_id, key, name, path, oid, size, lfs_oid, author)

    def _valid_name(self, commit: str, path: str, mode: int) -> str | None:
        name = PurePosixPath(path).name
        source = f"{commit[:12]}:{path}"
        if mode not in _REGULAR:
            what = _NOT_FILES.get(mode, "not a regular file")
            self._refuse(source, "not_a_file", what)
            return None
        try:
            return validate_name(name, self.vault.rules)
        except BadRequest as exc:
            self._refuse(source, exc.code, exc.message)
            return None

    @staticmethod
    def _forget(paths: dict[str, dict[str, str]], path: str) -> None:
        key = name_key(PurePosixPath(path).name)
        at = paths.get(key)
        if at is not None:
            at.pop(path, None)
            if not at:
                del paths[key]

    def _refuse(self, source: str, code: str, reason: str) -> None:
        self.report.refused.append(Refusal(shown(source), code, reason))

    # --- applying one change --------------------------------------------------------------

    def _apply(self, clone: Path, change: _Change) -> None:
        if (change.commit, change.key) in self._done:
            self.report.already.append(Done(shown(change.name), change.source, 0, change.size))
            self.progress.advance(change.size)
            return
        if change.key in self._blocked:  # reported once, when it was blocked
            self.progress.advance(change.size)
            return
        if change.oid is None:
            self._delete(change)
            return
        if change.size == 0 or change.size > self.vault.settings.max_upload_bytes:
            try:  # refused by its size alone: no need to copy it first
                self.vault.check_new_file(change.name, b"", change.size)
            except REFUSED as exc:
                self._refuse(change.source, exc.code, exc.message)
                return
        try:
            upload = self._fetch(clone, change, change.oid)
        except BadRequest as exc:
            self._refuse(change.source, exc.code, exc.message)
            return
        try:
            self.vault.check_new_file(change.name, upload.head, upload.size)
            if self.report.dry_run:
                self._dry_put(change, upload.size)
                return
            blob_id = self.vault.stage_content(change.name, upload)
            self._commit(change, upload, blob_id)
        except REFUSED as exc:
            self._refuse(change.source, exc.code, exc.message)
        finally:
            upload.discard()

    def _dry_put(self, change: _Change, size: int) -> None:
        with self.vault.db.read() as conn:
            row = file_row(conn, change.key)
            if row is not None and not self._owned(conn, row):
                self._block(change, "the vault already has this file, not from this repository")
                return
        self.report.imported.append(Done(shown(change.name), change.source, 0, size))

    def _fetch(self, clone: Path, change: _Change, oid: str) -> ReceivedUpload:
        """The version's bytes in a temp file (LFS pointers resolved), hashed and fsync'd."""
        if change.lfs_oid is not None:
            lfs_path = clone / "lfs" / "objects" / change.lfs_oid[:2] / change.lfs_oid[2:4]
            lfs_path = lfs_path / change.lfs_oid
            if not lfs_path.is_file():
                raise LfsMissing(
                    f"its Git LFS object {change.lfs_oid} is not available from the source "
                    "(is git-lfs installed, and does the source's LFS server have it?)"
                )
            with lfs_path.open("rb") as fh:
                upload = self._spool(fh, change.name)
            if upload.sha256 != change.lfs_oid or upload.size != change.size:
                upload.discard()
                raise BadRequest(f"its Git LFS object {change.lfs_oid} is corrupt in the source")
            return upload
        with subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [git_program(), "cat-file", "blob", oid],
            env=_env(clone),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:
            stdout: IO[bytes] = proc.stdout  # type: ignore[assignment]
            upload = self._spool(stdout, change.name)
            if proc.wait() != 0:
                upload.discard()
                raise StorageError(f"git cat-file could not read {change.source}")
        return upload

    def _spool(self, stream: IO[bytes], name: str) -> ReceivedUpload:
        chunks = iter(lambda: stream.read(CHUNK), b"")
        return spool_to_tmp(chunks, self.vault.tmp_dir, name, on_chunk=self.progress.advance)

    def _owned(self, conn: Any, row: Any) -> bool:
        """Whether the vault's newest version of this file came from this source."""
        newest = version_row(conn, row.id, row.version)
        return newest is not None and newest.commit in self._ours

    def _commit(self, change: _Change, upload: ReceivedUpload, blob_id: str | None) -> None:
        a = change.author
        with self.vault.db.write() as conn:
            self.vault.catch_up(conn)
            row = file_row(conn, change.key, include_deleted=True)
            live = file_row(conn, change.key) is not None
            if row is not None and live and not self._owned(conn, row):
                self._block(change, "the vault already has this file, not from this repository")
                return
            if row is not None and live and row.sha256 == upload.sha256:
                # Moved, re-added or mode-changed with the same bytes: nothing new to record.
                self.report.already.append(
                    Done(shown(row.filename), change.source, row.version, upload.size)
                )
                return
            if row is not None and row.lock_user is not None:
                self._refuse(change.source, "locked", f"checked out by {row.lock_user}")
                return
            if row is None:
                version, revision = 1, "1.0"
            else:
                version = row.version + 1
                revision = next_revision(row.revision, major=not live)
            record = self.vault.commit_version(
                conn,
                author=a.name,
                name=change.name,
                action="import",
                version=version,
                revision=revision,
                sha256=upload.sha256,
                size=upload.size,
                blob_id=blob_id,
                message=a.message,
                description="" if row is None else row.description,
                file_id=None if row is None else row.id,
                when=a.when,
                email=a.email,
                source=change.commit,
            )
            self._ours.add(str(get_meta(conn, "git_head")))
            append(
                conn,
                EventType.FILE_UPLOADED,
                actor=a.name,
                filename=change.name,
                version=version,
                data={"file": record, "message": a.message, "action": "import"},
            )
        self.report.imported.append(Done(shown(change.name), change.source, version, upload.size))

    def _delete(self, change: _Change) -> None:
        a = change.author
        with self.vault.db.write() as conn:
            self.vault.catch_up(conn)
            row = file_row(conn, change.key)
            if row is None:
                return
            if not self._owned(conn, row):
                self._block(change, "the vault already has this file, not from this repository")
                return
            if self.report.dry_run:
                self.report.deleted.append(Done(shown(row.filename), change.source, 0, 0))
                return
            try:
                self.vault.commit_delete(
                    conn,
                    row,
                    author=a.name,
                    message=a.message,
                    when=a.when,
                    email=a.email,
                    source=change.commit,
                )
            except LockedByOther as exc:
                self._refuse(change.source, exc.code, exc.message)
                return
        self.report.deleted.append(Done(shown(row.filename), change.source, row.version + 1, 0))

    def _block(self, change: _Change, reason: str) -> None:
        self._blocked.add(change.key)
        self._refuse(change.source, "exists", f"{reason}; none of its versions were imported")


def _author_of(commit: pygit2.Commit) -> _Author:
    """Author, date and message of a source commit, made safe for a vault commit."""
    raw = commit.author
    name = "".join(c for c in raw.name if c not in "<>\r\n\0").strip()[:_MAX_AUTHOR].strip()
    email = "".join(c for c in raw.email if c not in "<>\r\n\0").strip() or None
    message = commit.raw_message.decode("utf-8", errors="replace")
    message = "".join(c for c in message if c in "\n\t" or ord(c) >= 32 and c != "\x7f")
    return _Author(
        name=name or "unknown",
        email=email,
        when=datetime.fromtimestamp(raw.time, UTC),
        message=_without_camvault_trailers(message.strip()),
    )


def _without_camvault_trailers(message: str) -> str:
    """Drop a source commit's own Camvault trailers (a vault imported from another vault):
    the vault adds its own, and two blocks would confuse a rebuild."""
    body, sep, block = message.rpartition("\n\n")
    lines = block.splitlines()
    if sep and lines and all(line.startswith("Camvault-") for line in lines):
        return body.rstrip()
    return message


def _env(git_dir: Path | None = None) -> dict[str, str]:
    # The user's own git config stays (credential helpers for private remotes); prompts
    # never: a command-line import must fail, not hang, without credentials.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1"}
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    return env


def _redact(text: str, source: str) -> str:
    """Never print a password or token given inside the URL."""
    userinfo = urlsplit(source).netloc.rpartition("@")[0] if "://" in source else ""
    return text.replace(userinfo, "***") if userinfo else text


def _run(args: list[str], source: str, *, git_dir: Path | None = None, check: bool = True) -> str:
    """Run git; a failure raises BadRequest (``check``) or is returned as its message."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git_program(), *args],
            env=_env(git_dir),
            capture_output=True,
            text=True,
            check=False,
            timeout=24 * 3600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(_redact(f"cannot run git: {exc}", source)) from exc
    if done.returncode == 0:
        return ""
    said = _redact(done.stderr.strip() or done.stdout.strip(), source)
    command = " ".join(args[:2] if args[0] == "lfs" else args[:1])
    message = f"git {command} of {_redact(source, source)} failed: {said}"
    if check:
        raise BadRequest(message)
    return message


def _clone(source: str, dest: Path) -> str:
    """A bare clone of ``source`` plus every LFS object its history references; returns a
    warning when LFS content could not all be fetched (those versions are then refused)."""
    local = Path(source)
    url = local.resolve().as_uri() if "://" not in source and local.exists() else source
    _run(["clone", "--bare", "--quiet", "--", url, str(dest)], source)
    if not _has_git_lfs():
        return "git-lfs is not installed: versions stored in Git LFS cannot be imported"
    return _run(["lfs", "fetch", "--all", "origin"], source, git_dir=dest, check=False)


def _has_git_lfs() -> bool:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git_program(), "lfs", "version"], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class _Sizes:
    """Blob sizes from one ``git cat-file --batch-check`` process (no blob is loaded)."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Sizes:
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [git_program(), "cat-file", "--batch-check"],
            env=_env(self.git_dir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()

    def size(self, oid: str) -> int:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("_Sizes used outside its with block")
        proc.stdin.write(oid.encode("ascii") + b"\n")
        proc.stdin.flush()
        answer = proc.stdout.readline().decode("ascii").split()
        if len(answer) != 3 or answer[1] != "blob":
            raise StorageError(f"git cat-file cannot read blob {oid}")
        return int(answer[2])
