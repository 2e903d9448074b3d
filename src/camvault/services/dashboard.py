"""The dashboard's aggregates, read from the event log, and its chart as server-rendered SVG.

Check-ins per day per user and the most active files are counts over the event log (the
audit log's own rows), read in one snapshot transaction together with the log position they
reflect. The chart is drawn by pygal on the server, so the page only shows an image: no
drawing code in the browser and nothing for the page's CSP to allow.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pygal
from pygal.style import Style
from sqlalchemy import case, func, select

from camvault.errors import BadRequest
from camvault.events.log import EventType, latest_seq
from camvault.store.db import Database
from camvault.store.models import events
from camvault.store.queries import aware, iso

DAYS = 30
TOP_FILES = 10
# More series than this and a stacked bar chart is unreadable: the rest become "others".
MAX_SERIES = 8
OTHERS = "others"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Theme = Literal["light", "dark"]

# Importing pygal appends an import hook for its map plugins (``pygal.maps.*``, unused here)
# that has only the long-deprecated ``find_module``: from then on every failed import in the
# process, such as an optional dependency probe, raises an ImportWarning. We take it out.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone days are counted in (the viewer's); UTC when none is given."""
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise BadRequest(f"unknown time zone {name!r}") from error


def window(now: datetime, tz: ZoneInfo, days: int) -> tuple[list[date], datetime]:
    """The last ``days`` calendar days in ``tz`` (today included) and when the first began."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    return [first + timedelta(days=i) for i in range(days)], start


def aggregates(
    db: Database, *, tz: ZoneInfo, now: datetime | None = None, days: int = DAYS
) -> dict[str, Any]:
    """Check-ins per day per user and the most active files over the last ``days`` days."""
    now = now or datetime.now(UTC)
    day_list, start = window(now, tz, days)
    is_checkin = events.c.type == str(EventType.FILE_CHECKED_IN)
    is_file_event = events.c.type.startswith("file.", autoescape=True)
    checkin_rows = select(events.c.at, events.c.actor).where(is_checkin, events.c.at >= start)
    activity = (
        select(
            events.c.filename,
            func.count().label("events"),
            func.sum(case((is_checkin, 1), else_=0)).label("checkins"),
            func.max(events.c.at).label("last_at"),
        )
        .where(is_file_event, events.c.filename.is_not(None), events.c.at >= start)
        .group_by(events.c.filename)
        .order_by(func.count().desc(), events.c.filename)
        .limit(TOP_FILES)
    )
    with db.read() as conn:
        seq = latest_seq(conn)
        checkins = conn.execute(checkin_rows).all()
        active = conn.execute(activity).all()

    index = {day: i for i, day in enumerate(day_list)}
    per_user: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for row in checkins:
        day = aware(row.at).astimezone(tz).date()
        if day in index:  # a clock set back could log a check-in "tomorrow"
            per_user[row.actor or "?"][index[day]] += 1
    ranked = sorted(per_user.items(), key=lambda item: (-sum(item[1]), item[0]))
    users = [{"user": user, "counts": counts, "total": sum(counts)} for user, counts in ranked]
    return {
        "seq": seq,
        "generated_at": iso(now),
        "timezone": tz.key,
        "days": [day.isoformat() for day in day_list],
        "checkins": users,
        "checkins_total": sum(u["total"] for u in users),
        "active_files": [
            {
                "filename": row.filename,
                "events": int(row.events),
                "checkins": int(row.checkins or 0),
                "last_at": iso(row.last_at),
            }
            for row in active
        ],
    }


def _series(users: list[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """At most MAX_SERIES series: the busiest users, then everyone else added up."""
    if len(users) <= MAX_SERIES:
        return [(u["user"], u["counts"]) for u in users]
    shown = users[: MAX_SERIES - 1]
    rest: Counter[int] = Counter()
    for u in users[MAX_SERIES - 1 :]:
        for i, n in enumerate(u["counts"]):
            rest[i] += n
    days = len(users[0]["counts"])
    return [(u["user"], u["counts"]) for u in shown] + [(OTHERS, [rest[i] for i in range(days)])]


# The page's own colours (css/app.css), so the chart matches the theme around it.
PALETTES: dict[Theme, dict[str, Any]] = {
    "light": {
        "foreground": "#5f6b7a",
        "foreground_strong": "#1d2330",
        "foreground_subtle": "#dde1e7",
        "colors": (
            "#1f6feb",
            "#1a7f37",
            "#9a6700",
            "#8250df",
            "#cf222e",
            "#0a7f86",
            "#bf3989",
            "#57606a",
        ),  # fmt: skip
    },
    "dark": {
        "foreground": "#9aa5b4",
        "foreground_strong": "#e6e9ee",
        "foreground_subtle": "#2b323c",
        "colors": (
            "#4c8dff",
            "#3fb950",
            "#d29922",
            "#a371f7",
            "#ff7b72",
            "#39c5cf",
            "#db61a2",
            "#8b949e",
        ),  # fmt: skip
    },
}


def checkins_chart(data: dict[str, Any], theme: Theme) -> bytes:
    """Check-ins per day, one stacked series per user, as a standalone SVG document."""
    palette = PALETTES[theme]
    style = Style(
        background="transparent",
        plot_background="transparent",
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
        label_font_size=12,
        major_label_font_size=12,
        legend_font_size=13,
        legend_box_size=12,
        no_data_font_size=20,
        **palette,
    )
    days = [date.fromisoformat(d) for d in data["days"]]
    chart = pygal.StackedBar(
        style=style,
        width=900,
        height=320,
        js=[],  # no tooltips script: the chart is shown as an image
        legend_at_bottom=True,
        legend_at_bottom_columns=4,
        show_minor_x_labels=False,
        truncate_label=-1,
        truncate_legend=20,
        print_values=False,
        no_data_text="No check-ins in the last 30 days",
    )
    chart.x_labels = [f"{d.day} {MONTHS[d.month - 1]}" for d in days]
    # Every fifth day is labelled, counted back from today, so today always has its label.
    chart.x_labels_major = chart.x_labels[::-5]
    # Whole numbers only on the y axis: nobody checks in half a file.
    per_day = zip(*(u["counts"] for u in data["checkins"]), strict=True)
    busiest = max((sum(day) for day in per_day), default=0)
    if busiest:  # (pygal fails on y labels without data)
        step = -(-busiest // 6)
        chart.y_labels = list(range(0, busiest + step, step))
    for user, counts in _series(data["checkins"]):
        chart.add(user, [n or None for n in counts])
    rendered = chart.render()
    return rendered if isinstance(rendered, bytes) else rendered.encode()
