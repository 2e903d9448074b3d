"""The file API: upload, list, checkout, check-in, cancel, revert, break lock, delete."""

from __future__ import annotations

import hashlib

import pytest
from helpers import Vault, checkin, mcam, upload

from camvault.services.auth import Role

pytestmark = pytest.mark.anyio


async def test_upload_creates_version_one_in_its_group(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        content = mcam(b"part program")
        response = await upload(admin, "1234567_A1.mcam", content, description="Bracket")
        assert response.status_code == 201, response.text
        record = response.json()
        assert record["filename"] == "1234567_A1.mcam"
        assert (record["group"], record["subgroup"]) == ("12XXXXX", "1234567")
        assert (record["version"], record["revision"]) == (1, "1.0")
        assert record["size"] == len(content)
        assert record["sha256"] == hashlib.sha256(content).hexdigest()
        assert record["description"] == "Bracket"
        assert record["modified_by"] == "admin"
        assert record["lock"] is None

        listing = (await admin.get("/api/files")).json()
        assert listing["groups"]["12XXXXX"] == [record]
        assert listing["seq"] > 0


async def test_names_that_do_not_start_with_a_part_number_go_to_misc(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "fixture.vnc", b"vnc data")
        groups = (await admin.get("/api/files")).json()["groups"]
        assert [f["filename"] for f in groups["Misc"]] == ["fixture.vnc"]
        assert groups["Misc"][0]["subgroup"] is None


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("../evil.mcam", mcam(), "invalid_name"),
        ("a\u202egpj.mcam", mcam(), "invalid_name"),
        ("CON.mcam", mcam(), "invalid_name"),
        ("notes.txt", b"hello", "invalid_type"),
        ("1234567.mcam", b"not hdf5 at all", "bad_content"),
        ("1234567.nc", b"", "empty"),
    ],
)
async def test_bad_uploads_are_refused_and_change_nothing(
    vault: Vault, name: str, content: bytes, code: str
) -> None:
    async with await vault.login("admin") as admin:
        before = (await admin.get("/api/files")).json()
        response = await upload(admin, name, content)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
        assert (await admin.get("/api/files")).json() == before
    tmp = vault.camvault.tmp_dir
    assert [p.name for p in tmp.iterdir() if p.name != ".lock"] == []


async def test_names_are_unique_ignoring_case(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "1234567_A1.mcam", mcam())).status_code == 201
        response = await upload(admin, "1234567_a1.MCAM", mcam())
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "exists"


async def test_checkout_checkin_cycle_makes_version_two(vault: Vault) -> None:
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await upload(admin, "1234567_A1.mcam", mcam(b"v1"))
        out = await bob.post("/api/files/1234567_A1.mcam/checkout", json={"message": "fixing"})
        assert out.status_code == 200
        lock = out.json()["lock"]
        assert (lock["user"], lock["message"]) == ("bob", "fixing")

        again = await bob.post("/api/files/1234567_A1.mcam/checkout", json={})
        assert again.status_code == 200
        assert again.json()["lock"] == lock

        v2 = mcam(b"v2 content")
        response = await checkin(bob, "1234567_A1.mcam", v2, "deeper pocket")
        assert response.status_code == 200, response.text
        record = response.json()
        assert (record["version"], record["revision"], record["lock"]) == (2, "1.1", None)

        versions = (await bob.get("/api/files/1234567_A1.mcam/versions")).json()
        assert [v["version"] for v in versions] == [2, 1]
        assert versions[0]["message"] == "deeper pocket"
        assert versions[0]["author"] == "bob"

        latest = await bob.get("/api/files/1234567_A1.mcam/content")
        assert latest.content == v2
        assert latest.headers["etag"] == f'"{hashlib.sha256(v2).hexdigest()}"'
        assert "attachment" in latest.headers["content-disposition"]
        first = await bob.get("/api/files/1234567_A1.mcam/content", params={"version": 1})
        assert first.content == mcam(b"v1")


async def test_checkout_by_another_user_is_refused_with_the_holder_named(vault: Vault) -> None:
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await upload(admin, "1234567_A1.mcam", mcam())
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        response = await bob.post("/api/files/1234567_A1.mcam/checkout", json={})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "locked"
        assert "admin" in error["message"]


async def test_checkin_by_non_holder_is_refused_and_keeps_the_lock(vault: Vault) -> None:
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await upload(admin, "1234567_A1.mcam", mcam())
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        response = await checkin(bob, "1234567_A1.mcam", mcam(b"sneaky"))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_lock_holder"
        record = (await bob.get("/api/files/1234567_A1.mcam")).json()
        assert (record["version"], record["lock"]["user"]) == (1, "admin")
        cancel = await bob.post("/api/files/1234567_A1.mcam/cancel-checkout")
        assert cancel.status_code == 409


