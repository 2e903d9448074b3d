"""Bring a folder tree of CAM files into the vault (``camvault import PATH``).

Each valid file becomes a new vault file through the upload path itself: the same checks
(``VaultService.check_new_file``: name rules, empty, size limit, content signature), the same
staging into the content store and the same write transaction (``commit_upload``), one git
commit per file. Nothing is skipped silently: invalid names, refused content, names found
twice in the tree and names the vault already holds with other content are all reported.
A re-run after an interruption skips what is already there (same name, same sha256).

The database write transaction is the lock between processes, so a running server keeps
serving while an import runs; its hub finds the imported files in the event log.
Blocking throughout: call it from a thread or a command-line process.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import select

from camvault.errors import BadRequest, Exists, NotFound, TooLarge
from camvault.names import name_key, validate_name
from camvault.services.auth import Role, User
from camvault.services.uploads import HEAD_BYTES, ReceivedUpload, spool_to_tmp
from camvault.services.vault import VaultService
from camvault.store.db import Database
from camvault.store.models import users
from camvault.store.queries import file_row

CHUNK = 1024 * 1024
# What an upload would answer 400 or 413 to: the file is refused, the import goes on.
REFUSED = (BadRequest, TooLarge)


class Progress(Protocol):
    """Where an import reports how far it got (the CLI draws a progress bar)."""

    def start(self, files: int, total_bytes: int | None) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self) -> None: ...


class NoProgress:
    """A Progress that shows nothing."""

    def start(self, files: int, total_bytes: int | None) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def file_done(self) -> None:
        return None


@dataclass(frozen=True)
class Done:
    """A file imported (or already there): its vault name, where it came from, its version."""

    name: str
    source: str
    version: int
    size: int


@dataclass(frozen=True)
class Refusal:
    """Something not imported, and why (``code`` is the error code an upload would get)."""

    source: str
    code: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    """A name found more than once in the source (names ignore case).

    ``identical``: every copy has the same bytes, so the first was imported; otherwise none was.
    """

    name: str
    sources: tuple[str, ...]
    identical: bool


@dataclass
class ImportReport:
    """The summary of an import: what came in, what was already there, what was refused."""

    dry_run: bool = False
    imported: list[Done] = field(default_factory=list)
    already: list[Done] = field(default_factory=list)
    deleted: list[Done] = field(default_factory=list)  # git imports: deleted in the source
    refused: list[Refusal] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether something was left out (the CLI then exits non-zero)."""
        return bool(self.refused) or any(not d.identical for d in self.duplicates)


