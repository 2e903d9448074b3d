"""Accounts: the admin's user management, the last-admin rule, and changing your own password."""

from __future__ import annotations

import re
from typing import Any

import pytest
from anyio import to_thread
from helpers import PASSWORD, Vault
from sqlalchemy import select

from camvault.store.models import events

pytestmark = pytest.mark.anyio


def user_events(vault: Vault) -> list[Any]:
    with vault.camvault.db.read() as conn:
        return conn.execute(
            select(events).where(events.c.type.like("user.%")).order_by(events.c.seq)
        ).all()


async def test_every_admin_operation_refuses_a_plain_user(vault: Vault) -> None:
    """Enumerated from the OpenAPI spec, so a new /api/admin route is covered by itself."""
    async with await vault.login("admin") as admin:
        spec = (await admin.get("/api/openapi.json")).json()
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, item in spec["paths"].items()
        if path.startswith("/api/admin")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 3
    async with await vault.add_user("ann") as ann:
        for method, path in operations:
            response = await ann.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"


async def test_an_admin_creates_lists_and_changes_accounts(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        created = await admin.post(
            "/api/admin/users", json={"username": "bob", "role": "user", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        assert created.json()["username"] == "bob" and created.json()["disabled"] is False
        assert "password" not in created.text
        again = await admin.post(
            "/api/admin/users", json={"username": "bob", "role": "user", "password": PASSWORD}
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "exists"
        weak = await admin.post(
            "/api/admin/users", json={"username": "cy", "role": "user", "password": "password"}
        )
        assert weak.status_code == 400 and "password" in weak.json()["error"]["message"]
        listed = (await admin.get("/api/admin/users")).json()
        assert [u["username"] for u in listed] == ["admin", "bob"]
        promoted = await admin.patch("/api/admin/users/bob", json={"role": "admin"})
        assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
        missing = await admin.patch("/api/admin/users/nobody", json={"role": "admin"})
        assert missing.status_code == 404
    changes = [(e.actor, e.data) for e in user_events(vault) if e.type == "user.updated"]
    assert changes == [("admin", {"username": "bob", "role": "admin"})]


async def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        for change in ({"disabled": True}, {"role": "user"}):
            refused = await admin.patch("/api/admin/users/admin", json=change)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "last_admin"
        await admin.post(
            "/api/admin/users", json={"username": "eve", "role": "admin", "password": PASSWORD}
        )
        # A disabled admin does not count as the other admin.
        assert (await admin.patch("/api/admin/users/eve", json={"disabled": True})).is_success
        refused = await admin.patch("/api/admin/users/admin", json={"role": "user"})
        assert refused.status_code == 409
        assert (await admin.patch("/api/admin/users/eve", json={"disabled": False})).is_success
        demoted = await admin.patch("/api/admin/users/admin", json={"role": "user"})
        assert demoted.status_code == 200 and demoted.json()["role"] == "user"
        # The cached session follows the demotion at once: admin is a plain user now.
        assert (await admin.get("/api/admin/users")).status_code == 403


async def test_disabling_a_user_ends_their_sessions_and_login(vault: Vault) -> None:
    ann = await vault.add_user("ann")
    async with vault.client() as browser, ann:
        await browser.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
        assert (await browser.get("/api/files")).status_code == 200
        assert (await ann.get("/api/files")).status_code == 200
        async with await vault.login("admin") as admin:
            assert (await admin.patch("/api/admin/users/ann", json={"disabled": True})).is_success
            assert (await browser.get("/api/files")).status_code == 401
            assert (await ann.get("/api/files")).status_code == 401
            refused = await browser.post(
                "/api/auth/login", json={"username": "ann", "password": PASSWORD}
            )
            assert refused.status_code == 401
            assert (await admin.patch("/api/admin/users/ann", json={"disabled": False})).is_success
    async with await vault.login("ann") as back:
        assert (await back.get("/api/files")).status_code == 200


async def test_an_admin_password_reset_ends_the_users_sessions(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann, await vault.login("admin") as admin:
        reset = await admin.patch("/api/admin/users/ann", json={"password": "a-fresh-secret-1"})
        assert reset.status_code == 200
        assert (await ann.get("/api/files")).status_code == 401
    async with await vault.login("ann", "a-fresh-secret-1") as ann:
        assert (await ann.get("/api/auth/me")).json()["username"] == "ann"
    last = user_events(vault)[-2]  # the reset, then ann's login
    assert last.type == "user.updated" and last.data["password_reset"] is True
    assert "a-fresh-secret-1" not in str(last.data)


async def test_changing_your_own_password_keeps_this_session_and_ends_the_others(
    vault: Vault,
) -> None:
    this = await vault.add_user("ann")
    other = await vault.login("ann")
    async with this, other:
        wrong = await this.post(
            "/api/auth/password", json={"current": "not-it", "new": "my-second-secret"}
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
        for weak, why in (("short", "at least"), ("ann-ann-1", "username"), ("12345678", "guess")):
            answer = await this.post("/api/auth/password", json={"current": PASSWORD, "new": weak})
            assert answer.status_code == 400 and why in answer.json()["error"]["message"]
        changed = await this.post(
            "/api/auth/password", json={"current": PASSWORD, "new": "my-second-secret"}
        )
        assert changed.status_code == 204, changed.text
        assert (await this.get("/api/files")).status_code == 200
        assert (await other.get("/api/files")).status_code == 401
    async with vault.client() as anon:
        old = await anon.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
        assert old.status_code == 401
    async with await vault.login("ann", "my-second-secret"):
        pass


async def test_password_guesses_through_the_change_form_are_rate_limited(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann:
        codes = []
        for i in range(5):
            answer = await ann.post(
                "/api/auth/password", json={"current": f"guess-{i}", "new": "my-second-secret"}
            )
            codes.append(answer.status_code)
    assert codes[:3] == [400, 400, 400] and codes[3:] == [429, 429]


async def test_accounts_made_by_the_service_show_in_the_list(vault: Vault) -> None:
    from camvault.services.auth import Role

    await to_thread.run_sync(vault.camvault.auth.create_user, "zed", Role.USER, PASSWORD)
    async with await vault.login("admin") as admin:
        names = [u["username"] for u in (await admin.get("/api/admin/users")).json()]
    assert "zed" in names
