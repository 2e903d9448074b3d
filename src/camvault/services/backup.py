"""``camvault backup``: a consistent copy of a running vault in one directory.

The parts are taken in this order, each one a superset of what the previous one needs:

1. the database, dumped from ONE snapshot transaction (portable JSON lines, any backend);
2. git ``main`` as a bundle: main only moves forward and a commit is written before the
   database transaction that records it, so every commit the snapshot knows is in it;
3. the content objects named by the bundled history's trailers: content is fsync'd into the
   store before its commit, so every one of them exists.

A restore loads the snapshot and replays the commits made after it (``catch_up``), exactly
as a start after a crash does. Everything is written into ``DEST.partial`` and renamed to
``DEST`` only when complete, with ``manifest.json`` (checksums of every part) written last.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
from sqlalchemy import Connection, Table, func, select, text

from camvault.errors import BackupError
from camvault.events.log import get_meta
from camvault.history.lfs import ContentStore
from camvault.history.repo import MAIN_REF, VaultRepo
from camvault.settings import Settings
from camvault.store.db import Database, alembic_config
from camvault.store.dump import write_dump
from camvault.store.models import metadata

FORMAT_NAME = "camvault-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.jsonl.gz"
BUNDLE = "vault.bundle"
OBJECT_LIST = "lfs-objects.txt"
OBJECTS_DIR = "lfs/objects"
# Present while a backup or restore is being written; such a directory is never complete.
PARTIAL_MARKER = ".camvault-partial"
CHUNK = 1024 * 1024
# Sessions stay out: a restored vault is a new deployment and every user logs in again, so
# a token that was valid when the backup was taken (or stolen since) opens nothing.
EXCLUDED_TABLES = frozenset({"sessions"})


class Progress(Protocol):
    """Where a long operation reports how far it got (the CLI draws a rich progress bar)."""

    def stage(self, description: str, total: int | None, unit: str) -> None: ...

    def advance(self, amount: int) -> None: ...


class NoProgress:
    """Reports nothing."""

    def stage(self, description: str, total: int | None, unit: str) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    seconds: float
    commits: int
    objects: int
    rows: int


def backed_up_tables() -> list[Table]:
    """The tables a backup holds, parents before children."""
    return [table for table in metadata.sorted_tables if table.name not in EXCLUDED_TABLES]


def head_revision() -> str:
    """The newest Alembic revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no Alembic revisions are packaged")
    return head


def camvault_version() -> str:
    return package_version("camvault")