def shown(text: str) -> str:
    """A path or name safe to print: undecodable bytes from the file system as escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def find_user(db: Database, username: str) -> User:
    """The account imported versions are credited to (NotFound or BadRequest otherwise)."""
    with db.read() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        raise NotFound(
            f"no user named {username!r}; create it (camvault user add) or pick one with --user"
        )
    if row.disabled:
        raise BadRequest(f"the user {username!r} is disabled")
    return User(id=int(row.id), username=row.username, role=Role(row.role))


@dataclass(frozen=True)
class _Candidate:
    path: Path
    source: str  # path relative to the import root, as shown in reports
    name: str
    size: int


class FolderImport:
    """One run of ``camvault import PATH``."""

    def __init__(
        self,
        vault: VaultService,
        user: User,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.vault = vault
        self.user = user
        self.progress = progress or NoProgress()
        self.report = ImportReport(dry_run=dry_run)

    def run(self, root: Path) -> ImportReport:
        """Import every file under ``root`` (or ``root`` itself if it is a file)."""
        if not root.exists():
            raise NotFound(f"{shown(str(root))} does not exist")
        by_key: dict[str, list[_Candidate]] = {}
        for candidate in self._scan(root):
            by_key.setdefault(name_key(candidate.name), []).append(candidate)
        todo: list[_Candidate] = []
        for group in by_key.values():
            if len(group) == 1:
                todo.append(group[0])
                continue
            identical = len({_sha256_of(c.path) for c in group}) == 1
            sources = tuple(c.source for c in group)
            self.report.duplicates.append(Duplicate(group[0].name, sources, identical))
            if identical:
                todo.append(group[0])
        todo.sort(key=lambda c: c.source)
        self.progress.start(len(todo), sum(c.size for c in todo))
        for candidate in todo:
            self._import_one(candidate)
            self.progress.file_done()
        return self.report

    # --- finding the files ----------------------------------------------------------------

    def _scan(self, root: Path) -> Iterator[_Candidate]:
        if not root.is_dir():
            yield from self._consider(root, root.name, root.parent)
            return

        def unreadable(exc: OSError) -> None:
            # os.walk skips a folder it cannot list unless told: report it instead.
            where = Path(exc.filename or root).relative_to(root).as_posix()
            self._refuse(where, "unreadable", f"cannot list this folder: {exc.strerror}")

        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
            dirnames.sort()
            here = Path(dirpath)
            for dirname in list(dirnames):
                if (here / dirname).is_symlink():
                    # os.walk does not descend into it; say so rather than skip it silently.
                    source = (here / dirname).relative_to(root).as_posix()
                    self._refuse(source, "not_followed", "a symbolic link to a folder")
            for filename in sorted(filenames):
                yield from self._consider(here / filename, filename, root)

    def _consider(self, path: Path, name: str, root: Path) -> Iterator[_Candidate]:
        source = path.relative_to(root).as_posix()
        try:
            info = path.lstat()
        except OSError as exc:
            self._refuse(source, "unreadable", f"cannot read it: {exc.strerror}")
            return
        if path.is_symlink():
            self._refuse(source, "symlink", "a symbolic link, not a file")
            return
        if not path.is_file():
            self._refuse(source, "not_a_file", "not a regular file")
            return
        try:
            validate_name(name, self.vault.rules)
        except BadRequest as exc:
            self._refuse(source, exc.code, exc.message)
            return
        yield _Candidate(path, source, name, info.st_size)

    def _refuse(self, source: str, code: str, reason: str) -> None:
        self.report.refused.append(Refusal(shown(source), code, reason))

    # --- one file -------------------------------------------------------------------------

    def _import_one(self, c: _Candidate) -> None:
        try:
            with c.path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
                size = os.fstat(fh.fileno()).st_size
                try:
                    self.vault.check_new_file(c.name, head, size)
                except REFUSED as exc:
                    self._refuse(c.source, exc.code, exc.message)
                    return
                existing = self._existing(c.name)
                if existing is not None:
                    self._compare(c, fh, head, size, existing)
                    return
                if self.report.dry_run:
                    self.progress.advance(size)
                    self.report.imported.append(Done(shown(c.name), c.source, 1, size))
                    return
                upload = self._copy(fh, head, c.name)
        except OSError as exc:
            self._refuse(c.source, "unreadable", f"cannot read it: {exc.strerror}")
            return
        try:
            self._commit(c, upload)
        finally:
            upload.discard()

    def _existing(self, name: str) -> tuple[int, int, str] | None:
        with self.vault.db.read() as conn:
            row = file_row(conn, name_key(name))
        return None if row is None else (row.version, row.size, row.sha256)

    def _compare(
        self, c: _Candidate, fh: BinaryIO, head: bytes, size: int, existing: tuple[int, int, str]
    ) -> None:
        """The vault has this name: the same bytes are done, other bytes are a conflict."""
        version, vault_size, vault_sha = existing
        same = False
        if vault_size == size:
            digest = hashlib.sha256(head)
            self.progress.advance(len(head))
            for chunk in _chunks(fh):
                digest.update(chunk)
                self.progress.advance(len(chunk))
            same = digest.hexdigest() == vault_sha
        else:
            self.progress.advance(size)
        if same:
            self.report.already.append(Done(shown(c.name), c.source, version, size))
            return
        self._refuse(
            c.source,
            "exists",
            f"the vault already has {shown(c.name)} (version {version}) with other content; "
            "not overwritten (check it out and in to make a new version)",
        )

    def _copy(self, fh: BinaryIO, head: bytes, name: str) -> ReceivedUpload:
        """Copy the rest of the file into the instance's tmp dir, hashing as it goes."""
        return spool_to_tmp(
            _chunks(fh, first=head), self.vault.tmp_dir, name, on_chunk=self.progress.advance
        )

    def _commit(self, c: _Candidate, upload: ReceivedUpload) -> None:
        try:
            # Again on the copy: the file may have changed while it was read.
            name = self.vault.check_new_file(c.name, upload.head, upload.size)
            blob_id = self.vault.stage_content(name, upload)
            record = self.vault.commit_upload(
                self.user, name, upload, blob_id, "", f"Import {c.source}", action="import"
            )
        except Exists:
            # Someone (a server's user, another import) added the name meanwhile.
            existing = self._existing(c.name)
            if existing is not None and existing[2] == upload.sha256:
                self.report.already.append(Done(shown(c.name), c.source, existing[0], upload.size))
            else:
                self._refuse(c.source, "exists", "the vault got a file of that name meanwhile")
            return
        except REFUSED as exc:
            self._refuse(c.source, exc.code, exc.message)
            return
        self.report.imported.append(
            Done(shown(record["filename"]), c.source, int(record["version"]), upload.size)
        )


def _chunks(fh: BinaryIO, first: bytes = b"") -> Iterator[bytes]:
    if first:
        yield first
    while chunk := fh.read(CHUNK):
        yield chunk


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in _chunks(fh):
            digest.update(chunk)
    return digest.hexdigest()
