"""/api/admin/mirror: admins configure, inspect and remove the mirror; users cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e.server import free_port, git
from helpers import Vault
from sqlalchemy import select

from camvault.store.models import events, mirror
from mirror.util import MIRROR, wait_status

pytestmark = pytest.mark.anyio

TOKEN = "glpat-Zq9xW2vE7rT1yU3iO5pA"


def nowhere() -> str:
    """An https remote on a loopback port nothing listens on: pushes fail without traffic
    leaving the machine."""
    return f"https://127.0.0.1:{free_port()}/shop/vault.git"


def bare_remote(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    return remote


async def test_users_get_403_and_strangers_401(vault: Vault) -> None:
    async with await vault.add_user("ann") as ann, vault.client() as anon:
        for method in ("GET", "PUT", "DELETE"):
            body = {"url": nowhere()} if method == "PUT" else None
            response = await ann.request(method, MIRROR, json=body)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "forbidden"
            response = await anon.request(method, MIRROR, json=body)
            assert response.status_code == 401
        assert (await ann.post(f"{MIRROR}/push")).status_code == 403


async def test_unconfigured_mirror_reads_as_such(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        status = (await admin.get(MIRROR)).json()
        assert status["configured"] is False and status["state"] == "unconfigured"
        assert (await admin.delete(MIRROR)).status_code == 404
        response = await admin.post(f"{MIRROR}/push")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "url",
    [
        f"https://oauth2:{TOKEN}@gitlab.example.com/shop/vault.git",
        f"https://gitlab.example.com/shop/vault.git?private_token={TOKEN}",
        "ext::sh%20-c%20id",
        "ftp://example.com/vault.git",
    ],
)
async def test_urls_with_credentials_or_odd_schemes_get_a_clear_400(vault: Vault, url: str) -> None:
    async with await vault.login("admin") as admin:
        response = await admin.put(MIRROR, json={"url": url})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_mirror_url"
        assert TOKEN not in response.text
        assert (await admin.get(MIRROR)).json()["configured"] is False, "nothing changed"


async def test_a_token_for_a_file_remote_is_refused(vault: Vault, tmp_path: Path) -> None:
    async with await vault.login("admin") as admin:
        url = f"file://{tmp_path / 'remote.git'}"
        response = await admin.put(MIRROR, json={"url": url, "token": TOKEN})
        assert response.status_code == 400
        assert "only used with https" in response.json()["error"]["message"]


async def test_configure_push_and_remove_are_audited_without_the_token(
    vault: Vault, tmp_path: Path
) -> None:
    remote = bare_remote(tmp_path)
    async with await vault.login("admin") as admin:
        url = nowhere()
        response = await admin.put(MIRROR, json={"url": url, "token": TOKEN})
        assert response.status_code == 200, response.text
        shown = response.json()
        assert shown["url"] == url and shown["token"] == "stored"
        assert shown["configured_by"] == "admin" and shown["username"] == "oauth2"
        assert TOKEN not in response.text and TOKEN not in (await admin.get(MIRROR)).text

        # Replace with a file remote; the token goes with the old URL.
        response = await admin.put(MIRROR, json={"url": f"file://{remote}"})
        assert response.status_code == 200 and response.json()["token"] is None
        status = await wait_status(admin, lambda s: s["state"] == "synced")
        assert status["last_pushed"] is None and status["pending"] == 0  # an empty vault
        assert (await admin.delete(MIRROR)).status_code == 204
        assert (await admin.get(MIRROR)).json()["configured"] is False

    with vault.camvault.db.read() as conn:
        rows = conn.execute(select(events).order_by(events.c.seq)).all()
        assert conn.execute(select(mirror)).first() is None
    kinds = [(r.type, r.actor) for r in rows if r.type.startswith("mirror.")]
    assert kinds[:2] == [("mirror.configured", "admin"), ("mirror.configured", "admin")]
    assert ("mirror.removed", "admin") in kinds
    assert kinds.index(("mirror.removed", "admin")) == len(kinds) - 1
    assert all(TOKEN not in json.dumps(r.data) for r in rows)


async def test_the_token_is_stored_encrypted(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        url = nowhere()
        assert (await admin.put(MIRROR, json={"url": url, "token": TOKEN})).status_code == 200
    with vault.camvault.db.read() as conn:
        row = conn.execute(select(mirror)).one()
    assert row.token_ciphertext and TOKEN not in row.token_ciphertext
    assert TOKEN not in (vault.camvault.settings.repo_path / "config").read_text()


async def test_without_a_key_a_token_gets_a_400_that_says_how_to_set_one(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vault.camvault.mirror, "cipher", None)
    async with await vault.login("admin") as admin:
        url = nowhere()
        response = await admin.put(MIRROR, json={"url": url, "token": TOKEN})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "mirror_key_missing"
        assert "CAMVAULT_MIRROR_KEY_FILE" in error["message"]
        assert (await admin.get(MIRROR)).json()["configured"] is False
        # Without a token it is fine (ssh keys, or a token from the environment).
        assert (await admin.put(MIRROR, json={"url": url})).status_code == 200


async def test_openapi_documents_the_mirror_routes_and_their_errors(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        spec = (await admin.get("/api/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths[MIRROR]) == {"get", "put", "delete"}
    assert set(paths[MIRROR]["put"]["responses"]) >= {"200", "400", "401", "403", "413"}
    assert "mirror_key_missing" in paths[MIRROR]["put"]["responses"]["400"]["description"]
    assert set(paths[MIRROR]["delete"]["responses"]) >= {"204", "401", "403", "404"}
    assert set(paths[f"{MIRROR}/push"]["post"]["responses"]) >= {"202", "401", "403", "404"}


async def test_a_put_without_token_keeps_it_for_the_same_url_only(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        url = nowhere()
        assert (await admin.put(MIRROR, json={"url": url, "token": TOKEN})).status_code == 200
        kept = await admin.put(MIRROR, json={"url": url, "username": "ci-bot"})
        assert kept.json()["token"] == "stored" and kept.json()["username"] == "ci-bot"
        cleared = await admin.put(MIRROR, json={"url": url, "token": None})
        assert cleared.json()["token"] is None
        assert (await admin.put(MIRROR, json={"url": url, "token": TOKEN})).status_code == 200
        moved = await admin.put(MIRROR, json={"url": url.replace("/shop/", "/other/")})
        assert moved.json()["token"] is None, "a token never follows the mirror to a new URL"