# --- small file helpers shared with restore ---------------------------------------------


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: Path) -> None:
    """Create ``path``, and each missing parent, readable by the owner only."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode is filtered by the umask, which may not be private
        os.chmod(directory, 0o700)


def private_file(path: Path) -> IO[bytes]:
    """Create a new file only the owner can read (fails if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def object_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def tree_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.bytes += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


@contextmanager
def staged_dir(final: Path, what: str) -> Iterator[Path]:
    """A private ``final.partial`` directory that becomes ``final`` only if the block succeeds.

    Left-overs of an interrupted run (they carry the partial marker) are cleared first;
    any failure removes the staging directory, so ``final`` is complete or absent.
    """
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        if not (partial / PARTIAL_MARKER).exists():
            raise BackupError(f"{partial} exists and is not an interrupted {what}; move it away")
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir(mode=0o700)
    os.chmod(partial, 0o700)
    (partial / PARTIAL_MARKER).touch(mode=0o600)
    try:
        yield partial
        (partial / PARTIAL_MARKER).unlink()
        fsync_dir(partial)
        # rename() replaces an empty directory, so an empty ``final`` is fine too.
        os.rename(partial, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def git_env(git_dir: Path) -> dict[str, str]:
    """git reading no user or system config, working on ``git_dir``."""
    return {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_DIR": str(git_dir),
        "GIT_TERMINAL_PROMPT": "0",
    }


def run_git(git_dir: Path, *args: str, config: tuple[str, ...] = ()) -> str:
    """Run ``git -c CONFIG... ARGS`` on ``git_dir``; BackupError if it fails."""
    git = shutil.which("git")
    if git is None:
        raise BackupError("the git program is not installed")
    options = [part for item in config for part in ("-c", item)]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [git, *options, *args],
            env=git_env(git_dir),
            capture_output=True,
            text=True,
            check=False,
            timeout=6 * 3600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"cannot run git {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BackupError(f"git {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


# --- the backup -------------------------------------------------------------------------


def create_backup(settings: Settings, dest: Path, progress: Progress | None = None) -> BackupResult:
    """Write a complete backup of the vault in ``settings`` to the new directory ``dest``."""
    progress = progress or NoProgress()
    started = time.monotonic()
    dest = Path(dest).absolute()
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"{dest} already exists; a backup goes into a new directory")
    if not (settings.repo_path / "HEAD").is_file():
        raise BackupError(f"no vault repository at {settings.repo_path}")
    if not settings.is_postgres and not settings.db_path.is_file():
        raise BackupError(f"no camvault database at {settings.db_path}")
    db = Database(settings.sqlalchemy_url(), sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with staged_dir(dest, "backup") as out:
            database = _dump_database(db, out, progress)
            git = _bundle(settings.repo_path, out, progress)
            lfs = _copy_objects(settings, git.pop("shas"), out, progress)
            manifest = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "camvault_version": camvault_version(),
                "created_at": datetime.now(UTC).isoformat(),
                "source_backend": "postgresql" if settings.is_postgres else "sqlite",
                "database": database,
                "git": git,
                "lfs": lfs,
            }
            with private_file(out / MANIFEST) as fh:
                fh.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        db.dispose()
    return BackupResult(
        path=dest,
        bytes=tree_size(dest),
        seconds=time.monotonic() - started,
        commits=int(git["commits"]),
        objects=int(lfs["objects"]),
        rows=sum(database["rows"].values()),
    )


def _dump_database(db: Database, out: Path, progress: Progress) -> dict[str, Any]:
    """Dump the backed-up tables from one snapshot, with the schema revision and git head."""
    tables = backed_up_tables()
    with db.read() as conn:
        if not db.is_sqlite:
            conn.execute(text("SET TRANSACTION READ ONLY"))
        revision = _revision(conn)
        if revision != head_revision():
            raise BackupError(
                f"the database is at schema revision {revision}, this camvault expects "
                f"{head_revision()}: back it up with the camvault version that serves it"
            )
        total = sum(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in tables
        )
        progress.stage("database", total, "rows")
        git_head = get_meta(conn, "git_head")
        with private_file(out / DUMP) as raw:
            hashing = _HashingWriter(raw)
            # mtime=0: the same snapshot gives the same bytes.
            with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
                rows = write_dump(conn, gz, tables, progress.advance)
            raw.flush()
            os.fsync(raw.fileno())
    return {
        "file": DUMP,
        "sha256": hashing.digest.hexdigest(),
        "bytes": hashing.bytes,
        "alembic_revision": revision,
        "git_head": git_head,
        "rows": rows,
    }


def _revision(conn: Connection) -> str | None:
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return None if value is None else str(value)


def _bundle(repo_path: Path, out: Path, progress: Progress) -> dict[str, Any]:
    """Bundle main as it is now; returns the part's description and the content it names."""
    progress.stage("git history", None, "")
    repo = VaultRepo.open_or_init(repo_path, ())
    if repo.head is None:
        return {"file": None, "head": None, "commits": 0, "shas": {}}
    bundle = out / BUNDLE
    run_git(repo_path, "bundle", "create", "--quiet", str(bundle), MAIN_REF)
    os.chmod(bundle, 0o600)
    heads = run_git(repo_path, "bundle", "list-heads", str(bundle), MAIN_REF).split()
    if len(heads) != 2 or heads[1] != MAIN_REF:
        raise BackupError(f"the bundle does not hold {MAIN_REF}: {heads}")
    head = heads[0]
    commits = repo.commits_since(None, head=head)
    # Every version's bytes are in the content store, LFS type or not (downloads read them
    # there), so the trailers, not the LFS pointers, say which objects a restore needs.
    shas = {info.sha256: info.size for info in commits}
    with bundle.open("rb") as fh:
        os.fsync(fh.fileno())
    return {
        "file": BUNDLE,
        "sha256": file_sha256(bundle),
        "bytes": bundle.stat().st_size,
        "head": head,
        "commits": len(commits),
        "shas": shas,
    }


def _copy_objects(
    settings: Settings, shas: dict[str, int], out: Path, progress: Progress
) -> dict[str, Any]:
    """Copy each content object, checking its sha256 and size on the way."""
    store = ContentStore(settings.repo_path / "lfs" / "objects", settings.tmp_path)
    root = out / OBJECTS_DIR
    private_dir(root)
    progress.stage("content", sum(shas.values()), "bytes")
    for sha256, size in sorted(shas.items()):
        target = object_path(root, sha256)
        private_dir(target.parent)
        try:
            source = store.open(sha256)
        except FileNotFoundError as exc:
            raise BackupError(f"content object {sha256} is missing from the vault") from exc
        with source, private_file(target) as fh:
            copy_verified(source, fh, sha256, size, progress)
    listing = "".join(f"{sha} {size}\n" for sha, size in sorted(shas.items())).encode()
    with private_file(out / OBJECT_LIST) as fh:
        fh.write(listing)
        fh.flush()
        os.fsync(fh.fileno())
    for directory in {object_path(root, sha).parent for sha in shas}:
        fsync_dir(directory)
    return {
        "list": OBJECT_LIST,
        "list_sha256": hashlib.sha256(listing).hexdigest(),
        "objects": len(shas),
        "bytes": sum(shas.values()),
    }


def copy_verified(
    source: IO[bytes], target: IO[bytes], sha256: str, size: int, progress: Progress
) -> None:
    """Copy in bounded chunks; raise BackupError unless the bytes hash to ``sha256``/``size``."""
    digest = hashlib.sha256()
    copied = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        target.write(chunk)
        copied += len(chunk)
        progress.advance(len(chunk))
    if digest.hexdigest() != sha256 or copied != size:
        raise BackupError(
            f"content object {sha256} is damaged: {copied} bytes hashing to "
            f"{digest.hexdigest()}, expected {size} bytes"
        )
    target.flush()
    os.fsync(target.fileno())
