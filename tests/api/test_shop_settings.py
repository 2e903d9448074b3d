"""Shop settings: validated, stored, applied at once without a restart, logged, and kept."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import Vault, mcam, upload

from camvault.api.app import create_app
from camvault.core import Camvault
from camvault.settings import Settings

pytestmark = pytest.mark.anyio


async def patch(admin: httpx.AsyncClient, body: dict[str, Any], **params: str) -> Any:
    answer = await admin.patch("/api/admin/settings", json=body, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_defaults_come_from_the_settings_file(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        answer = (await admin.get("/api/admin/settings")).json()
    assert answer["settings"] == answer["defaults"]
    settings = answer["settings"]
    assert settings["allowed_extensions"] == [".mcam", ".emcam", ".vnc", ".nc", ".link"]
    assert settings["content_signatures"] == {".mcam": "894844460d0a1a0a"}
    assert settings["group_rule"] == {"digits": 7, "keep": 2}
    assert settings["name_pattern"] is None


async def test_a_new_name_pattern_applies_to_the_next_upload(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "fixture.mcam", mcam())).status_code == 201
        result = await patch(admin, {"name_pattern": r"\d{7}_[A-Z0-9]+\.\w+"})
        assert result["saved"] is True
        refused = await upload(admin, "another-fixture.mcam", mcam())
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_name"
        assert "naming pattern" in refused.json()["error"]["message"]
        assert (await upload(admin, "1234567_A1.mcam", mcam())).status_code == 201
        # Files already in the vault stay usable.
        taken = await admin.post("/api/files/fixture.mcam/checkout", json={})
        assert taken.status_code == 200
        public = (await admin.get("/api/config")).json()
        assert public["name_pattern"] == r"\d{7}_[A-Z0-9]+\.\w+"


async def test_a_dry_run_lists_the_names_that_would_fail_and_changes_nothing(
    vault: Vault,
) -> None:
    async with await vault.login("admin") as admin:
        for name in ("1234567_A1.mcam", "fixture.mcam", "7654321.vnc"):
            assert (await upload(admin, name, mcam())).status_code == 201
        body = {"name_pattern": r"\d{7}.*", "allowed_extensions": [".mcam", ".nc"]}
        preview = await patch(admin, body, dry_run="true")
        assert preview["saved"] is False
        failing = {f["filename"]: f["reason"] for f in preview["effects"]["failing_names"]}
        assert failing == {
            "fixture.mcam": "does not match the name pattern",
            "7654321.vnc": "extension not allowed",
        }
        current = (await admin.get("/api/admin/settings")).json()["settings"]
        assert current["name_pattern"] is None
        log = (await admin.get("/api/audit", params={"type": "config"})).json()["events"]
        assert log == []


async def test_extensions_signatures_and_size_apply_at_once(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await patch(admin, {"allowed_extensions": ["mcam", ".NC"]})
        refused = await upload(admin, "part.vnc", b"anything")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_type"
        # The HDF5 check switched off for .mcam, a new one required for .nc.
        await patch(admin, {"content_signatures": {".mcam": None, ".nc": "25"}})
        assert (await upload(admin, "plain.mcam", b"not hdf5")).status_code == 201
        bad = await upload(admin, "prog.nc", b"G0 X0\n")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_content"
        assert (await upload(admin, "prog.nc", b"%\nG0 X0\n%\n")).status_code == 201
        await patch(admin, {"max_upload_mb": 0.001})  # about 1 KB
        big = await upload(admin, "big.mcam", mcam(b"x" * 5000))
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"


async def test_a_new_group_rule_regroups_the_list(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        for name in ("1234567_A1.mcam", "12345_B.mcam", "fixture.mcam"):
            assert (await upload(admin, name, mcam())).status_code == 201
        await patch(admin, {"group_rule": {"digits": 5, "keep": 3}})
        groups = (await admin.get("/api/files")).json()["groups"]
        placed = {f["filename"]: (g, f["subgroup"]) for g, fs in groups.items() for f in fs}
        assert placed == {
            "1234567_A1.mcam": ("123XX", "12345"),
            "12345_B.mcam": ("123XX", "12345"),
            "fixture.mcam": ("Misc", None),
        }
        created = (await upload(admin, "54321_C.mcam", mcam())).json()
        assert (created["group"], created["subgroup"]) == ("543XX", "54321")
        one = (await admin.get("/api/files/1234567_A1.mcam")).json()
        assert (one["group"], one["subgroup"]) == ("123XX", "12345")


async def test_invalid_settings_are_refused_with_a_reason_and_change_nothing(
    vault: Vault,
) -> None:
    cases = [
        ({"name_pattern": "([unclosed"}, "regular expression"),
        ({"allowed_extensions": ["not an extension"]}, "not an extension"),
        ({"allowed_extensions": []}, "allowed_extensions"),
        ({"content_signatures": {".mcam": "zz"}}, "hex"),
        ({"group_rule": {"digits": 3, "keep": 5}}, "keep more digits"),
        ({"max_upload_mb": -1}, "max_upload_mb"),
        ({"ws_allowed_origins": ["javascript:alert(1)"]}, "origin"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({}, "at least one"),
    ]
    async with await vault.login("admin") as admin:
        before = (await admin.get("/api/admin/settings")).json()
        for body, why in cases:
            answer = await admin.patch("/api/admin/settings", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert why in answer.json()["error"]["message"], (body, answer.json())
        assert (await admin.get("/api/admin/settings")).json() == before


async def test_changes_are_logged_and_survive_a_restart(vault: Vault, settings: Settings) -> None:
    async with await vault.login("admin") as admin:
        await patch(admin, {"stale_lock_hours": 4, "session_hours": 2})
        await patch(admin, {"stale_lock_hours": 4})  # no change: no event
        log = (await admin.get("/api/audit", params={"type": "config.changed"})).json()["events"]
    assert len(log) == 1
    assert log[0]["actor"] == "admin"
    assert log[0]["details"]["changed"] == ["session_hours", "stale_lock_hours"]
    assert log[0]["details"]["values"] == {"session_hours": 2.0, "stale_lock_hours": 4.0}

    # A second process on the same database reads the stored values at startup.
    other = Camvault(settings)
    app = create_app(settings, other)
    async with app.router.lifespan_context(app):
        assert other.shop.current.stale_lock_hours == 4
        assert other.auth.session_lifetime.total_seconds() == 2 * 3600


async def test_session_hours_and_allowed_origins_apply_to_the_next_login(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await patch(admin, {"session_hours": 1, "ws_allowed_origins": ["https://cam.shop.local"]})
    async with vault.client() as browser:
        login = await browser.post(
            "/api/auth/login",
            json={"username": "admin", "password": "correct-horse-battery"},
            headers={"Origin": "https://cam.shop.local"},
        )
        assert login.status_code == 200
        assert "Max-Age=3600" in login.headers["set-cookie"]
        allowed = await browser.post(
            "/api/files/x.mcam/checkout", json={}, headers={"Origin": "https://cam.shop.local"}
        )
        assert allowed.status_code == 404  # past the CSRF check
