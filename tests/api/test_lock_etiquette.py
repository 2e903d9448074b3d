"""Asking the holder to release a file: a notification for them and an audit entry."""

from __future__ import annotations

import pytest
from helpers import Vault, mcam, upload

pytestmark = pytest.mark.anyio

NAME = "1234567_A1.mcam"


async def test_asking_the_holder_is_logged_for_the_audit(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann, await vault.add_user("bob") as bob:
        await upload(ann, NAME, mcam())
        assert (await ann.post(f"/api/files/{NAME}/checkout", json={})).status_code == 200
        asked = await bob.post(
            f"/api/files/{NAME.upper()}/request-unlock", json={"message": "Machine 4 waits."}
        )
        assert asked.status_code == 200, asked.text
        assert asked.json() == {"holder": "ann", "filename": NAME}
    async with await vault.login("admin") as admin:
        log = (await admin.get("/api/audit", params={"type": "notification"})).json()["events"]
    assert len(log) == 1
    entry = log[0]
    assert (entry["actor"], entry["filename"], entry["message"]) == (
        "bob",
        NAME,
        "Machine 4 waits.",
    )
    assert entry["details"] == {
        "to": "ann", "kind": "unlock_request", "from": "bob", "filename": NAME
    }  # fmt: skip


async def test_asking_needs_someone_else_holding_the_file(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann:
        await upload(ann, NAME, mcam())
        free = await ann.post(f"/api/files/{NAME}/request-unlock", json={})
        assert free.status_code == 409 and free.json()["error"]["code"] == "not_locked"
        await ann.post(f"/api/files/{NAME}/checkout", json={})
        mine = await ann.post(f"/api/files/{NAME}/request-unlock", json={})
        assert mine.status_code == 409 and "yourself" in mine.json()["error"]["message"]
        missing = await ann.post("/api/files/7777777.mcam/request-unlock", json={})
        assert missing.status_code == 404


async def test_asking_again_within_a_minute_is_refused(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann, await vault.add_user("bob") as bob:
        await upload(ann, NAME, mcam())
        await ann.post(f"/api/files/{NAME}/checkout", json={})
        assert (await bob.post(f"/api/files/{NAME}/request-unlock", json={})).status_code == 200
        again = await bob.post(f"/api/files/{NAME}/request-unlock", json={"message": "now!"})
        assert again.status_code == 429
        assert again.json()["error"]["code"] == "rate_limited"
        assert int(again.headers["retry-after"]) == 60
        async with await vault.login("admin") as admin:  # someone else may still ask
            asked = await admin.post(f"/api/files/{NAME}/request-unlock", json={})
            assert asked.status_code == 200
