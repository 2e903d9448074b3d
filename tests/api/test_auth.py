"""Authentication, sessions, CSRF, rate limiting and the one error shape."""

from __future__ import annotations

import pytest
from helpers import PASSWORD, Vault, mcam, upload

pytestmark = pytest.mark.anyio

ENDPOINTS = [
    ("GET", "/api/files"),
    ("POST", "/api/files"),
    ("GET", "/api/files/1234567.mcam"),
    ("GET", "/api/files/1234567.mcam/content"),
    ("GET", "/api/files/1234567.mcam/versions"),
    ("POST", "/api/files/1234567.mcam/checkout"),
    ("POST", "/api/files/1234567.mcam/checkin"),
    ("POST", "/api/files/1234567.mcam/cancel-checkout"),
    ("POST", "/api/files/1234567.mcam/revert"),
    ("POST", "/api/files/1234567.mcam/break-lock"),
    ("DELETE", "/api/files/1234567.mcam"),
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/logout"),
]


async def test_health_answers_without_authentication(vault: Vault) -> None:
    async with vault.client() as anon:
        response = await anon.get("/api/health")
    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "database": "ok", "vault": "ok"},
    )


async def test_health_says_which_part_is_unreachable(
    vault: Vault, database_url: str | None
) -> None:
    repo = vault.camvault.settings.repo_path
    (repo / "HEAD").rename(repo / "HEAD.away")
    async with vault.client() as anon:
        response = await anon.get("/api/health")
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "ok",
            "vault": "unavailable",
        }
        (repo / "HEAD.away").rename(repo / "HEAD")
        assert (await anon.get("/api/health")).status_code == 200
        if database_url is not None:
            from sqlalchemy import text
            from sqlalchemy.engine import make_url

            from camvault.store.db import null_pool_engine

            name = make_url(database_url).database
            admin = null_pool_engine(
                make_url(database_url)
                .set(database="postgres", drivername="postgresql+psycopg")
                .render_as_string(hide_password=False)
            )
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                    ),
                    {"n": name},
                )
            try:
                response = await anon.get("/api/health")
                assert response.status_code == 503
                assert response.json()["database"] == "unavailable"
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
                admin.dispose()
            assert (await anon.get("/api/health")).status_code == 200


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_every_endpoint_needs_authentication(vault: Vault, method: str, path: str) -> None:
    async with vault.client() as anon:
        response = await anon.request(method, path)
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "log in first: no valid session or token"}
    }


