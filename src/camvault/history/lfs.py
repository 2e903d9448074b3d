"""Git LFS pointers and the content store that holds each distinct file body once.

The store uses the Git LFS on-disk layout (``objects/aa/bb/<sha256>``) inside the bare
repository, so a ``git clone`` with git-lfs installed finds the objects without any server.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

POINTER_SPEC = "https://git-lfs.github.com/spec/v1"

# Git LFS refuses to treat anything this large as a pointer; so do we.
_MAX_POINTER_SIZE = 1024
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


def check_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits, else raise ValueError."""
    # fullmatch also refuses a trailing newline, which a `$` anchor would let through.
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return sha256


def pointer_bytes(sha256: str, size: int) -> bytes:
    """Return the Git LFS pointer file for an object of this sha256 and size."""
    check_sha256(sha256)
    if size < 0:
        raise ValueError(f"negative size: {size}")
    return f"version {POINTER_SPEC}\noid sha256:{sha256}\nsize {size}\n".encode("ascii")


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    """Return ``(sha256, size)`` if ``data`` is a Git LFS pointer, else None."""
    if len(data) > _MAX_POINTER_SIZE or not data.endswith(b"\n"):
        return None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text[:-1].split("\n")
    if lines[0] != f"version {POINTER_SPEC}":
        return None
    fields: dict[str, str] = {}
    keys: list[str] = []
    for line in lines[1:]:
        key, sep, value = line.partition(" ")
        if not sep or not key or key in fields:
            return None
        fields[key] = value
        keys.append(key)
    # The spec requires the keys after `version` to be sorted; anything else is not a pointer.
    if keys != sorted(keys):
        return None
    oid = fields.get("oid", "")
    size = fields.get("size", "")
    if not oid.startswith("sha256:") or not _SIZE_RE.fullmatch(size):
        return None
    sha256 = oid.removeprefix("sha256:")
    if not _SHA256_RE.fullmatch(sha256):
        return None
    return sha256, int(size)


def fsync_dir(path: Path) -> None:
    # A rename or mkdir is only durable once the directory holding the new entry is synced.
    if os.name == "nt":  # Windows cannot open a directory for fsync; NTFS journals metadata.
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: Path) -> None:
    """Create ``path`` and any missing parents, syncing each parent that gained an entry."""
    if path.is_dir():
        return
    makedirs_durable(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        # Another writer created it first; it still needs the parent synced below, which is
        # harmless to repeat.
        pass
    fsync_dir(path.parent)


class ContentStore:
    """Content-addressed file bodies under ``objects_dir`` in the Git LFS layout.

    ``tmp_dir`` must be on the same filesystem as ``objects_dir`` so that adopting a
    finished temp file is an atomic rename.
    """

    def __init__(self, objects_dir: Path, tmp_dir: Path) -> None:
        self.objects_dir = Path(objects_dir)
        self.tmp_dir = Path(tmp_dir)

    def path_for(self, sha256: str) -> Path:
        """Return where the object with this sha256 lives (ValueError for a malformed sha)."""
        check_sha256(sha256)
        return self.objects_dir / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        """Tell whether the object is stored."""
        return self.path_for(sha256).is_file()

    def adopt(self, tmp_path: Path, sha256: str) -> Path:
        """Move a fully written temp file into place as object ``sha256``, durably.

        The caller vouches that ``sha256`` is the digest of the file (it hashed it while
        writing). If the object already exists the temp file is removed instead.
        """
        dest = self.path_for(sha256)
        tmp_path = Path(tmp_path)
        if dest.is_file():
            tmp_path.unlink()
            return dest
        # Sync the body before the rename so a crash can never expose a name with short data.
        _fsync_file(tmp_path)
        makedirs_durable(dest.parent)
        # A concurrent adopt of the same sha may win the race; replacing identical content
        # with identical content is harmless, so no lock is needed.
        os.replace(tmp_path, dest)
        fsync_dir(dest.parent)
        return dest

    def open(self, sha256: str) -> BinaryIO:
        """Open the stored object for reading (FileNotFoundError if absent)."""
        return self.path_for(sha256).open("rb")

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` (for rebuilds and tests) and return its sha256."""
        sha256 = hashlib.sha256(data).hexdigest()
        if self.has(sha256):
            return sha256
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-", suffix=".tmp")
        tmp_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            # adopt() syncs the file before renaming it.
            self.adopt(tmp_path, sha256)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        return sha256
