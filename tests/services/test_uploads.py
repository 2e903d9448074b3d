"""Streaming multipart receive: exact content, fields, limits, and no orphan temp files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from starlette.requests import ClientDisconnect

from camvault.errors import BadRequest, EmptyFile, InvalidName, TooLarge
from camvault.services.uploads import SYNC_EVERY, ReceivedUpload, receive_multipart, spool_to_tmp

BOUNDARY = "----camvaultTestBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
MB = 1024 * 1024

Part = tuple[str, str | None, bytes]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    path = tmp_path / "tmp"
    path.mkdir()
    return path


def part_bytes(name: str, filename: str | None, content: bytes) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    headers = f"Content-Disposition: {disposition}\r\n"
    if filename is not None:
        headers += "Content-Type: application/octet-stream\r\n"
    return f"--{BOUNDARY}\r\n{headers}\r\n".encode() + content + b"\r\n"


def body(*parts: Part) -> bytes:
    return b"".join(part_bytes(*part) for part in parts) + f"--{BOUNDARY}--\r\n".encode()


def split(data: bytes, rng: random.Random, largest: int = 70_000) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        size = rng.randint(1, largest)
        yield data[i : i + size]
        i += size


async def feed(pieces: Iterator[bytes] | list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        await anyio.lowlevel.checkpoint()
        yield piece


def content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def receive(data: bytes, tmp_dir: Path, seed: int = 1, **kwargs: object) -> ReceivedUpload:
    kwargs.setdefault("max_bytes", 64 * MB)
    return await receive_multipart(
        feed(split(data, random.Random(seed))),
        CONTENT_TYPE,
        tmp_dir=tmp_dir,
        **kwargs,  # type: ignore[arg-type]
    )


def leftovers(tmp_dir: Path) -> list[Path]:
    return list(tmp_dir.iterdir())


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_multi_megabyte_file_in_odd_chunks_arrives_byte_for_byte(
    tmp_dir: Path, seed: int
) -> None:
    data = content(5 * MB + 12345, seed)
    # Boundary-like bytes inside the content must not end the part.
    data = data[:1000] + f"\r\n--{BOUNDARY[:-1]}".encode() + data[1000:]
    raw = body(("message", None, b""), ("note", None, b""), ("file", "1234567_A1.mcam", data))
    upload = await receive(raw, tmp_dir, seed=seed)
    assert upload.tmp_path.parent == tmp_dir
    assert upload.tmp_path.name.startswith("upload-")
    assert upload.tmp_path.read_bytes() == data
    assert upload.size == len(data)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.head == data[:64]
    assert upload.filename == "1234567_A1.mcam"
    assert upload.fields == {"message": "", "note": ""}
    assert leftovers(tmp_dir) == [upload.tmp_path]


@pytest.mark.anyio
async def test_a_body_fed_one_byte_at_a_time_is_received(tmp_dir: Path) -> None:
    data = b"\r\n--" + content(3000) + b"\r"
    raw = body(("message", None, "héllo".encode()), ("file", "a.nc", data))
    upload = await receive_multipart(
        feed([raw[i : i + 1] for i in range(len(raw))]),
        CONTENT_TYPE,
        tmp_dir=tmp_dir,
        max_bytes=MB,
    )
    assert upload.tmp_path.read_bytes() == data
    assert upload.fields == {"message": "héllo"}


@pytest.mark.anyio
async def test_fields_before_and_after_the_file_are_kept(tmp_dir: Path) -> None:
    raw = body(
        ("message", None, b"fixed the roughing pass"),
        ("file", "a.nc", b"G0 X0\n"),
        ("after", None, "ünïcode".encode()),
    )
    upload = await receive(raw, tmp_dir)
    assert upload.fields == {"message": "fixed the roughing pass", "after": "ünïcode"}
    assert upload.tmp_path.read_bytes() == b"G0 X0\n"


@pytest.mark.anyio
async def test_on_file_start_gets_the_filename_and_earlier_fields_before_any_content(
    tmp_dir: Path,
) -> None:
    calls: list[tuple[str | None, dict[str, str]]] = []

    async def on_file_start(filename: str | None, fields: dict[str, str]) -> None:
        calls.append((filename, dict(fields)))
        assert leftovers(tmp_dir) == []

    raw = body(
        ("message", None, b"m"),
        ("file", "../raw name.mcam", content(2 * MB)),
        ("later", None, b"l"),
    )
    upload = await receive(raw, tmp_dir, on_file_start=on_file_start)
    assert calls == [("../raw name.mcam", {"message": "m"})]
    assert upload.filename == "../raw name.mcam"


@pytest.mark.anyio
async def test_a_file_part_without_a_filename_is_received_with_none(tmp_dir: Path) -> None:
    upload = await receive(body(("file", None, b"data")), tmp_dir)
    assert upload.filename is None
    assert upload.tmp_path.read_bytes() == b"data"


@pytest.mark.anyio
async def test_a_utf8_filename_with_escapes_is_passed_on_raw(tmp_dir: Path) -> None:
    raw = body(("file", r"Fräse \"Teil\" C:\x.mcam", b"data"))
    upload = await receive(raw, tmp_dir)
    assert upload.filename == 'Fräse "Teil" C:\\x.mcam'


@pytest.mark.anyio
async def test_a_raising_on_file_start_leaves_no_temp_file(tmp_dir: Path) -> None:
    async def on_file_start(filename: str | None, fields: dict[str, str]) -> None:
        raise InvalidName("no")

    with pytest.raises(InvalidName):
        await receive(
            body(("file", "CON.mcam", content(3 * MB))), tmp_dir, on_file_start=on_file_start
        )
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_a_disconnect_mid_stream_leaves_no_temp_file(tmp_dir: Path) -> None:
    raw = body(("file", "a.mcam", content(4 * MB)))

    async def disconnecting() -> AsyncIterator[bytes]:
        for i, piece in enumerate(split(raw, random.Random(5))):
            if i == 80:
                assert leftovers(tmp_dir), "the temp file should exist mid-stream"
                raise ClientDisconnect()
            yield piece

    with pytest.raises(ClientDisconnect):
        await receive_multipart(disconnecting(), CONTENT_TYPE, tmp_dir=tmp_dir, max_bytes=64 * MB)
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_a_file_over_the_limit_is_too_large_and_leaves_no_temp_file(tmp_dir: Path) -> None:
    with pytest.raises(TooLarge) as caught:
        await receive(body(("file", "a.mcam", content(2 * MB + 1))), tmp_dir, max_bytes=2 * MB)
    assert caught.value.message == "the file is larger than the limit of 2 MB"
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_a_file_of_exactly_the_limit_is_accepted(tmp_dir: Path) -> None:
    upload = await receive(body(("file", "a.mcam", content(MB))), tmp_dir, max_bytes=MB)
    assert upload.size == MB


@pytest.mark.anyio
async def test_an_empty_file_is_refused(tmp_dir: Path) -> None:
    with pytest.raises(EmptyFile):
        await receive(body(("message", None, b"m"), ("file", "a.mcam", b"")), tmp_dir)
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        ([("message", None, b"m")], 'no "file" file part'),
        ([("upload", "a.mcam", b"x")], 'unexpected file in form field "upload"'),
        ([("file", "a.mcam", b"x"), ("file", "b.mcam", b"y")], 'more than one "file"'),
        ([("m", None, b"1"), ("m", None, b"2"), ("file", "a", b"x")], 'more than one "m"'),
        ([("message", None, b"x" * (64 * 1024 + 1)), ("file", "a", b"x")], "longer than 64 KiB"),
        ([*[(f"f{i}", None, b"") for i in range(17)], ("file", "a", b"x")], "too many"),
        ([("message", None, b"\xff\xfe"), ("file", "a", b"x")], "not valid UTF-8"),
    ],
)
async def test_a_form_breaking_the_rules_is_a_bad_request(
    tmp_dir: Path, parts: list[Part], fragment: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await receive(body(*parts), tmp_dir)
    assert fragment in caught.value.message
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_sixteen_fields_of_64_kib_are_accepted(tmp_dir: Path) -> None:
    fields = [(f"f{i}", None, b"v" * 64 * 1024) for i in range(16)]
    upload = await receive(body(*fields, ("file", "a.nc", b"x")), tmp_dir)
    assert len(upload.fields) == 16


@pytest.mark.anyio
@pytest.mark.parametrize(
    "raw",
    [
        b"this is not multipart at all",
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=file\r\n\r\nabc".encode(),
        f"--{BOUNDARY}\r\nBad Header\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
        f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file\r\n\r\nx\r\n'
        f"--{BOUNDARY}--\r\n".encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=file\r\n\r\nx\r\n"
        f"--{BOUNDARY}--\r\n".encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; name="x"\r\n\r\nx\r\n'
        f"--{BOUNDARY}--\r\n".encode(),
        b"",
    ],
)
async def test_a_malformed_body_is_a_bad_request(tmp_dir: Path, raw: bytes) -> None:
    with pytest.raises(BadRequest):
        await receive(raw, tmp_dir)
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_a_body_cut_off_inside_the_file_leaves_no_temp_file(tmp_dir: Path) -> None:
    raw = body(("file", "a.mcam", content(3 * MB)))
    with pytest.raises(BadRequest, match="closing boundary"):
        await receive(raw[: 2 * MB], tmp_dir)
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "multipart/form-data",
        "multipart/mixed; boundary=abc",
        "multipart/form-data; boundary=" + "x" * 71,
        'multipart/form-data; boundary="unterminated',
        "",
    ],
)
async def test_a_request_that_is_not_multipart_form_data_is_a_bad_request(
    tmp_dir: Path, content_type: str
) -> None:
    with pytest.raises(BadRequest):
        await receive_multipart(
            feed([body(("file", "a", b"x"))]), content_type, tmp_dir=tmp_dir, max_bytes=MB
        )
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_a_quoted_boundary_is_understood(tmp_dir: Path) -> None:
    upload = await receive_multipart(
        feed([body(("file", "a", b"x"))]),
        f'Multipart/Form-Data; charset=utf-8; boundary="{BOUNDARY}"',
        tmp_dir=tmp_dir,
        max_bytes=MB,
    )
    assert upload.tmp_path.read_bytes() == b"x"


@pytest.mark.anyio
async def test_an_epilogue_after_the_closing_boundary_is_not_read(tmp_dir: Path) -> None:
    read_after_end = False

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read_after_end
        yield body(("file", "a.nc", b"G0"))
        read_after_end = True
        while True:
            yield b"epilogue" * 1000

    upload = await receive_multipart(endless(), CONTENT_TYPE, tmp_dir=tmp_dir, max_bytes=MB)
    assert upload.tmp_path.read_bytes() == b"G0"
    assert not read_after_end


@pytest.mark.anyio
async def test_a_cancelled_receive_leaves_no_temp_file(tmp_dir: Path) -> None:
    raw = body(("file", "a.mcam", content(3 * MB)))
    stalled = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        for piece in split(raw[: 2 * MB], random.Random(3)):
            yield piece
        stalled.set()
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    task = asyncio.create_task(
        receive_multipart(stalling(), CONTENT_TYPE, tmp_dir=tmp_dir, max_bytes=64 * MB)
    )
    await stalled.wait()
    assert leftovers(tmp_dir)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
@pytest.mark.parametrize("after_chunks", [1, 3, 17, 40])
async def test_an_anyio_cancel_at_any_point_leaves_no_temp_file(
    tmp_dir: Path, after_chunks: int
) -> None:
    raw = body(("message", None, b"m"), ("file", "a.mcam", content(3 * MB)))

    async def counting() -> AsyncIterator[bytes]:
        for i, piece in enumerate(split(raw, random.Random(7), largest=100_000)):
            if i == after_chunks:
                scope.cancel()
            yield piece

    with anyio.CancelScope() as scope:
        await receive_multipart(counting(), CONTENT_TYPE, tmp_dir=tmp_dir, max_bytes=64 * MB)
    assert scope.cancelled_caught
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_discard_removes_the_temp_file_and_can_be_repeated(tmp_dir: Path) -> None:
    upload = await receive(body(("file", "a.nc", b"x")), tmp_dir)
    upload.discard()
    upload.discard()
    assert leftovers(tmp_dir) == []


@pytest.mark.anyio
async def test_memory_stays_bounded_whatever_the_file_size(tmp_dir: Path) -> None:
    size = 48 * MB
    block = content(64 * 1024)
    head = part_bytes("file", "big.vnc", b"")[:-2]
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    async def generated() -> AsyncIterator[bytes]:
        yield head
        for i in range(size // len(block)):
            # A fresh object per chunk, as a server delivers them.
            yield block[:-1] + bytes([i % 256])
        yield tail

    tracemalloc.start()
    try:
        upload = await receive_multipart(
            generated(), CONTENT_TYPE, tmp_dir=tmp_dir, max_bytes=64 * MB
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert upload.size == size
    assert peak < 6 * MB, f"peak traced memory {peak / MB:.1f} MiB"


def resident_bytes(path: Path) -> int:
    """How much of the file the kernel holds in its page cache (util-linux fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip())


