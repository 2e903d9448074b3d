"""The admin and insight pages in real Chromium against real ``camvault serve`` processes:
Users, Audit, Dashboard and Account, their navigation, and what a plain user may see.

Setup goes through the CLI and the REST API; what is tested goes through the page. Each
test saves screenshots at its key moments (test-output/screenshots/<test-name>/).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.browser import (  # noqa: F401 - the fixtures are used by name
    HDF5,
    Pages,
    Screenshots,
    add_user,
    browser_fixture,
    dialog,
    dialog_button,
    login,
    pages_fixture,
    screenshots_fixture,
    state,
    tab_until,
    toasts,
)
from e2e.server import Launcher, Server, checkin, upload

pytestmark = pytest.mark.slow

PASSWORD = "admin-pages-password"
NEW_PASSWORD = "a-fresh-long-secret"
AUDIT_COLUMNS = ["seq", "at", "actor", "type", "filename", "version", "message", "details"]


@pytest.fixture
def server(launch: Launcher, server_database_url: str | None, tmp_path: Path) -> Server:
    """A server on SQLite, and on PostgreSQL when the test run has one. Locks count as
    stale after 3.6 s, so the dashboard's highlight can be seen in a test."""
    return launch.start(
        tmp_path / "data",
        admin_password=PASSWORD,
        database_url=server_database_url,
        env={"CAMVAULT_STALE_LOCK_HOURS": "0.001"},
    )


def nav(page: Page) -> list[str]:
    names: list[str] = page.eval_on_selector_all(
        "nav.nav a", "links => links.map(a => a.textContent)"
    )
    return names


def go(page: Page, label: str, title: str) -> None:
    """Open a page from the header's navigation and wait for its title."""
    page.locator("nav.nav a", has_text=re.compile(f"^{label}$")).click()
    expect(page.locator("h1.page-title")).to_have_text(title)


def seed_file(server: Server, token: str, name: str) -> None:
    with server.client(token) as api:
        response = upload(api, name, HDF5 + os.urandom(256), description="seeded")
    assert response.status_code == 201, response.text


def checkout(server: Server, token: str, name: str, message: str = "") -> None:
    with server.client(token) as api:
        response = api.post(f"/api/files/{name}/checkout", json={"message": message})
    assert response.status_code == 200, response.text


def check_in(server: Server, token: str, name: str) -> None:
    with server.client(token) as api:
        response = checkin(api, name, HDF5 + os.urandom(256), message="new toolpath")
    assert response.status_code == 200, response.text


def user_row(page: Page, username: str) -> object:
    return page.locator(f'#users-table tr[data-username="{username}"]')


# --- Users ---------------------------------------------------------------------------------


