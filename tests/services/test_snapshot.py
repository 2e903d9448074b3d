"""The file list kept current from events equals the list loaded fresh from the database."""

from __future__ import annotations

import random

import orjson
import pytest
from anyio import to_thread
from helpers import Vault, checkin, mcam, upload

from camvault.services.snapshot import SnapshotCache

pytestmark = pytest.mark.anyio

NAMES = ["1234567_A1.mcam", "1234567_A2.mcam", "7654321.nc", "fixture.vnc", "Zeta.emcam"]


async def test_the_incremental_list_always_equals_a_fresh_load(vault: Vault) -> None:
    rng = random.Random(7)
    cache = vault.camvault.vault.snapshots
    async with await vault.login("admin") as admin:
        await to_thread.run_sync(cache.get)  # load once; from here on it replays events
        for step in range(60):
            name = rng.choice(NAMES)
            action = rng.choice(["upload", "checkout", "checkin", "cancel", "delete"])
            if action == "upload":
                await upload(admin, name, mcam(f"{step}".encode()), description=f"d{step}")
            elif action == "checkout":
                await admin.post(f"/api/files/{name}/checkout", json={"message": f"m{step}"})
            elif action == "checkin":
                await checkin(admin, name, mcam(f"c{step}".encode()), keep_locked="true")
            elif action == "cancel":
                await admin.post(f"/api/files/{name}/cancel-checkout")
            else:
                await admin.delete(f"/api/files/{name}")
            kept = await to_thread.run_sync(cache.get)
            fresh = await to_thread.run_sync(SnapshotCache(vault.camvault.db).get)
            assert kept == fresh, f"after step {step} ({action} {name})"
            served = (await admin.get("/api/files")).json()
            assert served == orjson.loads(fresh[1])
