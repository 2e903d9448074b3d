"""Locks are exclusive in the database and concurrent writes keep git and the DB in step."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from helpers import Vault, checkin, mcam, upload

pytestmark = pytest.mark.anyio


async def test_fifty_concurrent_checkouts_by_two_users_give_one_holder(vault: Vault) -> None:
    async with (
        await vault.login("admin") as admin,
        await vault.add_user("ann") as ann,
        await vault.add_user("ben") as ben,
    ):
        await upload(admin, "1234567_A1.mcam", mcam())
        clients = [ann, ben] * 25
        responses = await asyncio.gather(
            *(c.post("/api/files/1234567_A1.mcam/checkout", json={}) for c in clients)
        )
        by_user: dict[str, set[int]] = {"ann": set(), "ben": set()}
        for client, response in zip(clients, responses, strict=True):
            by_user["ann" if client is ann else "ben"].add(response.status_code)
        holder = (await admin.get("/api/files/1234567_A1.mcam")).json()["lock"]["user"]
        loser = "ben" if holder == "ann" else "ann"
        assert by_user[holder] == {200}
        assert by_user[loser] == {409}


async def test_concurrent_uploads_and_checkins_all_land_in_git_and_the_db(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        names = [f"{1000000 + i}_A.mcam" for i in range(12)]
        created = await asyncio.gather(
            *(upload(admin, name, mcam(name.encode())) for name in names)
        )
        assert {r.status_code for r in created} == {201}
        for name in names[:6]:
            await admin.post(f"/api/files/{name}/checkout", json={})
        checked_in = await asyncio.gather(
            *(checkin(admin, name, mcam(b"v2" + name.encode())) for name in names[:6])
        )
        assert {r.status_code for r in checked_in} == {200}

        listing = (await admin.get("/api/files")).json()["groups"]["10XXXXX"]
        assert sorted(f["filename"] for f in listing) == sorted(names)

    repo = vault.camvault.vault.repo
    commits = repo.all_commits()
    assert len(commits) == 18
    in_git = {(c.filename, c.version, c.sha256) for c in commits}
    async with await vault.login("admin") as admin:
        in_db = set()
        for name in names:
            for v in (await admin.get(f"/api/files/{name}/versions")).json():
                in_db.add((name, v["version"], v["sha256"]))
    assert in_git == in_db
    fsck = await anyio.run_process(["git", "-C", str(repo.path), "fsck", "--strict"], check=False)
    assert fsck.returncode == 0, fsck.stderr


async def test_each_change_appends_exactly_one_event_with_increasing_seq(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        seqs = [(await admin.get("/api/files")).json()["seq"]]
        await upload(admin, "1234567_A1.mcam", mcam())
        seqs.append((await admin.get("/api/files")).json()["seq"])
        await admin.post("/api/files/1234567_A1.mcam/checkout", json={})
        seqs.append((await admin.get("/api/files")).json()["seq"])
        await checkin(admin, "1234567_A1.mcam", mcam(b"2"))
        seqs.append((await admin.get("/api/files")).json()["seq"])
        refused = await admin.post("/api/files/1234567_A1.mcam/cancel-checkout")
        assert refused.status_code == 409
        seqs.append((await admin.get("/api/files")).json()["seq"])
    assert [b - a for a, b in zip(seqs, seqs[1:], strict=False)] == [1, 1, 1, 0]
