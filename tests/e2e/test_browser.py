"""The browser UI against real ``camvault serve`` processes, driven by headless Chromium.

Each test saves screenshots at its key moments (tmp_path/screenshots and
test-output/screenshots/<test-name>/). Setup goes through the CLI and the REST API; what is
tested goes through the page: clicks, keys, drops, and what the page then shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.browser import (  # noqa: F401 - the fixtures are used by name
    HDF5,
    REPO_ROOT,
    Pages,
    Screenshots,
    active_element,
    add_user,
    api_files,
    api_post,
    browser_fixture,
    collapse_all,
    dialog,
    dialog_button,
    drop_file,
    expand_all,
    login,
    pages_fixture,
    row,
    screenshots_fixture,
    state,
    store_files,
    tab_until,
    toasts,
    wait_live,
    wait_rows,
    write_json,
)
from e2e.server import Launcher, Server, upload

pytestmark = pytest.mark.slow

PASSWORD = "browser-test-password"
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"


@pytest.fixture
def server(launch: Launcher, server_database_url: str | None, tmp_path: Path) -> Server:
    """A server on SQLite, and on PostgreSQL when the test run has one."""
    return launch.start(
        tmp_path / "data", admin_password=PASSWORD, database_url=server_database_url
    )


def seed(server: Server, files: dict[str, str], *, token: str | None = None) -> dict[str, bytes]:
    """Upload ``{name: description}`` as the admin; returns each file's content."""
    token = token or server.login("admin", PASSWORD)
    contents: dict[str, bytes] = {}
    with server.client(token) as api:
        for name, description in files.items():
            contents[name] = HDF5 + os.urandom(512) + name.encode()
            response = upload(api, name, contents[name], description=description)
            assert response.status_code == 201, response.text
    return contents


def badge(page: Page, name: str) -> Any:
    return row(page, name).locator(".lock .badge")


def is_checkout(response: Any) -> bool:
    return bool(response.request.method == "POST" and response.url.endswith("/checkout"))


# --- 1. two users, live ----------------------------------------------------------------------