def test_admin_creates_and_disables_a_user_whose_page_returns_to_login(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    admin = pages.new("admin")
    login(admin, server, "admin", PASSWORD)
    assert nav(admin) == ["Vault", "Dashboard", "Audit", "Users", "Settings", "Account"]
    go(admin, "Users", "Users")
    assert admin.url.endswith("#/users")
    expect(user_row(admin, "admin")).to_contain_text("active")

    # A password the policy refuses: the server's message is shown, nothing is created.
    admin.locator("#new-username").fill("carol")
    admin.locator("#new-password").fill("carol")
    admin.locator("#create-user").click()
    refusal = admin.locator("form.create-user [role=alert]")
    expect(refusal).to_be_visible()
    expect(refusal).not_to_be_empty()
    expect(user_row(admin, "carol")).to_have_count(0)
    screenshots.take(admin, "password-refused-by-policy")

    admin.locator("#new-password").fill(NEW_PASSWORD)
    admin.locator("#create-user").click()
    expect(user_row(admin, "carol")).to_contain_text("active")
    expect(refusal).to_be_hidden()
    expect(admin.locator("#new-username")).to_have_value("")  # the form is ready for the next one
    screenshots.take(admin, "carol-created")

    carol = pages.new("carol")
    login(carol, server, "carol", NEW_PASSWORD)
    # A plain user is offered no admin page, and the URL of one shows the vault.
    assert nav(carol) == ["Vault", "Dashboard", "Account"]
    carol.goto(f"{server.base_url}/#/audit")
    expect(carol.locator(".toolbar .search")).to_be_visible()
    assert carol.url.endswith("#/")
    assert state(carol, "s.ui.view") == "vault"
    expect(carol.locator("#audit-table, #users-table")).to_have_count(0)
    screenshots.take(carol, "carol-has-no-admin-pages")

    user_row(admin, "carol").locator("[data-action=disable]").click()
    expect(dialog(admin)).to_be_visible()
    screenshots.take(admin, "disable-dialog")
    dialog_button(admin, "Disable").click()
    expect(dialog(admin)).to_be_hidden()
    expect(user_row(admin, "carol")).to_contain_text("disabled")
    expect(user_row(admin, "carol").locator("[data-action=enable]")).to_be_visible()
    # Focus went back to carol's row, rebuilt with its new button.
    assert admin.evaluate("document.activeElement.closest('tr')?.dataset.username") == "carol"
    assert admin.evaluate("document.activeElement.dataset.action") == "enable"
    # Carol's open page: her socket was closed, her session is gone: the login form.
    expect(carol.locator("#username")).to_be_visible(timeout=10_000)
    expect(carol.locator(".login [role=alert]")).to_contain_text("session has ended")
    screenshots.take(admin, "carol-disabled")
    screenshots.take(carol, "carol-back-at-login")


def test_the_last_admin_cannot_demote_or_disable_themself_and_is_told_why(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    admin = pages.new("admin")
    login(admin, server, "admin", PASSWORD)
    admin.goto(f"{server.base_url}/#/users")  # a reload of the page lands on it again
    expect(admin.locator("h1.page-title")).to_have_text("Users")
    row = user_row(admin, "admin")
    row.locator("select").select_option("user")
    notice = admin.locator("#users-error")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("admin was not changed:")
    expect(notice).to_contain_text(re.compile("admin", re.I))
    expect(row.locator("select")).to_have_value("admin")  # the role still in force
    screenshots.take(admin, "last-admin-refused")
    message = notice.text_content() or ""
    with server.client(server.login("admin", PASSWORD)) as api:
        answer = api.patch("/api/admin/users/admin", json={"role": "user"})
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "last_admin"
        assert answer.json()["error"]["message"] in message
        assert api.get("/api/auth/me").json()["role"] == "admin"

    row.locator("[data-action=disable]").click()
    dialog_button(admin, "Disable").click()
    expect(dialog(admin).locator("[role=alert]")).to_contain_text(answer.json()["error"]["message"])
    screenshots.take(admin, "last-admin-disable-refused")
    dialog(admin).locator("button", has_text="Cancel").click()
    expect(row).to_contain_text("active")

    # Back and forward follow the pages.
    admin.locator("nav.nav a", has_text="Dashboard").click()
    expect(admin.locator("h1.page-title")).to_have_text("Dashboard")
    admin.go_back()
    expect(admin.locator("h1.page-title")).to_have_text("Users")
    admin.go_forward()
    expect(admin.locator("h1.page-title")).to_have_text("Dashboard")


# --- Audit ---------------------------------------------------------------------------------


def test_audit_table_filters_pages_and_downloads_the_filtered_csv(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    add_user(server, "ann", PASSWORD)
    admin_token = server.login("admin", PASSWORD)
    ann_token = server.login("ann", PASSWORD)
    seed_file(server, admin_token, "1234567_A1.mcam")
    seed_file(server, admin_token, "7654321.mcam")
    checkout(server, ann_token, "1234567_A1.mcam", "op 20")
    check_in(server, ann_token, "1234567_A1.mcam")
    # Enough events for a second page (100 a page): checkouts and cancels of another file.
    with server.client(admin_token) as api:
        for _ in range(52):
            assert api.post("/api/files/7654321.mcam/checkout", json={}).status_code == 200
            assert api.post("/api/files/7654321.mcam/cancel-checkout").status_code == 200

    page = pages.new("admin")
    login(page, server, "admin", PASSWORD)
    go(page, "Audit", "Audit log")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(100)
    older = page.locator("#audit-older")
    expect(older).to_be_visible()
    screenshots.take(page, "audit-first-page")
    older.click()
    expect(older).to_be_hidden()
    total = rows.count()
    assert total > 100
    seqs = [
        int(s)
        for s in page.eval_on_selector_all(
            "#audit-table tbody tr", "r => r.map(x => x.dataset.seq)"
        )
    ]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)

    page.locator("#audit-user").fill("ann")
    page.locator("#audit-type").select_option("file")
    page.locator("#audit-apply").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Check-in")
    expect(rows.nth(0)).to_contain_text("1234567_A1.mcam")
    expect(rows.nth(0)).to_contain_text("new toolpath")
    expect(rows.nth(1)).to_contain_text("Checkout")
    expect(rows.nth(1)).to_contain_text("op 20")
    screenshots.take(page, "audit-filtered-ann-file-events")

    csv_link = page.locator("#audit-csv")
    href = csv_link.get_attribute("href") or ""
    assert "user=ann" in href and "type=file" in href and "format=csv" in href
    with page.expect_download() as download:
        csv_link.click()
    table = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert table[0] == AUDIT_COLUMNS
    assert [(r[2], r[3], r[4]) for r in table[1:]] == [
        ("ann", "file.checked_in", "1234567_A1.mcam"),
        ("ann", "file.checked_out", "1234567_A1.mcam"),
    ]

    # A filter nothing matches explains itself.
    page.locator("#audit-file").fill("no-such-file.nc")
    page.locator("#audit-apply").click()
    expect(page.locator("#audit-table")).to_be_hidden()
    expect(page.locator(".table-card .empty")).to_contain_text("Nothing in the log matches")
    screenshots.take(page, "audit-nothing-matches")
    page.locator("#audit-clear").click()
    expect(rows).to_have_count(100)
    expect(page.locator("#audit-user")).to_have_value("")


# --- Dashboard -----------------------------------------------------------------------------


def chart_src(page: Page) -> str:
    return page.locator("#checkins-chart").get_attribute("src") or ""


def chart_loaded(page: Page) -> None:
    page.wait_for_function(
        "() => { const i = document.querySelector('#checkins-chart');"
        " return i && !i.hidden && i.complete && i.naturalWidth > 0; }"
    )


def test_dashboard_shows_checkouts_checkins_and_who_is_online_and_follows_live(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    add_user(server, "ann", PASSWORD)
    add_user(server, "bob", PASSWORD)
    admin_token = server.login("admin", PASSWORD)
    ann_token, bob_token = server.login("ann", PASSWORD), server.login("bob", PASSWORD)
    for name in ("1234567_A1.mcam", "1234567_B2.mcam", "7654321.mcam"):
        seed_file(server, admin_token, name)
    checkout(server, ann_token, "1234567_A1.mcam")
    check_in(server, ann_token, "1234567_A1.mcam")
    checkout(server, bob_token, "1234567_B2.mcam", "fixture change")

    ann = pages.new("ann")
    login(ann, server, "ann", PASSWORD)
    go(ann, "Dashboard", "Dashboard")
    checkouts = ann.locator("#checkouts-table tbody tr")
    expect(checkouts).to_have_count(1)
    expect(checkouts.first).to_contain_text("1234567_B2.mcam")
    expect(checkouts.first).to_contain_text("bob")
    expect(checkouts.first).to_contain_text("fixture change")
    expect(ann.locator("#checkouts-table [data-action=break]")).to_have_count(0)  # not an admin
    chart_loaded(ann)
    expect(ann.locator("#checkins-totals")).to_contain_text("ann 1")
    expect(ann.locator("#active-files tbody tr").first).to_contain_text("1234567_A1.mcam")
    expect(ann.locator("#online-now")).to_contain_text("ann")
    screenshots.take(ann, "dashboard-ann")

    # Another user checks out and in: ann's dashboard follows without a reload.
    before = chart_src(ann)
    checkout(server, admin_token, "7654321.mcam", "quick fix")
    expect(checkouts).to_have_count(2)
    expect(ann.locator('#checkouts-table tr[data-filename="7654321.mcam"]')).to_contain_text(
        "admin"
    )
    check_in(server, admin_token, "7654321.mcam")
    expect(checkouts).to_have_count(1)
    expect(ann.locator("#checkins-totals")).to_contain_text("admin 1")
    expect(ann.locator("#checkins-totals")).to_contain_text("ann 1")
    assert chart_src(ann) != before
    chart_loaded(ann)
    screenshots.take(ann, "dashboard-ann-after-live-changes")

    # The admin: bob's lock is stale by now (3.6 s) and can be broken from here.
    admin = pages.new("admin", color_scheme="dark")
    login(admin, server, "admin", PASSWORD)
    admin.goto(f"{server.base_url}/#/dashboard")
    stale_row = admin.locator('#checkouts-table tr[data-filename="1234567_B2.mcam"]')
    expect(stale_row).to_have_class(re.compile(r"\bstale\b"), timeout=10_000)
    expect(stale_row).to_contain_text("stale")
    expect(admin.locator("#online-now li")).to_have_count(2)
    chart_loaded(admin)
    assert "theme=dark" in chart_src(admin)
    screenshots.take(admin, "dashboard-admin-dark-stale-lock")
    stale_row.locator("[data-action=break]").click()
    expect(dialog(admin)).to_contain_text("Break bob's lock on 1234567_B2.mcam")
    admin.locator("#dialog-text").fill("bob is on holiday")
    dialog_button(admin, "Break lock").click()
    expect(dialog(admin)).to_be_hidden()
    expect(admin.locator("#checkouts-table")).to_be_hidden()
    expect(admin.locator("#checkouts .empty-line")).to_contain_text("No file is checked out")
    expect(checkouts).to_have_count(0)  # ann's page too
    expect(toasts(admin, "success")).to_contain_text("lock on 1234567_B2.mcam was broken")
    screenshots.take(admin, "dashboard-admin-lock-broken")


# --- Account -------------------------------------------------------------------------------


def test_anyone_changes_their_password_and_sees_the_policy_message(
    server: Server, pages: Pages, screenshots: Screenshots
) -> None:
    add_user(server, "ann", PASSWORD)
    page = pages.new("ann")
    login(page, server, "ann", PASSWORD)
    # By keyboard: Tab to the Account link, Enter; the focus lands on the page's title.
    tab_until(page, lambda el: el["tag"] == "a" and el["text"] == "Account")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(page.locator("h1.page-title")).to_have_text("Account")
    expect(page.locator("h1.page-title")).to_be_focused()
    assert page.url.endswith("#/account")
    tab_until(page, lambda el: el["id"] == "current-password")
    message = page.locator("#account-message")

    page.locator("#current-password").fill(PASSWORD)
    page.locator("#new-password-1").fill("password")
    page.locator("#new-password-2").fill("password")
    page.locator("#change-password").click()
    expect(message).to_have_attribute("role", "alert")
    expect(message).not_to_be_empty()
    screenshots.take(page, "policy-refusal")

    page.locator("#current-password").fill("wrong-password-here")
    page.locator("#new-password-1").fill(NEW_PASSWORD)
    page.locator("#new-password-2").fill(NEW_PASSWORD)
    page.locator("#change-password").click()
    expect(message).to_contain_text(re.compile("current password", re.I))

    page.locator("#current-password").fill(PASSWORD)
    page.locator("#new-password-1").fill(NEW_PASSWORD)
    page.locator("#new-password-2").fill(NEW_PASSWORD)
    page.locator("#change-password").click()
    expect(message).to_contain_text("Your password was changed")
    expect(page.locator("#current-password")).to_have_value("")
    screenshots.take(page, "password-changed")
    assert server.login("ann", NEW_PASSWORD)
