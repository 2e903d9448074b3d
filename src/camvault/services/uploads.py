"""Streaming receive of a multipart/form-data upload into a temp file, memory bounded.

The body is parsed chunk by chunk with python-multipart's callback parser; file content is
hashed and written in worker threads, and the temp file never outlives a failed receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError

from camvault.errors import BadRequest, EmptyFile, TooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

HEAD_BYTES = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
# Hand content to the worker thread in batches: one thread hop per MiB, not per network chunk.
BATCH_BYTES = 1024 * 1024
# RFC 2046 caps boundaries at 70 characters.
_MAX_BOUNDARY = 70

OnFileStart = Callable[[str | None, dict[str, str]], Awaitable[None]]


@dataclass
class ReceivedUpload:
    """A received file part (in an fsync'd temp file) plus the form's text fields."""

    tmp_path: Path
    filename: str | None
    size: int
    sha256: str
    head: bytes
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the temp file if it is still there; idempotent. Blocking: run it in a thread."""
        self.tmp_path.unlink(missing_ok=True)


async def receive_multipart(
    chunks: AsyncIterator[bytes],
    content_type: str,
    *,
    tmp_dir: Path,
    max_bytes: int,
    file_field: str = "file",
    on_file_start: OnFileStart | None = None,
) -> ReceivedUpload:
    """Stream a multipart body: the `file_field` part to a temp file in `tmp_dir`, fields to memory.

    `on_file_start(filename, fields_so_far)` is awaited before any content is written.
    """
    form = _FormState(file_field, max_bytes)
    parser = MultipartParser(_boundary_of(content_type), form.callbacks())
    spool = _Spool(tmp_dir)
    received: ReceivedUpload | None = None
    try:
        async for chunk in chunks:
            # The parser hands out views of the chunk that are kept until written: they must
            # not change underneath, so a mutable buffer is copied once.
            try:
                parser.write(chunk if isinstance(chunk, bytes) else bytes(chunk))
            except FormParserError as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from exc
            await _advance(form, spool, on_file_start, final=False)
            if form.finished:
                # Anything after the closing boundary is an epilogue with no meaning; stop
                # reading rather than let a client stream it forever.
                break
        if not form.finished:
            raise BadRequest("malformed multipart body: it ended before the closing boundary")
        if not form.file_seen:
            raise BadRequest(f'the form has no "{file_field}" file part')
        await _advance(form, spool, on_file_start, final=True)
        if form.size == 0:
            raise EmptyFile("the file is empty")
        await spool.drain()
        digest = await anyio.to_thread.run_sync(spool.finish)
        received = ReceivedUpload(
            tmp_path=spool.path,
            filename=form.filename,
            size=form.size,
            sha256=digest,
            head=bytes(form.head),
            fields=form.fields,
        )
        return received
    finally:
        if received is None:
            await _discard(spool)


async def _advance(
    form: _FormState, spool: _Spool, on_file_start: OnFileStart | None, *, final: bool
) -> None:
    """Act on what the parser found: announce the file once, then write batches of content."""
    if form.start_pending:
        form.start_pending = False
        if on_file_start is not None:
            await on_file_start(form.filename, form.fields_at_start)
        spool.open_requested = True
        await anyio.to_thread.run_sync(spool.open)
    if spool.open_requested and (form.pending_bytes >= BATCH_BYTES or (final and form.pending)):
        await spool.submit(form.take_pending())


async def _discard(spool: _Spool) -> None:
    if not spool.open_requested:
        return
    done = False
    try:
        # Shielded so an anyio cancellation cannot skip the cleanup.
        with anyio.CancelScope(shield=True):
            await spool.settle()
            await anyio.to_thread.run_sync(spool.remove)
        done = True
    finally:
        if not done:
            # A native asyncio cancel can still interrupt the await; removing inline (once, on
            # this rare path) is better than an orphan temp file. `remove` is idempotent.
            spool.remove()


SYNC_EVERY = 8 * 1024 * 1024


class _DurableWriter:
    """Bytes appended to an open file as an upload arrives: hashed, written, and every
    SYNC_EVERY bytes flushed to disk and dropped from the page cache. Blocking.

    Flushing as it goes means no single huge fsync at the end for other transactions'
    commits to queue behind (ext4 journals them together). Dropping what is flushed lets a
    large upload reuse a few MiB of page cache instead of taking fresh memory for every
    byte, and leaves the database's and git's cached pages alone. LFS content is never
    read back (the hash is taken on the way in); a plain-blob file (.nc) is read once more
    by ``git hash-object``, from disk if it was large, which costs far less than git's
    compression of it. A file that never reached SYNC_EVERY stays cached.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self._hash = hashlib.sha256()
        self._synced = 0

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)
        if self.size - self._synced >= SYNC_EVERY:
            os.fdatasync(self.fd)
            self._drop_synced()

    def finish(self) -> str:
        """fsync the file (metadata too) and return the sha256 of everything written."""
        os.fsync(self.fd)
        if self._synced:
            # The whole file: each stretch dropped on the way left its last partial page.
            self._synced = 0
            self._drop_synced()
        return self._hash.hexdigest()

    def _drop_synced(self) -> None:
        """Drop what was flushed since the last drop (length 0 would mean "to the end")."""
        if hasattr(os, "posix_fadvise"):
            start, length = self._synced, self.size - self._synced
            os.posix_fadvise(self.fd, start, length, os.POSIX_FADV_DONTNEED)
        self._synced = self.size


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _Spool:
    """The temp file. ``open``, ``write``, ``finish`` and ``remove`` block and run in worker
    threads; ``submit``, ``drain`` and ``settle`` run on the event loop and keep at most one
    ``write`` in flight.

    The lock and `removed` flag cover one race: after a native cancel, a worker may still be
    opening or writing while `remove` runs, and must not recreate the file afterwards.
    """

    def __init__(self, tmp_dir: Path) -> None:
        self.path = tmp_dir / f"upload-{secrets.token_hex(16)}"
        self.open_requested = False
        self._inflight: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._file: _DurableWriter | None = None
        self._removed = False

    async def submit(self, pieces: list[memoryview]) -> None:
        """Write a batch in a worker thread while the caller goes on receiving the next.

        One batch at a time: the previous one is waited for first (and its error raised
        here), so at most one batch is being written while the next one fills.
        """
        await self.drain()
        inflight = asyncio.ensure_future(anyio.to_thread.run_sync(self.write, pieces))
        # Retrieved even if nobody waits for it any more (a native cancel of the request).
        inflight.add_done_callback(_retrieve)
        self._inflight = inflight

    async def drain(self) -> None:
        """Wait for the batch being written; raises what writing it raised."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def settle(self) -> None:
        """``drain`` for the failure path: the upload is being dropped, so its error no
        longer matters, but the thread must be done before the file is removed."""
        with contextlib.suppress(Exception):
            await self.drain()

    def open(self) -> None:
        with self._lock:
            if self._removed:
                raise RuntimeError("upload abandoned before its temp file was created")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            self._file = _DurableWriter(os.open(self.path, flags, 0o600))

    def write(self, pieces: list[memoryview]) -> None:
        data = pieces[0] if len(pieces) == 1 else memoryview(b"".join(pieces))
        with self._lock:
            if self._file is None:
                raise RuntimeError("upload temp file is not open")
            self._file.write(data)

    def finish(self) -> str:
        with self._lock:
            if self._file is None:
                raise RuntimeError("upload temp file is not open")
            file, self._file = self._file, None
            try:
                return file.finish()
            finally:
                os.close(file.fd)

    def remove(self) -> None:
        with self._lock:
            self._removed = True
            file, self._file = self._file, None
            try:
                if file is not None:
                    os.close(file.fd)
            finally:
                self.path.unlink(missing_ok=True)


class _FormState:
    """Synchronous parser callbacks: collect headers and fields, queue file content."""

    def __init__(self, file_field: str, max_bytes: int) -> None:
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.fields_at_start: dict[str, str] = {}
        self.file_seen = False
        self.start_pending = False
        self.filename: str | None = None
        self.size = 0
        self.head = bytearray()
        self.pending: list[memoryview] = []
        self.pending_bytes = 0
        self.finished = False
        self._parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition: bytes | None = None
        self._in_file = False
        self._field_name: str | None = None
        self._field_value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take_pending(self) -> list[memoryview]:
        pieces, self.pending, self.pending_bytes = self.pending, [], 0
        return pieces

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS + 1:
            raise BadRequest(f"the form has too many parts (at most {MAX_FIELDS} fields)")
        self._disposition = None
        self._in_file = False
        self._field_name = None
        self._field_value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        # The parser caps header count and size, so these buffers stay small.
        if self._header_name.lower() == b"content-disposition":
            if self._disposition is not None:
                raise BadRequest("a form part has two Content-Disposition headers")
            self._disposition = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        name, filename = _parse_disposition(self._disposition)
        if name == self.file_field:
            if self.file_seen:
                raise BadRequest(f'the form has more than one "{name}" part')
            self.file_seen = True
            self._in_file = True
            self.filename = filename
            self.fields_at_start = dict(self.fields)
            self.start_pending = True
            return
        if filename is not None:
            raise BadRequest(f'unexpected file in form field "{name}"')
        if name in self.fields:
            raise BadRequest(f'the form has more than one "{name}" field')
        if len(self.fields) >= MAX_FIELDS:
            raise BadRequest(f"the form has too many fields (at most {MAX_FIELDS})")
        self._field_name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        length = end - start
        if self._in_file:
            self.size += length
            if self.size > self.max_bytes:
                raise TooLarge(f"the file is larger than the limit of {megabytes(self.max_bytes)}")
            if len(self.head) < HEAD_BYTES:
                self.head += data[start : min(end, start + HEAD_BYTES - len(self.head))]
            self.pending.append(memoryview(data)[start:end])
            self.pending_bytes += length
            return
        if len(self._field_value) + length > MAX_FIELD_BYTES:
            raise BadRequest(
                f'form field "{self._field_name}" is longer than {MAX_FIELD_BYTES // 1024} KiB'
            )
        self._field_value += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            return
        if self._field_name is None:
            # on_headers_finished always precedes on_part_end; guard against a parser change.
            raise BadRequest("malformed multipart body: a part has no headers")
        try:
            self.fields[self._field_name] = self._field_value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f'form field "{self._field_name}" is not valid UTF-8') from exc

    def _end(self) -> None:
        self.finished = True