def test_checkout_and_drag_drop_checkin_are_seen_live_by_another_user(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    name = "1234567_A1.mcam"
    add_user(server, "alice", PASSWORD)
    add_user(server, "bob", PASSWORD)
    v1 = seed(server, {name: "Bracket, op 10"})[name]
    alice, bob = pages.new("alice"), pages.new("bob")
    login(alice, server, "alice", PASSWORD)
    login(bob, server, "bob", PASSWORD)
    expand_all(alice)
    expand_all(bob)
    expect(badge(bob, name)).to_have_text("free")
    screenshots.take(bob, "bob-sees-the-file-free")

    # Alice checks out through the dialog; the file downloads.
    row(alice, name).locator("[data-action=checkout]").click()
    expect(dialog(alice)).to_be_visible()
    alice.locator("#dialog-text").fill("Fixing the op 20 toolpath")
    screenshots.take(alice, "alice-checkout-dialog")
    with alice.expect_download() as download, alice.expect_response(is_checkout) as answered:
        dialog_button(alice, "Check out").click()
    assert answered.value.status == 200
    # Bob's row follows within a second, with no reload, and offers no checkout.
    expect(badge(bob, name)).to_have_text(re.compile(r"^checked out by alice for "), timeout=1000)
    expect(row(bob, name).locator("[data-action=checkout]")).to_have_count(0)
    expect(row(bob, name).locator("[data-action=download]")).to_have_count(1)
    assert Path(download.value.path()).read_bytes() == v1
    assert download.value.suggested_filename == name
    expect(dialog(alice)).to_be_hidden()
    expect(badge(alice, name)).to_have_text(re.compile(r"^checked out by you for "))
    expect(row(alice, name).locator("[data-action=checkin]")).to_be_visible()
    screenshots.take(alice, "alice-has-it")
    screenshots.take(bob, "bob-sees-alice-has-it")

    # Alice drops the new version onto her row: the check-in dialog opens with the file.
    v2 = HDF5 + os.urandom(6000) + b"version two"
    drop_file(alice, row(alice, name), name, v2)
    expect(dialog(alice)).to_be_visible()
    expect(alice.locator("dialog .chosen")).to_have_text(f"{name} · 5.9 KB")
    alice.locator("#checkin-message").fill("Deeper pockets on op 20")
    screenshots.take(alice, "alice-checkin-dialog-after-drop")
    dialog_button(alice, "Check in").click()
    expect(dialog(alice)).to_be_hidden()
    expect(toasts(alice, "success").last).to_contain_text(f"{name} checked in as v2")

    # Bob sees version 2, free again, and downloads exactly what Alice dropped.
    expect(row(bob, name).locator(".version")).to_have_text(re.compile(r"^v2(?!\d)"), timeout=1000)
    expect(badge(bob, name)).to_have_text("free")
    expect(row(bob, name).locator("[data-action=checkout]")).to_have_count(1)
    screenshots.take(bob, "bob-sees-v2")
    with bob.expect_download() as download:
        row(bob, name).locator("[data-action=download]").click()
    assert Path(download.value.path()).read_bytes() == v2
    with server.client(server.login("bob", PASSWORD)) as api:
        versions = api.get(f"/api/files/{name}/versions").json()
    assert [v["message"] for v in versions][0] == "Deeper pockets on op 20"
    assert versions[0]["author"] == "alice"


# --- 2. server killed and restarted ---------------------------------------------------------


def test_page_reconnects_after_the_server_is_killed_and_restarted(
    launch: Launcher, tmp_path: Path, pages: Pages, screenshots: Screenshots
) -> None:
    data = tmp_path / "data"
    first = launch.start(data, admin_password=PASSWORD)
    token = first.login("admin", PASSWORD)
    seed(first, {"1234567_A1.mcam": "Bracket", "fixture-plate.mcam": "Plate"}, token=token)
    page = pages.new("admin")
    login(page, first, "admin", PASSWORD)
    screenshots.take(page, "live")

    first.kill()
    expect(page.locator("#connection")).to_have_class(re.compile(r"\breconnecting\b"))
    expect(page.locator("#connection")).to_have_text("Reconnecting")
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_have_class("banner reconnecting")
    expect(banner).to_contain_text("Connection lost")
    expect(page.locator("#retry-now")).to_be_visible()
    screenshots.take(page, "server-killed-reconnecting")

    second = launch.start(data, admin_password=PASSWORD, port=first.port)
    added = "7654321_OP10.mcam"
    with second.client(token) as api:  # the session outlives the process
        response = upload(api, added, HDF5 + b"added while the page was away", description="New")
    assert response.status_code == 201, response.text
    status_when_added = state(page, "s.connection.status")

    wait_live(page, timeout=40_000)
    expect(banner).to_be_hidden()
    page.wait_for_function(
        "(name) => window.camvault.store.getState().files.has(name)", arg=added, timeout=5_000
    )
    expected = api_files(second, token)
    assert set(expected) == {"1234567_A1.mcam", "fixture-plate.mcam", added}
    assert store_files(page) == expected
    expand_all(page)
    wait_rows(page, set(expected))
    screenshots.take(page, "live-again-with-the-added-file")
    assert status_when_added in {"reconnecting", "live"}, status_when_added


# --- 3. break lock --------------------------------------------------------------------------


def test_admin_breaks_a_lock_and_the_holder_is_told_who_and_why(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    name = "7654321_OP10.mcam"
    add_user(server, "alice", PASSWORD)
    seed(server, {name: "Vise jaw, op 10"})
    alice_token = server.login("alice", PASSWORD)
    taken = api_post(server, alice_token, f"/api/files/{name}/checkout", {"message": "op 10"})
    assert taken.status_code == 200, taken.text
    alice, admin = pages.new("alice"), pages.new("admin")
    login(alice, server, "alice", PASSWORD)
    login(admin, server, "admin", PASSWORD)
    expand_all(alice)
    expand_all(admin)
    expect(badge(admin, name)).to_have_text(re.compile(r"^checked out by alice for "))
    expect(row(admin, name).locator("[data-action=checkout]")).to_have_count(0)
    expect(row(admin, name).locator("[data-action=delete]")).to_have_count(0)

    row(admin, name).locator("[data-action=break]").click()
    expect(dialog(admin)).to_contain_text(f"Break alice's lock on {name}")
    dialog_button(admin, "Break lock").click()  # no reason: the form refuses
    expect(dialog(admin)).to_be_visible()
    assert api_files(server, alice_token)[name]["lock"]["user"] == "alice"
    reason = "Alice is on holiday; Bob needs op 10 today"
    admin.locator("#dialog-text").fill(reason)
    screenshots.take(admin, "break-lock-dialog")
    dialog_button(admin, "Break lock").click()
    expect(dialog(admin)).to_be_hidden()
    expect(toasts(admin, "success").last).to_contain_text(f"alice's lock on {name} was broken")

    told = toasts(alice, "warning")
    expect(told).to_have_count(1)
    expect(told).to_contain_text("Your checkout was ended")
    expect(told).to_contain_text(f"admin broke your lock on {name}")
    expect(told).to_contain_text(reason)
    expect(badge(alice, name)).to_have_text("free")
    expect(row(alice, name).locator("[data-action=checkin]")).to_have_count(0)
    screenshots.take(alice, "alice-told-her-lock-was-broken")
    screenshots.take(admin, "admin-after-breaking")


def test_a_user_asks_the_holder_to_release_and_the_holder_is_told(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    name = "7654321_OP20.mcam"
    add_user(server, "alice", PASSWORD)
    add_user(server, "bob", PASSWORD)
    seed(server, {name: "Vise jaw, op 20"})
    taken = api_post(server, server.login("alice", PASSWORD), f"/api/files/{name}/checkout", {})
    assert taken.status_code == 200, taken.text
    alice, bob = pages.new("alice"), pages.new("bob")
    login(alice, server, "alice", PASSWORD)
    login(bob, server, "bob", PASSWORD)
    expand_all(alice)
    expand_all(bob)
    expect(row(alice, name).locator("[data-action=ask]")).to_have_count(0)  # her own lock
    expect(row(bob, name).locator("[data-action=break]")).to_have_count(0)  # not an admin

    row(bob, name).locator("[data-action=ask]").click()
    expect(dialog(bob)).to_contain_text(f"Ask alice to release {name}")
    bob.locator("#dialog-text").fill("Machine 4 is waiting for op 20")
    screenshots.take(bob, "ask-to-release-dialog")
    dialog_button(bob, "Send").click()
    expect(dialog(bob)).to_be_hidden()
    expect(toasts(bob, "success").last).to_contain_text(f"alice was asked to release {name}")

    told = toasts(alice, "info")
    expect(told).to_have_count(1)
    expect(told).to_contain_text("Someone needs your file")
    expect(told).to_contain_text(f"bob asks you to release {name}")
    expect(told).to_contain_text("Machine 4 is waiting for op 20")
    screenshots.take(alice, "alice-asked-to-release")

    # Asking again at once is refused with a clear message, and nothing reaches Alice.
    row(bob, name).locator("[data-action=ask]").click()
    dialog_button(bob, "Send").click()
    expect(dialog(bob)).to_contain_text("less than 60 s ago")
    expect(told).to_have_count(1)


# --- 4. XSS ---------------------------------------------------------------------------------


def test_markup_in_descriptions_messages_and_reasons_shows_as_text(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    name = "1234567_XSS.mcam"
    description = f"Bracket {IMG} {SCRIPT}"
    reason = f"Reason {SCRIPT}{IMG}"
    message = f"Message {IMG}{SCRIPT}"
    broken = f"Broken {IMG} {SCRIPT}"
    add_user(server, "alice", PASSWORD)
    alice, admin = pages.new("alice"), pages.new("admin")
    login(alice, server, "alice", PASSWORD)

    # Alice adds the file through "New file", with markup in the description.
    alice.locator("#new-file").click()
    expect(dialog(alice)).to_be_visible()
    alice.locator("#file-input").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": HDF5 + b"v1"}]
    )
    expect(alice.locator("ul.upload-items li.upload-item.ready")).to_have_count(1)
    alice.locator("#new-description").fill(description)
    dialog_button(alice, "Upload").click()
    expect(alice.locator("ul.upload-items li.upload-item.done")).to_have_count(1)
    expect(alice.locator("ul.upload-items li.upload-item .status")).to_have_text("uploaded")
    screenshots.take(alice, "new-file-uploaded")
    alice.keyboard.press("Escape")
    expect(dialog(alice)).to_be_hidden()
    assert active_element(alice)["id"] == "new-file", active_element(alice)

    # Checkout with a marked-up reason, check-in (kept locked) with a marked-up message.
    expand_all(alice)
    expect(row(alice, name).locator(".description")).to_have_text(description)
    row(alice, name).locator("[data-action=checkout]").click()
    alice.locator("#dialog-text").fill(reason)
    with alice.expect_download():
        dialog_button(alice, "Check out").click()
    expect(dialog(alice)).to_be_hidden()
    row(alice, name).locator("[data-action=checkin]").click()
    alice.locator("#file-input").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": HDF5 + b"v2"}]
    )
    alice.locator("#checkin-message").fill(message)
    alice.locator("#keep-locked").check()
    dialog_button(alice, "Check in").click()
    expect(dialog(alice)).to_be_hidden()
    expect(row(alice, name).locator(".version")).to_have_text(re.compile(r"^v2(?!\d)"))

    # The admin sees all of it as text: row, lock title, history.
    login(admin, server, "admin", PASSWORD)
    expand_all(admin)
    expect(row(admin, name).locator(".description")).to_have_text(description)
    expect(badge(admin, name)).to_have_attribute("title", re.compile(re.escape(f"“{reason}”")))
    screenshots.take(admin, "row-with-markup")
    row(admin, name).locator("[data-action=history]").click()
    expect(admin.locator("dialog td.message").first).to_have_text(message)
    screenshots.take(admin, "history-with-markup")
    admin.keyboard.press("Escape")
    expect(dialog(admin)).to_be_hidden()

    # A marked-up break-lock reason reaches Alice's toast as text.
    row(admin, name).locator("[data-action=break]").click()
    admin.locator("#dialog-text").fill(broken)
    dialog_button(admin, "Break lock").click()
    expect(dialog(admin)).to_be_hidden()
    expect(toasts(alice, "warning")).to_contain_text(broken)
    row(alice, name).locator("[data-action=history]").click()
    expect(alice.locator("dialog td.message").first).to_have_text(message)
    screenshots.take(alice, "toast-and-history-with-markup")

    for page in (alice, admin):
        page.wait_for_timeout(300)  # a broken <img> would fire onerror by now
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.evaluate("document.querySelectorAll('body script').length") == 0


# --- 5. search, filters, theme, keyboard ----------------------------------------------------

CATALOG = {
    "1234567_A1.mcam": "Bracket op 10",
    "1234567_A2.mcam": "Bracket op 20",
    "1234999_X1.mcam": "Housing roughing",
    "7654321_OP10.mcam": "Vise jaw soft",
    "fixture-plate.mcam": "Fixture plate for the Haas",
}


def test_search_and_filters(server: Server, pages: Pages, screenshots: Screenshots) -> None:
    add_user(server, "alice", PASSWORD)
    add_user(server, "bob", PASSWORD)
    seed(server, CATALOG)
    for user, name in (("alice", "1234567_A2.mcam"), ("bob", "7654321_OP10.mcam")):
        taken = api_post(server, server.login(user, PASSWORD), f"/api/files/{name}/checkout", {})
        assert taken.status_code == 200, taken.text
    page = pages.new("alice")
    login(page, server, "alice", PASSWORD)
    headers = page.locator("section.group > button.group-header")
    expect(headers).to_have_count(3)
    expect(headers.locator(".group-name")).to_have_text(["12XXXXX", "76XXXXX", "Misc"])
    expect(headers.locator(".count")).to_have_text(["3 files", "1 file", "1 file"])
    collapse_all(page)
    wait_rows(page, set())
    screenshots.take(page, "collapsed")

    # Typing searches after the debounce: one query for the whole word, matching groups open.
    page.evaluate(
        """() => {
            window.__queries = [];
            window.camvault.store.subscribe((s, p) => {
                if (s.ui.query === p.ui.query) return;
                window.__queries.push([s.ui.query, performance.now()]);
            });
            document.querySelector('input.search')
                .addEventListener('input', () => { window.__lastKey = performance.now(); });
        }"""
    )
    search = page.locator("input.search")
    search.press_sequentially("housing", delay=20)
    wait_rows(page, {"1234999_X1.mcam"})
    queries, last_key = page.evaluate("[window.__queries, window.__lastKey]")
    assert queries[-1][0] == "housing"
    assert len(queries) < len("housing"), queries  # keystrokes coalesce
    assert queries[-1][1] - last_key >= 140, (queries, last_key)
    expect(headers).to_have_count(1)
    expect(headers.first).to_have_attribute("aria-expanded", "true")
    screenshots.take(page, "search-housing")
    search.fill("bracket")
    wait_rows(page, {"1234567_A1.mcam", "1234567_A2.mcam"})
    search.fill("7654")
    wait_rows(page, {"7654321_OP10.mcam"})
    search.fill("no such thing")
    expect(page.locator(".empty")).to_be_visible()
    expect(page.locator(".empty")).to_contain_text("Nothing matches")
    screenshots.take(page, "search-nothing-matches")
    search.fill("")
    expect(headers).to_have_count(3)
    wait_rows(page, set())  # the groups fold again as the user left them
    expect(headers.first).to_have_attribute("aria-expanded", "false")

    def choose(value: str, expected: set[str]) -> None:
        page.locator(f'.chip[data-filter="{value}"]').click()
        for chip in ("all", "checked-out", "mine", "free"):
            pressed = "true" if chip == value else "false"
            expect(page.locator(f'.chip[data-filter="{chip}"]')).to_have_attribute(
                "aria-pressed", pressed
            )
        expand_all(page)
        wait_rows(page, expected)

    choose("mine", {"1234567_A2.mcam"})
    expect(badge(page, "1234567_A2.mcam")).to_have_text(re.compile(r"^checked out by you for "))
    screenshots.take(page, "filter-mine")
    choose("checked-out", {"1234567_A2.mcam", "7654321_OP10.mcam"})
    expect(badge(page, "7654321_OP10.mcam")).to_have_text(re.compile(r"^checked out by bob for "))
    screenshots.take(page, "filter-checked-out")
    choose("free", {"1234567_A1.mcam", "1234999_X1.mcam", "fixture-plate.mcam"})
    expect(page.locator(".row .lock .badge")).to_have_text(["free"] * 3)
    search.fill("bracket")
    wait_rows(page, {"1234567_A1.mcam"})
    screenshots.take(page, "filter-free-and-search")
    search.fill("")
    choose("all", set(CATALOG))
    screenshots.take(page, "filter-all-expanded", full_page=True)


def body_background(page: Page) -> str:
    color: str = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return color


def test_dark_mode_toggles_and_is_remembered(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    seed(server, CATALOG)
    page = pages.new("admin")
    login(page, server, "admin", PASSWORD)
    expand_all(page)
    html, theme = page.locator("html"), page.locator("#theme")
    expect(html).to_have_attribute("data-theme", "auto")
    expect(theme).to_have_text("Theme: system")
    light = body_background(page)

    theme.click()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(theme).to_have_text("Theme: dark")
    dark = body_background(page)
    assert dark != light
    assert page.evaluate("localStorage.getItem('camvault.theme')") == '"dark"'
    screenshots.take(page, "dark")

    page.reload()
    wait_live(page)
    expect(html).to_have_attribute("data-theme", "dark")
    assert body_background(page) == dark
    wait_rows(page, set(CATALOG))  # the expanded groups are remembered too
    screenshots.take(page, "dark-after-reload")
    row(page, "fixture-plate.mcam").locator("[data-action=checkout]").click()
    screenshots.take(page, "dark-dialog")
    page.keyboard.press("Escape")

    theme.click()
    expect(html).to_have_attribute("data-theme", "light")
    assert body_background(page) == light
    theme.click()
    expect(html).to_have_attribute("data-theme", "auto")

    # "auto" follows the system: a dark-mode system gets the dark colors.
    system_dark = pages.new("admin-dark-system", color_scheme="dark")
    login(system_dark, server, "admin", PASSWORD)
    expect(system_dark.locator("html")).to_have_attribute("data-theme", "auto")
    assert body_background(system_dark) == dark


def test_keyboard_only_checkout_and_checkin(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    name = "fixture-plate.mcam"  # a Misc file: no subgroup (see the test after this one)
    add_user(server, "alice", PASSWORD)
    seed(server, {"1234567_A1.mcam": "Bracket op 10", name: "Fixture plate for the Haas"})
    page = pages.new("alice")
    page.goto(server.base_url)
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    wait_live(page)
    focus_problems: list[str] = []

    def at(action: str) -> Any:
        return lambda el: el["action"] == action and el["row"] == name

    def focus_back_in_row(after: str) -> None:
        el = active_element(page)
        if el["row"] != name:
            focus_problems.append(f"after {after} the focus is on {el}, not in the row of {name}")

    # Open the Misc group (if it is not open already), then the checkout dialog, keys only.
    tab_until(page, lambda el: el["text"].endswith("Misc1 file"))
    if active_element(page)["expanded"] != "true":
        page.keyboard.press("Enter")
        expect(row(page, name)).to_be_visible()
    tab_until(page, at("checkout"))
    screenshots.take(page, "focus-on-check-out")
    page.keyboard.press("Enter")
    expect(dialog(page)).to_be_visible()
    expect(page.locator("#dialog-text")).to_be_focused()
    page.keyboard.type("Adding a second setup")
    tab_until(page, lambda el: el["inDialog"] and el["text"] == "Check out")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    expect(dialog(page)).to_be_hidden()
    assert download.value.suggested_filename == name
    expect(badge(page, name)).to_have_text(re.compile(r"^checked out by you for "))
    page.wait_for_timeout(300)
    focus_back_in_row("the checkout dialog closed")
    screenshots.take(page, "after-keyboard-checkout")

    # Check in: Space on the row's button, the file chooser from the focused #file-input.
    tab_until(page, at("checkin"))
    page.keyboard.press("Space")
    expect(dialog(page)).to_be_visible()
    expect(page.locator("#checkin-message")).to_be_focused()
    page.keyboard.type("Second setup added")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#file-input")).to_be_focused()
    new_version = HDF5 + b"keyboard check-in" + os.urandom(100)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": new_version}]
    )
    expect(page.locator("dialog .chosen")).to_contain_text(name)
    screenshots.take(page, "keyboard-checkin-dialog")
    tab_until(page, lambda el: el["inDialog"] and el["text"] == "Check in")
    page.keyboard.press("Enter")
    expect(dialog(page)).to_be_hidden()
    expect(badge(page, name)).to_have_text("free")
    page.wait_for_timeout(300)
    focus_back_in_row("the check-in dialog closed")
    screenshots.take(page, "after-keyboard-checkin")
    record = api_files(server, server.login("alice", PASSWORD))[name]
    assert (record["version"], record["sha256"]) == (2, hashlib.sha256(new_version).hexdigest())

    # Escape closes a dialog and the focus returns to the very button that opened it.
    page.keyboard.press("Tab")  # from wherever the focus was left
    tab_until(page, at("history"))
    page.keyboard.press("Enter")
    expect(dialog(page)).to_be_visible()
    expect(page.locator("dialog td.message").first).to_have_text("Second setup added")
    page.keyboard.press("Escape")
    expect(dialog(page)).to_be_hidden()
    el = active_element(page)
    assert (el["action"], el["row"]) == ("history", name), el
    assert not focus_problems, "\n".join(focus_problems)


def test_keyboard_focus_on_a_row_button_survives_the_clock(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    """The page re-renders every second (relative times); a focused button must stay focused."""
    seed(server, {"1234567_A1.mcam": "Bracket op 10", "fixture-plate.mcam": "Plate"})
    page = pages.new("admin")
    login(page, server, "admin", PASSWORD)
    expand_all(page)
    lost: list[str] = []
    for name in ("fixture-plate.mcam", "1234567_A1.mcam"):
        button = row(page, name).locator("[data-action=history]")
        button.focus()
        expect(button).to_be_focused()
        page.wait_for_timeout(2_500)
        el = active_element(page)
        if (el["action"], el["row"]) != ("history", name):
            lost.append(f"{name}: focus moved to {el}")
    screenshots.take(page, "focus-after-2.5s")
    assert not lost, "\n".join(lost)


def test_row_actions_fit_in_the_row_at_1280_px(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    """At 1280 x 800 (a common shop-floor monitor) every row button is inside its group."""
    add_user(server, "alice", PASSWORD)
    seed(server, {"1234567_A1.mcam": "Bracket op 10", "fixture-plate.mcam": "Plate"})
    taken = api_post(
        server, server.login("alice", PASSWORD), "/api/files/1234567_A1.mcam/checkout", {}
    )
    assert taken.status_code == 200, taken.text
    clipped: list[str] = []
    for user in ("alice", "admin"):
        page = pages.new(user)
        login(page, server, user, PASSWORD)
        expand_all(page)
        screenshots.take(page, f"{user}-rows")
        clipped += page.evaluate(
            """(user) => [...document.querySelectorAll('.row .actions button')].flatMap((b) => {
                const group = b.closest('section.group').getBoundingClientRect();
                const box = b.getBoundingClientRect();
                return box.right > group.right + 0.5 || box.left < group.left - 0.5
                    ? [`${user}: "${b.getAttribute('aria-label')}" spans x ${Math.round(box.left)}`
                       + `-${Math.round(box.right)}, its group ${Math.round(group.left)}`
                       + `-${Math.round(group.right)}`]
                    : [];
            })""",
            user,
        )
    assert not clipped, "\n".join(clipped)


# --- 6. empty vault, ended sessions ---------------------------------------------------------


def test_empty_vault_explains_itself_and_an_ended_session_returns_to_login(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    page = pages.new("admin")
    login(page, server, "admin", PASSWORD)
    empty = page.locator(".empty")
    expect(empty).to_be_visible()
    expect(empty.locator("h2")).to_have_text("The vault is empty")
    expect(empty).to_contain_text("New file")
    expect(empty).to_contain_text("drop files onto this page")
    expect(page.locator("#new-file")).to_be_visible()
    screenshots.take(page, "empty-vault")

    # The session ends on the server (its token is logged out); the page still has the cookie.
    cookie = next(c for c in page.context.cookies() if c["name"] == "camvault_session")
    with server.client(cookie["value"]) as api:
        assert api.post("/api/auth/logout").status_code == 204
    expect(page.locator("#username")).to_be_visible(timeout=10_000)
    expect(page.locator(".login .notice")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    expect(page.locator("#logout")).to_have_count(0)
    screenshots.take(page, "session-ended")

    page.locator("#username").fill("admin")
    page.locator("#password").fill(PASSWORD)
    page.locator("button[type=submit]").click()
    wait_live(page)
    expect(empty).to_be_visible()


def test_an_expired_session_returns_to_login(
    launch: Launcher, tmp_path: Path, pages: Pages, screenshots: Screenshots
) -> None:
    lifetime_hours = 0.002  # 7.2 s
    server = launch.start(
        tmp_path / "data",
        admin_password=PASSWORD,
        env={"CAMVAULT_SESSION_HOURS": str(lifetime_hours), "CAMVAULT_WS_REVALIDATE_SECONDS": "1"},
    )
    page = pages.new("admin")
    login(page, server, "admin", PASSWORD)
    signed_in = time.monotonic()
    screenshots.take(page, "signed-in")
    expect(page.locator(".login .notice")).to_have_text(
        "Your session has ended. Please sign in again.", timeout=30_000
    )
    assert time.monotonic() - signed_in >= lifetime_hours * 3600 - 1
    expect(page.locator("#username")).to_be_visible()
    screenshots.take(page, "session-expired")


# --- 7. 20,000 files ------------------------------------------------------------------------

BIG = 20_000
NEEDLE = "4242424"  # a part number with a handful of files among the 20,000


def big_names(count: int, seed: int = 17) -> list[str]:
    """Shop-like names: ~90% part numbers (about 8 files each), ~10% Misc fixtures."""
    rng = random.Random(seed)
    names = {f"{NEEDLE}_OP{n}.mcam" for n in range(10, 70, 10)}
    parts = [f"{rng.randrange(1_000_000, 9_999_999):07d}" for _ in range(count // 8)]
    while len(names) < count:
        if rng.random() < 0.9:
            part = rng.choice(parts)
            if part != NEEDLE:
                names.add(f"{part}_OP{rng.randrange(1, 60)}_REV{rng.choice('ABCDEFG')}.mcam")
        else:
            kind = rng.choice(["plate", "vise", "jaw", "clamp"])
            names.add(f"fixture-{kind}-{len(names)}.mcam")
    return sorted(names)


def populate(data: Path, names: list[str]) -> None:
    """Rows straight into the database before the server starts (as bench/list_files.py)."""
    from sqlalchemy import insert, select

    from camvault.core import Camvault
    from camvault.events.log import EventType, append
    from camvault.names import group_of, name_key
    from camvault.services.auth import Role
    from camvault.settings import Settings
    from camvault.store.models import files, locks

    rng = random.Random(13)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    vault = Camvault(Settings(data=data, admin_password=PASSWORD))
    vault.open_sync()
    try:
        admin = vault.auth.create_user("admin", Role.ADMIN, PASSWORD)
        for offset in range(0, len(names), 5_000):
            rows = []
            for name in names[offset : offset + 5_000]:
                group, subgroup = group_of(name)
                version = rng.randrange(1, 30)
                rows.append(
                    {
                        "filename": name,
                        "name_key": name_key(name),
                        "group_name": group,
                        "subgroup": subgroup,
                        "description": f"Op {rng.randrange(1, 60)} roughing + finishing",
                        "version": version,
                        "revision": f"{1 + version // 10}.{version % 10}",
                        "size": rng.randrange(200_000, 80_000_000),
                        "sha256": hashlib.sha256(name.encode()).hexdigest(),
                        "modified_at": start + timedelta(minutes=rng.randrange(0, 900_000)),
                        "modified_by": rng.choice(["admin", "u1", "u2", "u3"]),
                        "deleted": False,
                    }
                )
            with vault.db.write() as conn:
                conn.execute(insert(files), rows)
                ids = conn.execute(
                    select(files.c.id).where(files.c.filename.in_([r["filename"] for r in rows]))
                ).scalars()
                held = [
                    {"file_id": i, "user_id": admin.id, "since": start, "message": "big vault"}
                    for i in ids
                    if rng.random() < 0.01
                ]
                if held:
                    conn.execute(insert(locks), held)
                append(conn, EventType.FILE_RECOVERED, actor="admin", data={"rows": len(rows)})
    finally:
        vault.close()


PERF_SCRIPT = """
window.__perf = {longTasks: 0, longTaskMs: 0};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__perf.longTasks += 1;
    window.__perf.longTaskMs += entry.duration;
    window.__perf.longestTaskMs = Math.max(window.__perf.longestTaskMs || 0, entry.duration);
  }
}).observe({type: 'longtask', buffered: true});
new MutationObserver((_, observer) => {
  if (document.querySelector('section.group > button.group-header')) {
    window.__perf.headersAt = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true});
"""

SEARCH_SCRIPT = """async ([query, wanted]) => {
  const input = document.querySelector('input.search');
  const started = performance.now();
  input.value = query;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  await new Promise((resolve) => {
    const check = () => document.querySelectorAll('.row[data-filename]').length === wanted
      ? resolve() : requestAnimationFrame(check);
    check();
  });
  return performance.now() - started;
}"""


def round_trip(page: Page) -> float:
    started = time.perf_counter()
    page.evaluate("1")
    return time.perf_counter() - started


def test_twenty_thousand_files(
    launch: Launcher,
    tmp_path: Path,
    pages: Pages,
    screenshots: Screenshots,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = big_names(BIG)
    data = tmp_path / "data"
    started = time.perf_counter()
    populate(data, names)
    numbers: dict[str, Any] = {"files": BIG, "populate_s": time.perf_counter() - started}
    server = launch.start(data, admin_password=None)
    groups = {n[:2] + "XXXXX" if n[:7].isdigit() else "Misc" for n in names}

    page = pages.new("admin")
    login_answer = page.request.post(
        f"{server.base_url}/api/auth/login", data={"username": "admin", "password": PASSWORD}
    )
    assert login_answer.ok, login_answer.text()
    page.add_init_script(PERF_SCRIPT)
    started = time.perf_counter()
    page.goto(server.base_url)
    headers = page.locator("section.group > button.group-header")
    expect(headers.first).to_be_visible(timeout=30_000)
    numbers["headers_wall_s"] = time.perf_counter() - started
    numbers["headers_in_page_ms"] = page.evaluate("window.__perf.headersAt")
    expect(headers).to_have_count(len(groups))
    assert state(page, "s.files.size") == BIG
    numbers["round_trip_after_load_s"] = round_trip(page)
    screenshots.take(page, "twenty-thousand-files")

    # A narrow search (one part number) and a broad one (every fixture, ~2,000 rows).
    needles = [n for n in names if n.startswith(NEEDLE)]
    started = time.perf_counter()
    page.locator("input.search").fill(NEEDLE)
    wait_rows(page, set(needles), timeout=30_000)
    numbers["search_narrow_wall_s"] = time.perf_counter() - started
    numbers["round_trip_after_narrow_search_s"] = round_trip(page)
    screenshots.take(page, "search-one-part-number")
    fixtures = sum(1 for n in names if n.startswith("fixture-"))
    numbers["search_broad_rows"] = fixtures
    numbers["search_broad_in_page_ms"] = page.evaluate(SEARCH_SCRIPT, ["fixture-", fixtures])
    numbers["round_trip_after_broad_search_s"] = round_trip(page)
    screenshots.take(page, "search-every-fixture")
    numbers["search_narrow_in_page_ms"] = page.evaluate(SEARCH_SCRIPT, [NEEDLE, len(needles)])
    numbers["clear_search_in_page_ms"] = page.evaluate(SEARCH_SCRIPT, ["", 0])
    numbers.update({f"page_{k}": v for k, v in page.evaluate("window.__perf").items()})

    write_json(tmp_path / "browser-20k.json", numbers)
    write_json(REPO_ROOT / "test-output" / "browser-20k.json", numbers)
    with capsys.disabled():
        sys.stdout.write("\n20,000-file vault in the browser: " + json.dumps(numbers) + "\n")
    for key in ("round_trip_after_load_s", "round_trip_after_broad_search_s"):
        assert numbers[key] < 2.0, numbers
