"""Shop settings reach every instance and every page without a restart: two real servers
share one data dir (one SQLite database); an admin changes the settings through one, and
the other applies them and tells its WebSocket clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.live import LiveClient
from e2e.server import Launcher, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "settings-test-password"
HDF5 = b"\x89HDF\r\n\x1a\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_settings_changed_on_one_instance_apply_on_the_other(
    launch: Launcher, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = launch.start(data, admin_password=PASSWORD)
    second = launch.start(data, admin_password=PASSWORD)
    token = first.login("admin", PASSWORD)
    with first.client(token) as api:
        for name in ("1234567_A1.mcam", "12345_B.mcam"):
            assert upload(api, name, HDF5 + b"x").status_code == 201
    watcher = await LiveClient(second.base_url, token).connect()
    await watcher.wait_for(lambda f: f["type"] == "FILE_LIST_UPDATED")

    with first.client(token) as api:
        changed = api.patch(
            "/api/admin/settings",
            json={"name_pattern": r"\d{5,}_.*", "group_rule": {"digits": 5, "keep": 2}},
        )
        assert changed.status_code == 200, changed.text

    config = await watcher.wait_for(lambda f: f["type"] == "CONFIG_CHANGED", timeout=5)
    assert config["payload"]["settings"]["name_pattern"] == r"\d{5,}_.*"
    # After the regrouping, a fresh list with the new groups follows.
    fresh = await watcher.wait_for(
        lambda f: f["type"] == "FILE_LIST_UPDATED" and f["seq"] >= config["seq"], timeout=5
    )
    assert sorted(fresh["payload"]) == ["12XXX"]
    assert {f["subgroup"] for f in fresh["payload"]["12XXX"]} == {"12345"}

    with second.client(token) as api:
        refused = upload(api, "fixture.mcam", HDF5)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_name"
        assert api.get("/api/config").json()["group_rule"] == {"digits": 5, "keep": 2}
        created = upload(api, "99999_Z.mcam", HDF5)
        assert created.status_code == 201
        assert created.json()["group"] == "99XXX"
    await asyncio.sleep(0.2)
    await watcher.close()
