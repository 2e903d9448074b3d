"""The page, the client's settings, and name checks before upload."""

from __future__ import annotations

import pytest
from helpers import Vault, mcam, upload

pytestmark = pytest.mark.anyio


async def test_the_page_is_served_with_a_strict_content_security_policy(vault: Vault) -> None:
    async with vault.client() as anon:
        page = await anon.get("/")
        script = await anon.get("/static/js/app.js")
    assert page.status_code == 200
    assert '<script type="module" src="/static/js/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # Nothing on the page comes from another host.
    assert "http://" not in page.text and "https://" not in page.text


async def test_config_tells_a_signed_in_client_the_rules(vault: Vault) -> None:
    async with vault.client() as anon:
        assert (await anon.get("/api/config")).status_code == 401
    async with await vault.login("admin") as admin:
        config = (await admin.get("/api/config")).json()
    assert ".mcam" in config["allowed_extensions"]
    assert config["max_upload_bytes"] == vault.camvault.settings.max_upload_bytes
    assert config["stale_lock_hours"] > 0


async def test_names_are_checked_with_the_upload_rules_without_writing(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567_A1.mcam", mcam())
        seq = (await admin.get("/api/files")).json()["seq"]
        response = await admin.post(
            "/api/names/check",
            json={"names": ["7654321.mcam", "1234567_a1.MCAM", "bad?.mcam", "x.txt"]},
        )
        assert response.status_code == 200
        results = response.json()["results"]
        assert [(r["name"], r["ok"], r["code"]) for r in results] == [
            ("7654321.mcam", True, None),
            ("1234567_a1.MCAM", False, "exists"),
            ("bad?.mcam", False, "invalid_name"),
            ("x.txt", False, "invalid_type"),
        ]
        assert all(r["message"] for r in results if not r["ok"])
        assert (await admin.get("/api/files")).json()["seq"] == seq
