"""What the fuzzers found, pinned as plain tests (SQLite and PostgreSQL): each failed before
its fix (the NUL ones on PostgreSQL), and a change in what the fuzzers happen to generate
must not let one come back."""

from __future__ import annotations

import pytest
from helpers import Vault, mcam, upload

pytestmark = pytest.mark.anyio


async def test_a_name_with_a_nul_is_simply_not_found(vault: Vault) -> None:
    # PostgreSQL refuses a NUL in a query parameter: these were 500s there.
    async with await vault.login("admin") as admin:
        for method, path in [
            ("GET", "/api/files/a%00b.mcam"),
            ("GET", "/api/files/a%00b.mcam/versions"),
            ("GET", "/api/files/a%00b.mcam/content"),
            ("POST", "/api/files/a%00b.mcam/checkout"),
            ("DELETE", "/api/files/a%00b.mcam"),
        ]:
            response = await admin.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
        response = await admin.patch("/api/admin/users/a%00b", json={"role": "user"})
        assert response.status_code == 404, response.text


async def test_audit_filters_with_a_nul_match_nothing(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        for query in ["user=a%00", "file=a%00.mcam", "type=file%00", "type=file&user=%00"]:
            response = await admin.get(f"/api/audit?{query}")
            assert response.status_code == 200, (query, response.text)
            assert response.json() == {"events": [], "next_before": None}
        csv = await admin.get("/api/audit?format=csv&user=a%00")
        assert csv.status_code == 200
        assert len(csv.text.strip().splitlines()) == 1  # the header only


async def test_an_audit_cursor_beyond_64_bits_is_refused(vault: Vault) -> None:
    # SQLite raised OverflowError binding it: a 500.
    async with await vault.login("admin") as admin:
        response = await admin.get(f"/api/audit?before={2**63}")
        assert response.status_code == 400, response.text
        assert (await admin.get(f"/api/audit?before={2**63 - 1}")).status_code == 200


async def test_audit_times_must_be_iso_dates(vault: Vault) -> None:
    # "0.5" used to be read as a Unix time and filter from 1970 without a word.
    async with await vault.login("admin") as admin:
        for value in ["0.5", "1700000000", "now"]:
            response = await admin.get("/api/audit", params={"since": value})
            assert response.status_code == 400, response.text
            assert "ISO 8601" in response.json()["error"]["message"]
        ok = await admin.get("/api/audit", params={"since": "2026-01-01T00:00:00Z"})
        assert ok.status_code == 200


async def test_a_405_names_every_method_of_the_path(vault: Vault) -> None:
    # Starlette's answer named only the first route of the path ("GET" for a file).
    async with await vault.login("admin") as admin:
        for path, allowed in [
            ("/api/files/x.mcam", "DELETE, GET, HEAD"),
            ("/api/files", "GET, HEAD, POST"),
            ("/api/admin/mirror", "DELETE, GET, HEAD, PUT"),
        ]:
            response = await admin.request("OPTIONS", path)
            assert response.status_code == 405
            assert response.headers["allow"] == allowed
            assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_bad_version_or_range_is_a_documented_400(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        assert (await upload(admin, "a.mcam", mcam(b"x"))).status_code == 201
        for headers, params in [({}, {"version": "0"}), ({"Range": "lines=1-2"}, {})]:
            response = await admin.get("/api/files/a.mcam/content", headers=headers, params=params)
            assert response.status_code == 400, response.text
        openapi = (await admin.get("/api/openapi.json")).json()
        assert "400" in openapi["paths"]["/api/files/{name}/content"]["get"]["responses"]


async def test_settings_the_document_does_not_let_be_null_are_refused_as_null(
    vault: Vault,
) -> None:
    # The document offered null for every setting; most of them then failed with a 400.
    async with await vault.login("admin") as admin:
        openapi = (await admin.get("/api/openapi.json")).json()
        properties = openapi["components"]["schemas"]["ShopSettingsPatch"]["properties"]
        for key in ["allowed_extensions", "max_upload_mb", "group_rule", "ws_allowed_origins"]:
            assert "anyOf" not in properties[key] and properties[key].get("type") != "null"
            response = await admin.patch("/api/admin/settings", json={key: None})
            assert response.status_code == 400, response.text
        assert (await admin.patch("/api/admin/settings", json={"name_pattern": None})).is_success