async def test_every_endpoint_in_the_openapi_spec_needs_authentication(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        spec = (await admin.get("/api/openapi.json")).json()
    async with vault.client() as anon:
        for extra in ("/api/openapi.json", "/api/docs"):
            assert (await anon.get(extra)).status_code == 401
        for path, operations in spec["paths"].items():
            for method in operations:
                if path in {"/api/health", "/api/auth/login"}:
                    continue
                concrete = path.replace("{name}", "1234567.mcam")
                response = await anon.request(method.upper(), concrete)
                assert response.status_code == 401, (method, path)


async def test_login_returns_user_and_token_and_sets_a_safe_cookie(vault: Vault) -> None:
    async with vault.client() as anon:
        response = await anon.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"] == {"username": "admin", "role": "admin"}
        assert len(body["token"]) >= 32
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # plain http in this test
        me = await anon.get("/api/auth/me")
        assert me.json() == {"username": "admin", "role": "admin"}


async def test_unknown_user_and_wrong_password_answer_identically(vault: Vault) -> None:
    async with vault.client() as anon:
        wrong = await anon.post("/api/auth/login", json={"username": "admin", "password": "nope"})
        unknown = await anon.post("/api/auth/login", json={"username": "ghost", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers


async def test_repeated_failed_logins_are_rate_limited(vault: Vault) -> None:
    async with vault.client() as anon:
        for _ in range(3):
            await anon.post("/api/auth/login", json={"username": "admin", "password": "bad"})
        limited = await anon.post(
            "/api/auth/login", json={"username": "admin", "password": PASSWORD}
        )
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0


async def test_logout_ends_that_token_only(vault: Vault) -> None:
    first = await vault.login("admin")
    second = await vault.login("admin")
    async with first, second:
        # Used first, so the token is in the session cache when the session ends.
        assert (await first.get("/api/files")).status_code == 200
        assert (await first.post("/api/auth/logout")).status_code == 204
        assert (await first.get("/api/files")).status_code == 401
        assert (await second.get("/api/files")).status_code == 200


async def test_a_password_change_ends_sessions_at_once(vault: Vault) -> None:
    from anyio import to_thread

    async with await vault.add_user("ann") as ann:
        assert (await ann.get("/api/files")).status_code == 200  # cached now
        await to_thread.run_sync(vault.camvault.auth.set_password, "ann", "a-new-password")
        assert (await ann.get("/api/files")).status_code == 401


async def test_a_session_ended_by_another_process_stops_within_the_cache_time(
    vault: Vault,
) -> None:
    """Another process (the CLI, another instance) deletes the session row: this process
    only learns it from the database, at the latest when the cached entry goes stale."""
    import asyncio

    from sqlalchemy import delete

    from camvault.store.models import sessions

    vault.camvault.auth.session_cache.ttl = 0.2
    async with await vault.login("admin") as admin:
        assert (await admin.get("/api/files")).status_code == 200
        with vault.camvault.db.write() as conn:
            conn.execute(delete(sessions))
        await asyncio.sleep(0.3)
        assert (await admin.get("/api/files")).status_code == 401


async def test_a_cross_site_login_is_refused(vault: Vault) -> None:
    async with vault.client() as browser:
        response = await browser.post(
            "/api/auth/login",
            json={"username": "admin", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_parallel_guesses_are_limited_like_a_sequence(vault: Vault) -> None:
    import asyncio

    async with vault.client() as anon:
        answers = await asyncio.gather(
            *(
                anon.post("/api/auth/login", json={"username": "admin", "password": f"g{i}"})
                for i in range(12)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(401) == 3  # login_max_failures in the test settings
    assert codes.count(429) == 9


async def test_cookie_requests_from_a_foreign_origin_are_refused(vault: Vault) -> None:
    async with vault.client() as browser:
        await browser.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        foreign = await browser.post(
            "/api/files/x.mcam/checkout", json={}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "forbidden"
        missing = await browser.post("/api/files/x.mcam/checkout", json={})
        assert missing.status_code == 403
        same = await browser.post(
            "/api/files/x.mcam/checkout", json={}, headers={"Origin": "http://testserver"}
        )
        assert same.status_code == 404  # past CSRF: the file does not exist
        via_referer = await browser.post(
            "/api/files/x.mcam/checkout", json={}, headers={"Referer": "http://testserver/app"}
        )
        assert via_referer.status_code == 404
        # Safe methods need no Origin.
        assert (await browser.get("/api/files")).status_code == 200


async def test_bearer_requests_need_no_origin(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        await upload(admin, "1234567.mcam", mcam())
        response = await admin.post(
            "/api/files/1234567.mcam/checkout", json={}, headers={"Origin": "https://elsewhere"}
        )
    assert response.status_code == 200


async def test_disabled_or_expired_tokens_are_refused(vault: Vault) -> None:
    async with vault.client("not-a-real-token") as bogus:
        assert (await bogus.get("/api/files")).status_code == 401


async def test_errors_share_one_shape(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        cases = [
            await admin.get("/api/files/missing.mcam"),
            await admin.post("/api/files/missing.mcam/revert", json={"version": "x"}),
            await admin.get("/api/no-such-route"),
            await admin.post("/api/files", content=b"x", headers={"content-type": "text/plain"}),
        ]
    for response in cases:
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
        assert body["error"]["code"].replace("_", "").isalpha()
        assert body["error"]["message"]
    assert [r.status_code for r in cases] == [404, 400, 404, 400]


async def test_openapi_documents_every_status_each_route_can_answer(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        spec = (await admin.get("/api/openapi.json")).json()
        docs = await admin.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "//cdn" not in docs.text  # the docs page loads nothing from other hosts
    operations = spec["paths"]
    for path, methods in operations.items():
        for method, op in methods.items():
            codes = set(op["responses"])
            if path not in {"/api/health", "/api/auth/login"}:
                assert "401" in codes, (method, path)
            if path.startswith("/api/files/{name}"):
                assert "404" in codes, (method, path)
    assert "409" in operations["/api/files/{name}/checkout"]["post"]["responses"]
    assert "413" in operations["/api/files"]["post"]["responses"]
    assert "429" in operations["/api/auth/login"]["post"]["responses"]
    assert "multipart/form-data" in operations["/api/files"]["post"]["requestBody"]["content"]
