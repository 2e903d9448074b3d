"""Shop settings and link files in real Chromium against a real ``camvault serve``: an
admin's change reaches another user's open page without a reload, and a link row shows
its master's state live. Screenshots at the key moments (test-output/screenshots/)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from e2e.browser import (  # noqa: F401 - the fixtures are used by name
    HDF5,
    Pages,
    Screenshots,
    add_user,
    api_post,
    browser_fixture,
    dialog,
    dialog_button,
    expand_all,
    login,
    pages_fixture,
    row,
    screenshots_fixture,
    state,
    toasts,
)
from e2e.server import Launcher, Server, upload

pytestmark = pytest.mark.slow

PASSWORD = "settings-pages-password"


@pytest.fixture
def server(launch: Launcher, server_database_url: str | None, tmp_path: Path) -> Server:
    return launch.start(
        tmp_path / "data", admin_password=PASSWORD, database_url=server_database_url
    )


def seed(server: Server, token: str, *names: str) -> None:
    with server.client(token) as api:
        for name in names:
            response = upload(api, name, HDF5 + os.urandom(64), description="seeded")
            assert response.status_code == 201, response.text


def test_a_settings_change_reaches_another_open_page_without_reload(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    add_user(server, "alice", PASSWORD)
    seed(server, server.login("admin", PASSWORD), "1234567_A1.mcam", "fixture-plate.mcam")
    alice_token = server.login("alice", PASSWORD)
    assert api_post(server, alice_token, "/api/files/1234567_A1.mcam/checkout", {}).is_success
    alice, admin = pages.new("alice"), pages.new("admin")
    login(alice, server, "alice", PASSWORD)
    login(admin, server, "admin", PASSWORD)
    expand_all(alice)
    expect(row(alice, "1234567_A1.mcam")).not_to_have_class(re.compile(r"\bstale\b"))

    admin.locator("nav.nav a", has_text=re.compile("^Settings$")).click()
    expect(admin.locator("h1.page-title")).to_have_text("Shop settings")
    expect(admin.locator("#set-extensions")).to_have_value(".mcam .emcam .vnc .nc .link")
    admin.locator("#set-pattern").fill(r"\d{7}_.*")
    admin.locator("#check-settings").click()
    preview = admin.locator("#settings-preview")
    expect(preview).to_contain_text("1 existing file would not be accepted")
    expect(preview).to_contain_text("fixture-plate.mcam")
    screenshots.take(admin, "settings-preview")
    assert state(alice, "s.config.name_pattern") is None, "a dry run changes nothing"

    admin.locator("#set-stale").fill("0.0002")  # under a second: Alice's lock is stale now
    admin.locator("#save-settings").click()
    expect(toasts(admin, "success").last).to_contain_text("Settings saved")
    screenshots.take(admin, "settings-saved")

    # Alice's page, never reloaded, follows: her lock is highlighted as stale, and the
    # new pattern is what her page checks names against.
    expect(row(alice, "1234567_A1.mcam")).to_have_class(re.compile(r"\bstale\b"))
    alice.wait_for_function(
        "() => window.camvault.store.getState().config.name_pattern === '\\\\d{7}_.*'"
    )
    alice.locator("#new-file").click()
    alice.locator("#file-input").set_input_files(
        files=[
            {"name": "another-plate.mcam", "mimeType": "application/octet-stream", "buffer": HDF5}
        ]
    )
    refused = alice.locator("ul.upload-items li.upload-item.invalid")
    expect(refused).to_have_count(1)
    expect(refused).to_contain_text("naming pattern")
    screenshots.take(alice, "alice-sees-the-new-rules")

    # A bad value is refused with the server's reason and saves nothing.
    admin.locator("#set-pattern").fill("([unclosed")
    admin.locator("#save-settings").click()
    expect(admin.locator("#settings-error")).to_contain_text("regular expression")
    assert state(alice, "s.config.name_pattern") == r"\d{7}_.*"


def test_a_link_row_follows_its_master(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    master, link = "7654321.mcam", "1234567_ABC123.link"
    add_user(server, "alice", PASSWORD)
    seed(server, server.login("admin", PASSWORD), master)
    alice, admin = pages.new("alice"), pages.new("admin")
    login(alice, server, "alice", PASSWORD)
    login(admin, server, "admin", PASSWORD)

    admin.locator("#new-link").click()
    expect(dialog(admin)).to_contain_text("New link")
    admin.locator("#link-name").fill(link)
    admin.locator("#link-target").fill(master)
    screenshots.take(admin, "new-link-dialog")
    dialog_button(admin, "Create link").click()
    expect(dialog(admin)).to_be_hidden()
    expect(toasts(admin, "success").last).to_contain_text(f"{link} now stands for {master}")

    expand_all(alice)
    link_row = row(alice, link)
    expect(link_row).to_contain_text(f"→ {master}")
    expect(link_row.locator(".lock")).to_have_text("free")
    expect(link_row.locator("[data-action=checkout]")).to_have_count(0)
    # The master is checked out elsewhere: the link's row says so, live.
    assert api_post(
        server, server.login("admin", PASSWORD), f"/api/files/{master}/checkout", {}
    ).is_success
    expect(link_row.locator(".lock")).to_have_text(re.compile(r"^master checked out by admin"))
    screenshots.take(alice, "link-row-follows-master")
    with alice.expect_download() as download:
        link_row.locator("[data-action=download]").click()
    assert download.value.suggested_filename == master
    link_row.locator("[data-action=master]").click()
    expect(alice.locator("input.search")).to_have_value(master)


def test_a_demoted_admin_loses_the_admin_pages_without_reload(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    add_user(server, "eve", PASSWORD, role="admin")
    eve = pages.new("eve")
    login(eve, server, "eve", PASSWORD)
    nav = eve.locator("nav.nav a")
    expect(nav.filter(has_text=re.compile("^Settings$"))).to_have_count(1)
    eve.locator("nav.nav a", has_text=re.compile("^Settings$")).click()
    expect(eve.locator("h1.page-title")).to_have_text("Shop settings")
    with server.client(server.login("admin", PASSWORD)) as api:
        assert api.patch("/api/admin/users/eve", json={"role": "user"}).status_code == 200
    # The server closes her sockets; the page reconnects, learns the new role and leaves
    # the admin page for the vault.
    expect(nav.filter(has_text=re.compile("^Settings$"))).to_have_count(0, timeout=10_000)
    expect(eve.locator("input.search")).to_be_visible()
    screenshots.take(eve, "demoted-admin-back-at-the-vault")


def test_a_page_that_missed_a_regrouping_gets_the_new_settings_with_its_fresh_list(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    """Offline while an admin changed the group rule, the page resumes by a snapshot (a
    replay across a regrouping cannot move the other files): it asks for the settings too."""
    add_user(server, "alice", PASSWORD)
    admin_token = server.login("admin", PASSWORD)
    seed(server, admin_token, "1234567_A1.mcam", "12345_B.mcam")
    alice = pages.new("alice")
    login(alice, server, "alice", PASSWORD)
    alice.context.set_offline(True)
    alice.evaluate("() => window.dispatchEvent(new Event('offline'))")
    expect(alice.locator("#connection")).not_to_have_class(re.compile(r"\blive\b"), timeout=15_000)
    with server.client(admin_token) as api:
        changed = api.patch("/api/admin/settings", json={"group_rule": {"digits": 5, "keep": 3}})
        assert changed.status_code == 200, changed.text
    alice.context.set_offline(False)
    alice.evaluate("() => window.dispatchEvent(new Event('online'))")
    expect(alice.locator("#connection")).to_have_class(re.compile(r"\blive\b"), timeout=15_000)
    alice.wait_for_function(
        "() => window.camvault.store.getState().config.group_rule.digits === 5", timeout=10_000
    )
    assert state(alice, "s.files.get('1234567_A1.mcam').group") == "123XX"
    screenshots.take(alice, "regrouped-after-reconnecting")
