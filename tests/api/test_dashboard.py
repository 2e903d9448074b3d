"""The dashboard: check-ins per day per user and the most active files, counted from the
event log, for any signed-in user; and the same numbers as a server-rendered SVG chart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from anyio import to_thread
from helpers import Vault, checkin, mcam, upload

from camvault.events.log import EventType, append
from camvault.services import dashboard

pytestmark = pytest.mark.anyio

SVG = "{http://www.w3.org/2000/svg}"


async def make_activity(vault: Vault) -> None:
    """ann: 2 check-ins of A1; bob: 1 check-in of B2; A1 also has an upload and checkouts."""
    async with await vault.add_user("ann") as ann, await vault.add_user("bob") as bob:
        await upload(ann, "1234567_A1.mcam", mcam(b"one"))
        await upload(bob, "7654321_B2.mcam", mcam(b"one"))
        for round_ in (b"two", b"three"):
            assert (await ann.post("/api/files/1234567_A1.mcam/checkout")).status_code == 200
            done = await checkin(ann, "1234567_A1.mcam", mcam(round_))
            assert done.status_code == 200, done.text
        assert (await bob.post("/api/files/7654321_B2.mcam/checkout")).status_code == 200
        assert (await checkin(bob, "7654321_B2.mcam", mcam(b"two"))).status_code == 200


async def test_any_user_sees_checkins_per_day_and_the_most_active_files(vault: Vault) -> None:
    await make_activity(vault)
    async with await vault.add_user("carl") as carl:
        answer = await carl.get("/api/dashboard")
        latest = (await carl.get("/api/files")).json()["seq"]
    assert answer.status_code == 200
    body = answer.json()
    assert body["timezone"] == "UTC"
    assert len(body["days"]) == dashboard.DAYS
    assert body["days"][-1] == datetime.now(UTC).date().isoformat()
    assert [(u["user"], u["total"], u["counts"][-1]) for u in body["checkins"]] == [
        ("ann", 2, 2),
        ("bob", 1, 1),
    ]
    assert all(sum(u["counts"][:-1]) == 0 for u in body["checkins"])
    assert body["checkins_total"] == 3
    # A1: upload, 2 x (checkout + check-in) = 5 events; B2: upload, checkout, check-in = 3.
    assert [(f["filename"], f["events"], f["checkins"]) for f in body["active_files"]] == [
        ("1234567_A1.mcam", 5, 2),
        ("7654321_B2.mcam", 3, 1),
    ]
    assert body["seq"] >= latest


async def test_an_empty_vault_has_an_empty_dashboard(vault: Vault) -> None:
    async with await vault.login("admin") as admin:
        body = (await admin.get("/api/dashboard", params={"tz": "Europe/Berlin"})).json()
        chart = await admin.get("/api/dashboard/checkins.svg", params={"tz": "Europe/Berlin"})
    assert body["timezone"] == "Europe/Berlin"
    assert body["checkins"] == [] and body["active_files"] == [] and body["checkins_total"] == 0
    assert chart.status_code == 200 and b"No check-ins in the last 30 days" in chart.content


async def test_the_dashboard_needs_a_session_and_a_known_time_zone(vault: Vault) -> None:
    async with vault.client() as anon:
        assert (await anon.get("/api/dashboard")).status_code == 401
        assert (await anon.get("/api/dashboard/checkins.svg")).status_code == 401
    async with await vault.login("admin") as admin:
        for path in ("/api/dashboard", "/api/dashboard/checkins.svg"):
            bad = await admin.get(path, params={"tz": "Mars/Olympus_Mons"})
            assert bad.status_code == 400
            assert bad.json()["error"]["code"] == "bad_request"
            assert "Mars/Olympus_Mons" in bad.json()["error"]["message"]
        theme = await admin.get("/api/dashboard/checkins.svg", params={"theme": "neon"})
        assert theme.status_code == 400 and "error" in theme.json()


async def test_days_are_counted_in_the_viewers_time_zone_and_old_events_fall_out(
    vault: Vault,
) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    stamps = {
        "late-evening-in-new-york": datetime(2026, 3, 10, 2, 30, tzinfo=UTC),  # 9 Mar, 22:30
        "noon": datetime(2026, 3, 10, 11, 0, tzinfo=UTC),
        "too-old": now - timedelta(days=45),
    }

    def write() -> None:
        with vault.camvault.db.write() as conn:
            for label, at in stamps.items():
                append(conn, EventType.FILE_CHECKED_IN, actor="dora", filename=f"{label}.nc",
                       version=2, at=at)  # fmt: skip

    await to_thread.run_sync(write)
    db = vault.camvault.db
    utc = dashboard.aggregates(db, tz=ZoneInfo("UTC"), now=now)
    new_york = dashboard.aggregates(db, tz=ZoneInfo("America/New_York"), now=now)
    assert utc["days"][-1] == "2026-03-10" and utc["days"][0] == "2026-02-09"
    assert [(u["user"], u["counts"][-2:]) for u in utc["checkins"]] == [("dora", [0, 2])]
    assert [(u["user"], u["counts"][-2:]) for u in new_york["checkins"]] == [("dora", [1, 1])]
    recent = {f["filename"] for f in utc["active_files"]}
    assert recent == {"late-evening-in-new-york.nc", "noon.nc"}


async def test_the_chart_is_an_svg_image_with_every_user_and_no_active_content(
    vault: Vault,
) -> None:
    await make_activity(vault)
    async with await vault.login("admin") as admin:
        light = await admin.get("/api/dashboard/checkins.svg")
        dark = await admin.get("/api/dashboard/checkins.svg", params={"theme": "dark"})
    assert light.status_code == 200
    assert light.headers["content-type"].startswith("image/svg+xml")
    assert light.headers["content-security-policy"].startswith("default-src 'none'")
    assert light.headers["x-content-type-options"] == "nosniff"
    root = ElementTree.fromstring(light.content)  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    legend = {t.text for t in root.iter(f"{SVG}text")}
    assert {"ann", "bob"} <= legend
    today = datetime.now(UTC).date()
    assert f"{today.day} {dashboard.MONTHS[today.month - 1]}" in legend
    # Nothing is fetched from elsewhere (pygal's default loads its tooltips from a CDN).
    assert not re.search(rb"(?:src|href)=\"(?:https?:)?//", light.content)
    assert b"#1f6feb" in light.content and b"#4c8dff" in dark.content


async def test_user_names_in_the_chart_are_text_not_markup(vault: Vault) -> None:
    def write() -> None:
        with vault.camvault.db.write() as conn:
            append(conn, EventType.FILE_CHECKED_IN, actor="<b>x</b>", filename="a.nc", version=2)

    await to_thread.run_sync(write)
    async with await vault.login("admin") as admin:
        svg = (await admin.get("/api/dashboard/checkins.svg")).content
    assert b"<b>" not in svg and b"&lt;b&gt;x&lt;/b&gt;" in svg


def test_more_users_than_colours_are_summed_up_as_others() -> None:
    users = [{"user": f"u{i}", "counts": [i, 1], "total": i + 1} for i in range(12, 0, -1)]
    series = dashboard._series(users)
    assert len(series) == dashboard.MAX_SERIES
    assert series[-1] == ("others", [sum(range(1, 6)), 5])
