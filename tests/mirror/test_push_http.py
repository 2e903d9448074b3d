"""The mirror over smart HTTP (git http-backend + a Git LFS server) with a token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from git_server import GitHttpServer
from helpers import Vault
from sqlalchemy import select

from camvault.store.models import events, mirror
from mirror.util import (
    MIRROR,
    Versions,
    clone_and_check,
    diverge,
    remote_lfs_objects,
    synced_at,
    vault_head,
    wait_status,
)

pytestmark = pytest.mark.anyio

TOKEN = "glpat-7hQ2mZx9Rk4Lw1Vb8Nc3"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "srv"
    root.mkdir()
    with GitHttpServer(root, TOKEN) as running:
        running.create_repo("vault.git")
        yield running


def assert_token_nowhere(vault: Vault, server: GitHttpServer, texts: list[str]) -> None:
    """Not in the API's answers or logs, nor in any file of the data dir (database, git
    config, refs...), nor in a row of the event log; the basic-auth form neither."""
    basic = server.auth_header().removeprefix("Basic ")
    for text in texts:
        assert TOKEN not in text and basic not in text
    for path in vault.camvault.settings.data.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert TOKEN.encode() not in raw and basic.encode() not in raw, path
    config = (vault.camvault.settings.repo_path / "config").read_text()
    assert "127.0.0.1" not in config, "no remote URL is written into git config"
    with vault.camvault.db.read() as conn:
        rows = conn.execute(select(events.c.data)).all()
        stored = conn.execute(select(mirror.c.token_ciphertext)).scalar_one_or_none()
    assert all(TOKEN not in json.dumps(r.data) for r in rows)
    assert stored is None or TOKEN not in stored


async def test_push_over_http_survives_the_server_going_away_and_loses_nothing(
    vault: Vault, server: GitHttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = vault.camvault.settings.data
    answers: list[str] = []
    async with await vault.login("admin") as admin:
        versions = Versions(admin)
        await versions.some(3)
        body = {"url": server.url("vault.git"), "token": TOKEN}
        response = await admin.put(MIRROR, json=body)
        assert response.status_code == 200, response.text
        answers.append(response.text)
        answers.append(json.dumps(await wait_status(admin, synced_at(vault_head(data)))))

        server.stop()  # mid-way: the check-ins go on, the pushes fail
        await versions.some(4, start=3)
        failing = await wait_status(admin, lambda s: s["failures"] >= 2)
        answers.append(json.dumps(failing))
        assert failing["state"] == "failing" and failing["error_kind"] == "unreachable"
        assert failing["pending"] >= 1 and failing["next_retry_at"] is not None

        server.start()
        await versions.some(2, start=7)
        head = vault_head(data)
        answers.append(json.dumps(await wait_status(admin, synced_at(head))))
        answers.append((await admin.get(MIRROR)).text)

    assert server.unauthorized() == [], "every request carried the token"
    assert versions.lfs_sha256 <= remote_lfs_objects(server.root / "vault.git")
    assert set(server.uploaded) == versions.lfs_sha256, "each object uploaded exactly once"
    assert len(server.uploaded) == len(versions.lfs_sha256)
    header = f"http.extraHeader=Authorization: {server.auth_header()}"
    clone_and_check(server.url("vault.git"), tmp_path / "clone", versions.current, head, header)
    assert "mirror push" in caplog.text, "the failures were logged"
    assert_token_nowhere(vault, server, [*answers, caplog.text])


async def test_a_wrong_token_is_an_auth_error_that_does_not_echo_it(
    vault: Vault, server: GitHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "glpat-WRONGwrongWRONGwrong"
    async with await vault.login("admin") as admin:
        await Versions(admin).some(1)
        body = {"url": server.url("vault.git"), "token": wrong}
        assert (await admin.put(MIRROR, json=body)).status_code == 200
        status = await wait_status(admin, lambda s: s["error_kind"] is not None)
    assert status["error_kind"] == "auth", status
    assert wrong not in json.dumps(status) and wrong not in caplog.text
    assert (server.root / "vault.git" / "refs" / "heads" / "main").exists() is False


async def test_a_diverged_http_remote_is_reported_and_never_overwritten(
    vault: Vault, server: GitHttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = vault.camvault.settings.data
    async with await vault.login("admin") as admin:
        versions = Versions(admin)
        await versions.some(2)
        body = {"url": server.url("vault.git"), "token": TOKEN}
        assert (await admin.put(MIRROR, json=body)).status_code == 200
        await wait_status(admin, synced_at(vault_head(data)))
        header = f"http.extraHeader=Authorization: {server.auth_header()}"
        stray = diverge(server.url("vault.git"), tmp_path / "elsewhere", header)
        await versions.some(1, start=2)
        status = await wait_status(admin, lambda s: s["error_kind"] == "diverged")
        answer = (await admin.get(MIRROR)).text
    assert status["state"] == "failing" and stray[:12] in status["last_error"]
    remote_main = (server.root / "vault.git" / "refs" / "heads" / "main").read_text().strip()
    assert remote_main == stray, "camvault never force-pushes"
    assert_token_nowhere(vault, server, [answer, caplog.text])