async def test_checkin_keep_locked_and_major_revision(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam())
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        kept = await checkin(admin, "1234567_A1.mcam", mcam(b"2"), keep_locked="true")
        assert kept.json()["lock"]["user"] == "admin"
        major = await checkin(admin, "1234567_A1.mcam", mcam(b"3"), major="true")
        assert (major.json()["revision"], major.json()["lock"]) == ("2.0", None)


async def test_checkin_needs_a_message_and_valid_content(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam())
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        no_message = await checkin(admin, "1234567_A1.mcam", mcam(b"2"), message="")
        assert no_message.status_code == 400
        bad = await checkin(admin, "1234567_A1.mcam", b"garbage")
        assert bad.json()["error"]["code"] == "bad_content"
        record = (await admin.get("/api/files/1234567_A1.mcam")).json()
        assert (record["version"], record["lock"]["user"]) == (1, "admin")


async def test_cancel_checkout_releases_the_lock(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam())
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        response = await admin.post("/api/files/1234567_A1.mcam/cancel-checkout")
        assert response.status_code == 200
        assert response.json()["lock"] is None


async def test_revert_makes_a_new_version_with_old_content(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "0100200.nc", b"G0 X0\n")
        await admin.post("/api/files/0100200.nc/checkout", json={})
        await checkin(admin, "0100200.nc", b"G0 X1\n", keep_locked="true")
        response = await admin.post(
            "/api/files/0100200.nc/revert", json={"version": 1, "message": "back"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 3
        assert (await admin.get("/api/files/0100200.nc/content")).content == b"G0 X0\n"


async def test_break_lock_needs_an_admin_and_a_reason(vault: Vault) -> None:
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await upload(admin, "1234567_A1.mcam", mcam())
        await bob.post("/api/files/1234567_A1.mcam/checkout", json={})
        refused = await bob.post("/api/files/1234567_A1.mcam/break-lock", json={"reason": "x"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        empty = await admin.post("/api/files/1234567_A1.mcam/break-lock", json={"reason": " "})
        assert empty.status_code == 400
        done = await admin.post(
            "/api/files/1234567_A1.mcam/break-lock", json={"reason": "bob is on holiday"}
        )
        assert done.status_code == 200
        assert done.json()["lock"] is None


async def test_delete_is_admin_only_refused_while_locked_and_keeps_history(
    vault: Vault,
) -> None:
    async with await vault.login("admin") as admin, await vault.add_user("bob") as bob:
        await upload(admin, "1234567_A1.mcam", mcam())
        assert (await bob.delete("/api/files/1234567_A1.mcam")).status_code == 403
        await bob.post("/api/files/1234567_A1.mcam/checkout", json={})
        locked = await admin.delete("/api/files/1234567_A1.mcam")
        assert (locked.status_code, locked.json()["error"]["code"]) == (409, "locked")
        await bob.post("/api/files/1234567_A1.mcam/cancel-checkout")
        assert (await admin.delete("/api/files/1234567_A1.mcam")).status_code == 204
        assert (await admin.get("/api/files")).json()["groups"] == {}
        assert (await admin.get("/api/files/1234567_A1.mcam")).status_code == 404
        commits = vault.camvault.vault.repo.all_commits()
        assert [c.action for c in commits] == ["upload", "delete"]


async def test_a_deleted_name_can_be_uploaded_again_and_continues_its_history(
    vault: Vault,
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam(b"1"))
        await admin.delete("/api/files/1234567_A1.mcam")
        again = await upload(admin, "1234567_A1.mcam", mcam(b"2"))
        assert again.status_code == 201
        assert (again.json()["version"], again.json()["revision"]) == (2, "2.0")


async def test_range_requests_return_partial_content(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        content = mcam(bytes(range(256)) * 100)
        await upload(admin, "1234567_A1.mcam", content)
        response = await admin.get(
            "/api/files/1234567_A1.mcam/content", headers={"Range": "bytes=10-99"}
        )
        assert response.status_code == 206
        assert response.content == content[10:100]


async def test_unknown_file_and_version_are_not_found(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        missing = await admin.get("/api/files/nope.mcam")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
        await upload(admin, "1234567_A1.mcam", mcam())
        response = await admin.get("/api/files/1234567_A1.mcam/content", params={"version": 9})
        assert response.status_code == 404


async def test_plain_users_can_upload_and_check_out(vault: Vault) -> None:
    async with await vault.add_user("carol", Role.USER) as carol:
        assert (await upload(carol, "7654321.emcam", b"emcam")).status_code == 201
        response = await carol.post("/api/files/7654321.emcam/checkout", json={})
        assert response.json()["lock"]["user"] == "carol"
