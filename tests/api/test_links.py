"""Link files: a .link entry stands for a master file; it downloads the master, cannot be
checked out, keeps the master from being deleted, and survives a rebuild from git."""

from __future__ import annotations

import pytest
from helpers import Vault, checkin, mcam, upload

pytestmark = pytest.mark.anyio

MASTER = "7654321.mcam"
LINK = "1234567_ABC123.link"


async def make_link(client: object, name: str = LINK, target: str = MASTER) -> object:
    return await client.post(  # type: ignore[attr-defined]
        "/api/links", json={"name": name, "target": target, "description": "same program"}
    )


async def test_a_link_stands_for_its_master(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann:
        await upload(ann, MASTER, mcam(b"v1"))
        created = await make_link(ann, target=MASTER.upper())  # names ignore case
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["link_target"] == MASTER
        assert (record["group"], record["subgroup"]) == ("12XXXXX", "1234567")
        assert record["description"] == "same program"
        master = (await ann.get(f"/api/files/{MASTER}")).json()
        assert master["link_target"] is None

        # The master moves on; the link downloads whatever the master is now.
        await ann.post(f"/api/files/{MASTER}/checkout", json={})
        await checkin(ann, MASTER, mcam(b"v2"))
        body = await ann.get(f"/api/files/{LINK}/content")
        assert body.status_code == 200 and body.content == mcam(b"v2")
        assert MASTER in body.headers["content-disposition"]
        old = await ann.get(f"/api/files/{LINK}/content", params={"version": 1})
        assert old.content == mcam(b"v1")
        listed = (await ann.get("/api/files")).json()["groups"]["12XXXXX"]
        assert [f["filename"] for f in listed] == [LINK]


async def test_a_link_cannot_be_checked_out(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, MASTER, mcam())
        await make_link(admin)
        refused = await admin.post(f"/api/files/{LINK}/checkout", json={})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "is_link"
        assert f"check out {MASTER} instead" in refused.json()["error"]["message"]
        assert (await admin.get(f"/api/files/{LINK}")).json()["lock"] is None


async def test_a_master_with_links_cannot_be_deleted_until_they_are_removed(
    vault: Vault,
) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, MASTER, mcam())
        await make_link(admin)
        await make_link(admin, name="2222222_X.link")
        refused = await admin.delete(f"/api/files/{MASTER}")
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "has_links"
        assert LINK in error["message"] and "2222222_X.link" in error["message"]
        for name in (LINK, "2222222_X.link"):
            assert (await admin.delete(f"/api/files/{name}")).status_code == 204
        assert (await admin.delete(f"/api/files/{MASTER}")).status_code == 204


async def test_bad_links_are_refused_and_leave_nothing(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, MASTER, mcam())
        await make_link(admin)
        cases = [
            ({"name": "x.link", "target": "missing.mcam"}, 400, "not in the vault"),
            ({"name": "y.link", "target": LINK}, 400, "itself a link"),
            ({"name": "z.mcam", "target": MASTER}, 400, "ends in .link"),
            ({"name": "w.link", "target": ""}, 400, "exactly one file name"),
            ({"name": LINK, "target": MASTER}, 409, "already exists"),
        ]
        for body, status, why in cases:
            answer = await admin.post("/api/links", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert why in answer.json()["error"]["message"], (body, answer.json())
        names = {
            f["filename"]
            for fs in (await admin.get("/api/files")).json()["groups"].values()
            for f in fs
        }
        assert names == {MASTER, LINK}
        # A .link file uploaded by hand follows the same rules.
        refused = await upload(admin, "hand.link", b"nothing-here.mcam\n")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_content"
        made = await upload(admin, "hand.link", f"{MASTER}\n".encode())
        assert made.status_code == 201 and made.json()["link_target"] == MASTER
    assert not list(vault.camvault.tmp_dir.glob("spool-*")), "no temp file left behind"


async def test_a_rebuild_from_git_keeps_links(vault: Vault) -> None:
    from anyio import to_thread

    from camvault.services.rebuild import rebuild

    async with await vault.login("admin") as admin:
        await upload(admin, MASTER, mcam())
        await make_link(admin)
    camvault = vault.camvault
    await to_thread.run_sync(
        lambda: rebuild(camvault.db, camvault.vault.repo, camvault.vault.store)
    )
    async with await vault.login("admin") as admin:
        assert (await admin.get(f"/api/files/{LINK}")).json()["link_target"] == MASTER
