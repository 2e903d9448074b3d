"""The page in a second engine: real Firefox, driven over WebDriver BiDi."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from e2e.bidi import firefox
from e2e.server import Launcher, run_cli, upload

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PASSWORD = "firefox-test-password"
HDF5 = b"\x89HDF\r\n\x1a\n"
XSS = '<img src=x onerror="window.__pwned=1">'
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots" / "firefox"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_firefox_logs_in_shows_the_vault_and_follows_a_checkout_live(
    launch: Launcher, tmp_path: Path
) -> None:
    server = launch.start(tmp_path / "data", admin_password=PASSWORD)
    done = run_cli("user", "add", "bob", "--role", "user", "--password-stdin",
                   "--data", str(server.data), stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    with server.client(server.login("admin", PASSWORD)) as api:
        assert upload(api, "1234567_A1.mcam", HDF5, description=XSS).status_code == 201
        assert upload(api, "fixture.vnc", b"vnc", description="Plate").status_code == 201

    async with firefox(tmp_path / "profile", tmp_path / "firefox.log") as page:
        await page.goto(server.base_url + "/")
        await page.wait_for("document.querySelector('#username') !== null")
        await page.js(
            f"""(() => {{
              document.querySelector('#username').value = 'admin';
              document.querySelector('#password').value = {PASSWORD!r};
              document.querySelector('form.login').requestSubmit();
              return true;
            }})()"""
        )
        await page.wait_for("document.querySelectorAll('.row').length === 2")
        await page.wait_for("document.querySelector('#connection')?.textContent === 'Live'")
        description = await page.js(
            "document.querySelector('.row[data-filename=\"1234567_A1.mcam\"] .description')"
            ".textContent"
        )
        assert description == XSS  # shown as text
        assert await page.js("window.__pwned === undefined && !document.querySelector('img')")
        await page.screenshot(tmp_path / "screenshots" / "01-vault.png")

        # Another user checks the file out: the row follows live, without a reload.
        with server.client(server.login("bob", PASSWORD)) as bob:
            assert bob.post("/api/files/1234567_A1.mcam/checkout", json={}).status_code == 200
        badge = await page.wait_for(
            "document.querySelector('.row[data-filename=\"1234567_A1.mcam\"] .badge')"
            "?.textContent.startsWith('checked out by bob') &&"
            "document.querySelector('.row[data-filename=\"1234567_A1.mcam\"] .badge').textContent",
            timeout=5,
        )
        assert badge.startswith("checked out by bob for")
        buttons = await page.js(
            "[...document.querySelectorAll('.row[data-filename=\"1234567_A1.mcam\"] button')]"
            ".map(b => b.dataset.action)"
        )
        assert "checkout" not in buttons and "break" in buttons  # admin may break it
        # Dark mode toggle works here too.
        await page.js("(document.querySelector('#theme').click(), true)")
        assert await page.wait_for("document.documentElement.dataset.theme === 'dark'")
        await page.screenshot(tmp_path / "screenshots" / "02-live-checkout-dark.png")

    SHOTS.mkdir(parents=True, exist_ok=True)
    for shot in (tmp_path / "screenshots").glob("*.png"):
        shutil.copy(shot, SHOTS / shot.name)
