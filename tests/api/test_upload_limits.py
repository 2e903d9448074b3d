"""Upload limits, aborted uploads, hostile multipart filenames and the Secure cookie."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers import PASSWORD, Vault, checkin, mcam, upload

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings

pytestmark = pytest.mark.anyio


def leftovers(vault: Vault) -> list[str]:
    return [p.name for p in vault.camvault.tmp_dir.iterdir() if p.name != ".lock"]


@pytest.fixture
async def small_vault(settings: Settings) -> AsyncIterator[Vault]:
    small = settings.model_copy(update={"max_upload_bytes": 64 * 1024})
    camvault = Camvault(small)
    app = create_app(small, camvault)
    async with app.router.lifespan_context(app):
        camvault.bootstrap_admin()
        yield Vault(app, camvault)


async def test_an_upload_over_the_limit_is_too_large_and_leaves_nothing(
    small_vault: Vault,
) -> None:
    async with await small_vault.login("admin") as admin:
        response = await upload(admin, "1234567.mcam", mcam(b"x" * 100_000))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
        assert (await admin.get("/api/files")).json()["groups"] == {}
    assert leftovers(small_vault) == []


async def test_a_content_length_over_the_limit_is_refused_before_reading(
    small_vault: Vault,
) -> None:
    async with await small_vault.login("admin") as admin:
        response = await admin.post(
            "/api/files",
            content=b"--x--\r\n",
            headers={
                "content-type": "multipart/form-data; boundary=x",
                "content-length": str(10 * 1024 * 1024),
            },
        )
    assert response.status_code == 413


async def test_an_upload_aborted_mid_stream_leaves_no_version_and_no_temp_file(
    vault: Vault,
) -> None:
    class Aborted(Exception):
        pass

    async def body() -> AsyncIterator[bytes]:
        yield (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="1234567.mcam"'
            b"\r\nContent-Type: application/octet-stream\r\n\r\n" + mcam(b"a" * 300_000)
        )
        raise Aborted("client went away")

    async with await vault.login("admin") as admin:
        await upload(admin, "7654321.mcam", mcam())
        await admin.post("/api/files/7654321.mcam/checkout", json={})
        for path in ("/api/files", "/api/files/7654321.mcam/checkin"):
            with pytest.raises(Aborted):
                await admin.post(
                    path,
                    content=body(),
                    headers={"content-type": "multipart/form-data; boundary=b"},
                )
        names = [f["filename"] for f in (await admin.get("/api/files")).json()["groups"]["76XXXXX"]]
        assert names == ["7654321.mcam"]
        record = (await admin.get("/api/files/7654321.mcam")).json()
        assert (record["version"], record["lock"]["user"]) == (1, "admin")
    assert leftovers(vault) == []


async def test_a_hostile_multipart_filename_on_checkin_is_ignored(
    vault: Vault, tmp_path: Path
) -> None:
    before = sorted(p for p in tmp_path.rglob("*") if "data" not in p.parts)
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        await admin.post("/api/files/1234567.mcam/checkout", json={})
        response = await admin.post(
            "/api/files/1234567.mcam/checkin",
            files={"file": ("../../../escape.mcam", mcam(b"v2"), "application/octet-stream")},
            data={"message": "v2"},
        )
        assert response.status_code == 200
        assert response.json()["filename"] == "1234567.mcam"
        refused = await upload(admin, "../../escape.mcam", mcam())
        assert refused.json()["error"]["code"] == "invalid_name"
    after = sorted(p for p in tmp_path.rglob("*") if "data" not in p.parts)
    assert after == before
    assert not list(tmp_path.rglob("escape.mcam"))


async def test_the_session_cookie_is_secure_over_https(vault: Vault) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=vault.app), base_url="https://testserver"
    ) as browser:
        response = await browser.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
    assert "secure" in response.headers["set-cookie"].lower()


async def test_a_checkin_of_an_identical_file_is_still_a_new_version(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"same"))
        await admin.post("/api/files/1234567.mcam/checkout", json={})
        response = await checkin(admin, "1234567.mcam", mcam(b"same"), "no change, new rev")
        assert response.json()["version"] == 2
        objects = list((vault.camvault.settings.repo_path / "lfs" / "objects").rglob("*"))
        assert len([p for p in objects if p.is_file()]) == 1  # stored once per sha256


@pytest.mark.parametrize(
    ("range_header", "status"),
    [("bytes=5-2", 400), ("bytes=abc", 400), ("pages=1-2", 400), ("bytes=100-200", 416)],
)
async def test_bad_ranges_answer_in_the_json_error_shape(
    vault: Vault, range_header: str, status: int
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam(b"ab"))  # 10 bytes
        response = await admin.get(
            "/api/files/1234567.mcam/content", headers={"Range": range_header}
        )
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message"}


async def test_json_bodies_over_a_mebibyte_are_refused_before_reading(vault: Vault) -> None:
    async with vault.client() as anon:
        huge = b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'", "password": "x"}'
        response = await anon.post(
            "/api/auth/login", content=huge, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"username": "'
            for _ in range(40):
                yield b"a" * 65536
            yield b'", "password": "x"}'

        streamed = await anon.post(
            "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/files/1234567.mcam/checkout", {"message": "null \x00 byte"}),
        ("/api/files/1234567.mcam/revert", {"version": 10**20, "message": "x"}),
        ("/api/files/1234567.mcam/break-lock", {"reason": "bell \x07"}),
    ],
)
async def test_control_characters_and_huge_numbers_are_bad_requests(
    vault: Vault, path: str, body: dict[str, object]
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        response = await admin.post(path, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"
        huge = await admin.get("/api/files/1234567.mcam/content", params={"version": 10**20})
        assert huge.status_code == 400
