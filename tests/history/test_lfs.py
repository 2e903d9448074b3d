"""Git LFS pointers and the content store, checked against the real git-lfs CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from camvault.history.lfs import POINTER_SPEC, ContentStore, parse_pointer, pointer_bytes

SHA_HELLO = hashlib.sha256(b"hello").hexdigest()


def git_env(tmp_path: Path) -> dict[str, str]:
    """An environment that keeps git away from the developer's own config."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "vault.git" / "lfs" / "objects", tmp_path / "tmp")


def write_tmp(store: ContentStore, name: str, data: bytes) -> Path:
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    path = store.tmp_dir / name
    path.write_bytes(data)
    return path


def test_pointer_bytes_match_what_git_lfs_generates(tmp_path: Path) -> None:
    content = tmp_path / "part.mcam"
    content.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    sha = hashlib.sha256(content.read_bytes()).hexdigest()
    generated = subprocess.run(
        ["git", "lfs", "pointer", f"--file={content}"],
        env=git_env(tmp_path),
        capture_output=True,
        check=True,
    ).stdout
    assert pointer_bytes(sha, content.stat().st_size) == generated


def test_pointer_bytes_pass_git_lfs_strict_pointer_check(tmp_path: Path) -> None:
    subprocess.run(
        ["git", "lfs", "pointer", "--check", "--strict", "--stdin"],
        input=pointer_bytes(SHA_HELLO, 5),
        env=git_env(tmp_path),
        check=True,
    )


def test_pointer_bytes_have_the_exact_spec_layout() -> None:
    expected = f"version {POINTER_SPEC}\noid sha256:{SHA_HELLO}\nsize 5\n".encode()
    assert pointer_bytes(SHA_HELLO, 5) == expected


def test_pointer_bytes_refuse_a_bad_sha_or_size() -> None:
    with pytest.raises(ValueError):
        pointer_bytes(SHA_HELLO.upper(), 5)
    with pytest.raises(ValueError):
        pointer_bytes(SHA_HELLO, -1)


def test_parse_pointer_round_trips() -> None:
    assert parse_pointer(pointer_bytes(SHA_HELLO, 0)) == (SHA_HELLO, 0)
    assert parse_pointer(pointer_bytes(SHA_HELLO, 123456789012)) == (SHA_HELLO, 123456789012)


def test_parse_pointer_accepts_extra_sorted_keys_from_the_spec() -> None:
    data = (
        f"version {POINTER_SPEC}\next-0-foo sha256:{SHA_HELLO}\noid sha256:{SHA_HELLO}\nsize 5\n"
    ).encode()
    assert parse_pointer(data) == (SHA_HELLO, 5)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x89HDF\r\n\x1a\n\x00\x00",
        pointer_bytes(SHA_HELLO, 5).rstrip(b"\n"),
        pointer_bytes(SHA_HELLO, 5).replace(b"size 5", b"size -5"),
        pointer_bytes(SHA_HELLO, 5).replace(b"size 5", b"size 05"),
        pointer_bytes(SHA_HELLO, 5).replace(SHA_HELLO.encode(), SHA_HELLO.upper().encode()),
        pointer_bytes(SHA_HELLO, 5).replace(b"sha256:", b"sha1:"),
        pointer_bytes(SHA_HELLO, 5).replace(b"spec/v1", b"spec/v2"),
        f"version {POINTER_SPEC}\nsize 5\noid sha256:{SHA_HELLO}\n".encode(),
        f"version {POINTER_SPEC}\noid sha256:{SHA_HELLO}\n".encode(),
        pointer_bytes(SHA_HELLO, 5) + b"x" * 1024,
    ],
)
def test_parse_pointer_returns_none_for_anything_else(data: bytes) -> None:
    assert parse_pointer(data) is None


def test_path_for_uses_the_git_lfs_layout(store: ContentStore) -> None:
    assert store.path_for(SHA_HELLO) == (
        store.objects_dir / SHA_HELLO[:2] / SHA_HELLO[2:4] / SHA_HELLO
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        SHA_HELLO.upper(),
        SHA_HELLO[:-1],
        SHA_HELLO + "0",
        SHA_HELLO + "\n",
        "g" * 64,
        "../" + SHA_HELLO[3:],
        "/" * 64,
    ],
)
def test_path_for_rejects_anything_but_a_lowercase_sha256(store: ContentStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.path_for(bad)


def test_adopt_moves_the_temp_file_into_place_byte_for_byte(store: ContentStore) -> None:
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    tmp = write_tmp(store, "upload-1", data)

    assert not store.has(sha)
    dest = store.adopt(tmp, sha)

    assert dest == store.path_for(sha)
    assert not tmp.exists()
    assert store.has(sha)
    with store.open(sha) as fh:
        assert fh.read() == data


def test_adopt_of_a_known_sha_removes_the_temp_file_and_keeps_one_object(
    store: ContentStore,
) -> None:
    data = b"same content, uploaded twice"
    sha = hashlib.sha256(data).hexdigest()
    store.adopt(write_tmp(store, "first", data), sha)
    inode = store.path_for(sha).stat().st_ino

    second = write_tmp(store, "second", data)
    store.adopt(second, sha)

    assert not second.exists()
    assert store.path_for(sha).stat().st_ino == inode
    stored = [p for p in store.objects_dir.rglob("*") if p.is_file()]
    assert stored == [store.path_for(sha)]
    assert list(store.tmp_dir.iterdir()) == []


def test_put_bytes_stores_content_once_and_returns_its_sha(store: ContentStore) -> None:
    data = b"\x00\x01binary\xff"
    sha = store.put_bytes(data)

    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data) == sha
    assert store.path_for(sha).read_bytes() == data
    assert list(store.tmp_dir.iterdir()) == []


def test_open_of_a_missing_object_raises_file_not_found(store: ContentStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.open(SHA_HELLO)