def _boundary_of(content_type: str) -> bytes:
    kind, params = _parse_header(content_type)
    boundary = params.get("boundary", "")
    if kind != "multipart/form-data" or not boundary:
        raise BadRequest("expected multipart/form-data with a boundary")
    if len(boundary) > _MAX_BOUNDARY or not boundary.isascii() or not boundary.isprintable():
        raise BadRequest("the multipart boundary is malformed")
    return boundary.encode("ascii")


def _parse_disposition(raw: bytes | None) -> tuple[str, str | None]:
    """(field name, filename or None) from a part's Content-Disposition header."""
    if raw is None:
        raise BadRequest("a form part has no Content-Disposition header")
    try:
        # Browsers send names and filenames as raw UTF-8 (HTML's form-data encoding).
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("a form part's Content-Disposition is not valid UTF-8") from exc
    kind, params = _parse_header(text)
    name = params.get("name")
    if kind != "form-data" or name is None:
        raise BadRequest("a form part is not form-data with a name")
    return name, params.get("filename")


def _parse_header(value: str) -> tuple[str, dict[str, str]]:
    """Split `type; key=value; key="quoted"` into the lowercased type and its parameters.

    In quoted strings only \\" and \\\\ are escapes: browsers leave other backslashes as they
    are. Extended `key*=` parameters are ignored (RFC 7578 forbids them in form-data).
    """
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        if rest[i] in " \t;":
            i += 1
            continue
        eq = rest.find("=", i)
        if eq == -1:
            raise BadRequest(f"malformed header parameters: {value!r}")
        key = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise BadRequest(f"malformed header parameters: {value!r}")
                char = rest[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\" and i + 1 < n and rest[i + 1] in '"\\':
                    i += 1
                    char = rest[i]
                chars.append(char)
                i += 1
            param = "".join(chars)
            end = rest.find(";", i)
            end = n if end == -1 else end
            if rest[i:end].strip():
                raise BadRequest(f"malformed header parameters: {value!r}")
            i = end
        else:
            end = rest.find(";", i)
            end = n if end == -1 else end
            param = rest[i:end].strip()
            i = end
        if key.endswith("*"):
            continue
        # Two values for one key (name="file"; name="x") would let parsers disagree.
        if key in params:
            raise BadRequest(f"header parameter {key!r} given twice")
        params[key] = param
    return kind.strip().lower(), params


def megabytes(limit: int) -> str:
    """A byte limit as people read it: 2048 MiB -> "2147.5 MB"."""
    return f"{limit / (1024 * 1024):.1f}".removesuffix(".0") + " MB"


def spool_to_tmp(
    chunks: Iterable[bytes],
    tmp_dir: Path,
    name: str,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> ReceivedUpload:
    """Write ``chunks`` (blocking) to a new private file in ``tmp_dir`` as an upload would,
    through a `_DurableWriter`, keeping its first HEAD_BYTES for the content checks.
    Nothing is left behind if it fails."""
    tmp = tmp_dir / f"spool-{secrets.token_hex(16)}"
    head = b""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    file = _DurableWriter(fd)
    try:
        for chunk in chunks:
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            file.write(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        digest = file.finish()
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return ReceivedUpload(tmp, name, file.size, digest, head)