@pytest.fixture
def disk_dir(tmp_dir: Path) -> Iterator[Path]:
    """A directory on a disk-backed filesystem: on tmpfs (/tmp on some systems) the page
    cache is the storage, so nothing could be dropped from it."""
    kind = subprocess.run(
        ["stat", "-f", "-c", "%T", str(tmp_dir)], check=True, capture_output=True, text=True
    ).stdout.strip()
    if kind != "tmpfs":
        yield tmp_dir
        return
    path = Path(tempfile.mkdtemp(prefix="camvault-test-", dir=Path.home()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.anyio
async def test_a_large_upload_is_flushed_to_disk_and_leaves_the_page_cache_alone(
    disk_dir: Path,
) -> None:
    tmp_dir = disk_dir
    data = content(5 * SYNC_EVERY + 12345)
    upload = await receive(body(("file", "big.mcam", data)), tmp_dir)
    # Written, flushed and dropped as it arrived: none of it is left taking cache memory.
    assert resident_bytes(upload.tmp_path) < SYNC_EVERY // 8
    assert upload.tmp_path.read_bytes() == data
    assert upload.sha256 == hashlib.sha256(data).hexdigest()

    spooled = spool_to_tmp(split(data, random.Random(5), 3 * MB), tmp_dir, "big.mcam")
    assert resident_bytes(spooled.tmp_path) < SYNC_EVERY // 8
    assert (spooled.size, spooled.sha256) == (len(data), upload.sha256)
    assert spooled.tmp_path.read_bytes() == data


@pytest.mark.anyio
async def test_a_small_upload_stays_cached_for_git_and_the_next_download(disk_dir: Path) -> None:
    data = content(SYNC_EVERY // 2)
    upload = await receive(body(("file", "O1000.nc", data)), disk_dir)
    assert resident_bytes(upload.tmp_path) == len(data)
    assert upload.tmp_path.read_bytes() == data


@pytest.mark.anyio
async def test_an_asyncio_cancel_at_arbitrary_moments_leaves_no_temp_file(tmp_dir: Path) -> None:
    raw = body(("message", None, b"m"), ("file", "a.mcam", content(3 * MB)))
    pieces = list(split(raw, random.Random(11), largest=150_000))
    outcomes: set[str] = set()
    # Cancelling after a varying number of loop ticks lands in the iterator, in
    # on_file_start and while a worker thread is opening or writing the temp file.
    for ticks in range(0, 400, 7):

        async def on_file_start(filename: str | None, fields: dict[str, str]) -> None:
            await asyncio.sleep(0)

        task = asyncio.create_task(
            receive_multipart(
                feed(pieces),
                CONTENT_TYPE,
                tmp_dir=tmp_dir,
                max_bytes=64 * MB,
                on_file_start=on_file_start,
            )
        )
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        try:
            upload = await task
        except asyncio.CancelledError:
            outcomes.add("cancelled")
        else:
            outcomes.add("completed")
            upload.discard()
        # A worker thread abandoned by the cancel may still be finishing; give it time.
        await asyncio.sleep(0.01)
        assert leftovers(tmp_dir) == [], f"orphan after {ticks} ticks"
    assert "cancelled" in outcomes


@pytest.mark.anyio
async def test_a_second_cancel_during_cleanup_still_leaves_no_temp_file(
    tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow disk: the worker creating the temp file outlives the first cancel, and a second
    # cancel interrupts the cleanup before it reaches a worker thread.
    real_open = os.open

    def slow_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        time.sleep(0.3)
        return real_open(path, flags, mode)

    file_started = asyncio.Event()

    async def on_file_start(filename: str | None, fields: dict[str, str]) -> None:
        monkeypatch.setattr(os, "open", slow_open)
        file_started.set()

    task = asyncio.create_task(
        receive_multipart(
            feed([body(("file", "a.mcam", content(MB)))]),
            CONTENT_TYPE,
            tmp_dir=tmp_dir,
            max_bytes=64 * MB,
            on_file_start=on_file_start,
        )
    )
    await file_started.wait()
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    await asyncio.sleep(0.5)
    assert leftovers(tmp_dir) == []
