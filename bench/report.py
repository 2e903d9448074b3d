"""The benchmark report: markdown and PNG charts from one results document.

    .venv/bin/python bench/report.py bench/results/<date>-<commit>.json [--latest]

Writes <date>-<commit>.md beside the JSON and its charts in <date>-<commit>/: every figure
against its goal from the issues (one bar chart, as measured / goal on a shared log axis),
and the latency distributions the scripts recorded (CDFs, or a histogram). --latest also
points bench/results/LATEST.md at it. bench/run_all.py calls this after a run; running it
by hand redraws a report from its JSON, e.g. after a change to this file.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

# Where each script's goals come from (the issue that set them).
GOAL_SOURCES = {
    "checkin": "issue 2",
    "latency_under_upload": "issue 2",
    "checkout": "issue 2",
    "list_files": "issue 2",
    "ws_fanout": "issue 3",
    "ws_idle": "issue 3",
    "ws_restart": "issue 3",
    "import_files": "issue 5",
    "mirror_push": "issue 5",
    "scale_out": "issue 7",
    "abuse": "issue 8",
}
NOISY_CORES = 0.2  # other processes' CPU above this makes a run's latencies doubtful
MET, MISSED = "#2e7d32", "#c62828"
GOAL_RE = re.compile(r"^\s*(<=|>=)\s*([-+0-9.eE]+)")


def dumps(doc: dict[str, Any]) -> str:
    """The results document as indented JSON, with each list of numbers on one line."""
    text = json.dumps(finite(doc), indent=1, default=str, allow_nan=False)
    # A list of numbers (or null, true, false) spread over lines: a raw newline is never
    # inside a JSON string, so this cannot touch text.
    flat = re.compile(r"\[(\n(?:[-+0-9.eE,\s]|null|true|false)*)\]")
    return flat.sub(lambda found: "[" + " ".join(found.group(1).split()) + "]", text) + "\n"


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (null): JSON has no NaN, jq rejects it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def stem(doc: dict[str, Any]) -> str:
    """The report's file name without extension: <date>-<short commit>, tagged -quick,
    -subset or -<sqlite mode> when it is not a full default run, so a trial run never
    overwrites the full report of the same day and commit."""
    tags = ["quick"] if doc.get("quick") else []
    if not doc.get("complete", True):
        tags.append("subset")
    flags = doc.get("flags", [])
    if "--sqlite-synchronous" in flags[:-1]:
        mode = flags[flags.index("--sqlite-synchronous") + 1].lower()
        tags += [mode] if mode != "full" else []
    return "-".join([doc["date"], doc["commit"], *tags])


# --- numbers ---------------------------------------------------------------------------------


def parse_goal(goal: str) -> tuple[str, float] | None:
    """``"<= 150 ms"`` -> ``("<=", 150.0)``; None for a goal that is not a plain limit."""
    found = GOAL_RE.match(goal or "")
    if not found:
        return None
    try:
        return found.group(1), float(found.group(2))
    except ValueError:
        return None


def goal_ratio(row: dict[str, Any]) -> float | None:
    """measured / goal; <= 1 meets an "at most" goal, >= 1 an "at least" one."""
    parsed = parse_goal(row.get("goal", ""))
    value = row.get("value")
    if parsed is None or not isinstance(value, int | float) or parsed[1] == 0:
        return None
    ratio = value / parsed[1]
    return ratio if math.isfinite(ratio) else None


def fmt(value: Any, unit: str = "") -> str:
    """A figure with as many digits as it deserves, and its unit."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    size = abs(value)
    text = f"{value:,.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else f"{value:.2f}"
    return f"{text} {unit}".strip() if unit != "x" else f"{text}x"


TAG_LIKE = re.compile(r"<(?=[A-Za-z/!?])")  # "<epoch>" would vanish as an HTML tag


def plain(text: Any) -> str:
    """Script text safe in markdown: no stray HTML tags or emphasis from ``2**n``."""
    return TAG_LIKE.sub("&lt;", str(text)).replace("*", "\\*")


def cell(text: Any) -> str:
    """Text safe inside a markdown table cell."""
    return plain(text).replace("|", "\\|").replace("\n", " ")


def goal_rows(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(benchmark, row) for every row that has a goal, in run order."""
    return [
        (run["name"], row)
        for run in doc["benchmarks"]
        for row in run["rows"]
        if row.get("goal") and row.get("met") is not None
    ]


def other_cores(run: dict[str, Any]) -> float | None:
    """The most CPU other processes used during any measured phase of a benchmark."""
    values = [
        row["value"]
        for row in run["rows"]
        if row["metric"].startswith("CPU of other processes")
        and isinstance(row["value"], int | float)
    ]
    return max(values) if values else None


# --- charts ----------------------------------------------------------------------------------


def draw_goals(rows: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """One bar per figure: measured / goal on a log axis around 1; green met, red not."""
    bars = [(name, row, goal_ratio(row)) for name, row in rows]
    bars = [(name, row, r) for name, row, r in bars if r is not None and r > 0]
    if not bars:
        return False
    fig = Figure(figsize=(11, 0.32 * len(bars) + 1.6))
    ax = fig.subplots()
    labels = [f"{name}: {row['metric']}" for name, row, _r in reversed(bars)]
    ratios = [r for _name, _row, r in reversed(bars)]
    colors = [MET if row["met"] else MISSED for _name, row, _r in reversed(bars)]
    positions = range(len(bars))
    # Bars grow from the goal (1) towards the measured ratio, so "how far from the goal"
    # reads the same for small and large figures.
    ax.barh(positions, [r - 1 for r in ratios], left=1, color=colors, height=0.6)
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=1)
    ax.set_yticks(list(positions), labels, fontsize=8)
    for y, (_name, row, r) in zip(positions, reversed(bars), strict=True):
        # right of the bar or of the goal line, whichever is further right: never over the
        # figure names on the left
        ax.annotate(
            f"{fmt(row['value'], row['unit'])} vs {row['goal']}",
            (max(r, 1), y),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    low, high = min(min(ratios), 1) / 2, max(max(ratios), 1) * 8
    ax.set_xlim(low, high)
    # 1-2-5 ticks labelled "0.5x", "2x": log-scale labels like 5x10^-1 read badly here
    ticks = [m * 10.0**e for e in range(-6, 7) for m in (1, 2, 5) if low <= m * 10.0**e <= high]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("measured / goal (log scale; green = goal met, red = not met)")
    ax.set_title("Every figure against its goal")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return True


def _cdf_points(series: dict[str, Any]) -> tuple[list[float], list[float]]:
    """x = the values, y = % at or below; quantile points are evenly spaced in y."""
    values = series["values"]
    if series.get("quantiles"):
        step = 100 / max(len(values) - 1, 1)
        return values, [i * step for i in range(len(values))]
    n = len(values)
    return values, [100 * (i + 1) / n for i in range(n)]


def _percentile(series: dict[str, Any], q: float) -> float:
    """Linear interpolation between ranks, as bench/_measure.py's pct() computes the rows;
    on quantile points (which are pct() at even steps) it lands within a step of it."""
    values = series["values"]
    rank = (len(values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return float(values[low] + (values[high] - values[low]) * (rank - low))


def _two_and_five(value: float, _pos: int | None) -> str:
    """Labels for the minor ticks 2 and 5 of each decade of a log axis; the rest blank."""
    lead = f"{value:.0e}"[0]
    return f"{value:g}" if lead in "25" else ""


def _goal_lines(ax: Axes, chart: dict[str, Any], cdf: bool) -> None:
    goal = chart.get("goal")
    if goal is None:
        return
    q = chart.get("goal_quantile") or 99
    which = "max" if q >= 100 else f"p{q:g}"
    label = f"goal: {which} <= {fmt(goal, chart['unit'])}"
    ax.axvline(goal, color="black", linestyle="--", linewidth=1.2, label=label)
    if cdf and q < 100:
        ax.axhline(q, color="grey", linestyle=":", linewidth=1)


def draw_distribution(chart: dict[str, Any], path: Path) -> bool:
    """A CDF of each series (or a histogram), with the goal drawn in."""
    series = [s for s in chart["series"] if s["values"]]
    if not series:
        return False
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    unit = chart["unit"]
    q = chart.get("goal_quantile") or 99
    if chart.get("kind") == "histogram":
        for s in series:
            values = s["values"]
            span = max(values) - min(values)
            bins: int | list[float] = 40
            if 0 < span <= 120:  # one bucket per unit (e.g. 1 s), as ws_restart prints it
                start = math.floor(min(values))
                bins = [float(start + i) for i in range(int(math.ceil(max(values))) - start + 2)]
            weight = s["n"] / len(values)  # a quantile point stands for n / points samples
            ax.hist(values, bins=bins, weights=[weight] * len(values), alpha=0.7,
                    label=f"{s['label']} (n={s['n']:,})")  # fmt: skip
        ax.set_ylabel("count")
        _goal_lines(ax, chart, cdf=False)
    else:
        for s in series:
            xs, ys = _cdf_points(s)
            tag = "max" if q >= 100 else f"p{q:g}"
            label = f"{s['label']} (n={s['n']:,}, {tag} {fmt(_percentile(s, q), unit)})"
            ax.step(xs, ys, where="post", label=label)
        ax.set_ylabel("% at or below")
        ax.set_ylim(0, 101)
        _goal_lines(ax, chart, cdf=True)
        every = [v for s in series for v in s["values"]] + [chart.get("goal") or 0]
        positive = [v for v in every if v > 0]
        if positive and max(positive) / min(positive) > 30:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(_two_and_five))
    ax.set_xlabel(unit)
    ax.set_title(chart["title"])
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right" if chart.get("kind") != "histogram" else "best")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return True


# --- markdown --------------------------------------------------------------------------------


def header(doc: dict[str, Any]) -> list[str]:
    mach = doc["machine"]
    names = [run["name"] for run in doc["benchmarks"]]
    kind = "quick run (--quick: fewer samples, smaller sizes)" if doc.get("quick") else "full run"
    flags = " ".join(doc.get("flags", [])) or "none"
    dirty = " (with uncommitted changes)" if doc.get("dirty") else ""
    noise = [c for run in doc["benchmarks"] if (c := other_cores(run)) is not None]
    which = "every benchmark" if doc.get("complete") else "a subset"
    lines = [
        f"# camvault benchmarks: {doc['date']}, commit {doc['commit']}{dirty}",
        "",
        f"- **Run:** {kind}; flags: `{flags}`; {which}: {', '.join(names)}; "
        f"{doc['started_at']} to {doc['finished_at']}.",
        f"- **Machine:** {mach.get('cpu_model') or 'unknown CPU'}, {mach.get('cpus')} cores, "
        f"{fmt(mach.get('ram_mib', 0) / 1024, 'GiB')} RAM, Linux {mach.get('kernel')}, "
        f"Python {mach.get('python')}.",
        f"- **Load average** (1, 5, 15 min): {fmt_load(mach.get('load_before'))} before, "
        f"{fmt_load(mach.get('load_after'))} after.",
    ]
    if noise:
        worst = max(noise)
        verdict = (
            "a noisy machine: read the latencies with the ratios below"
            if worst > NOISY_CORES
            else "a quiet machine"
        )
        lines.append(
            f"- **Other processes** used up to {worst:.2f} cores during the measured phases: "
            f"{verdict}."
        )
    return lines


def fmt_load(load: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in load) if load else "n/a"


def goals_table(doc: dict[str, Any]) -> list[str]:
    rows = goal_rows(doc)
    met = sum(1 for _name, row in rows if row["met"])
    lines = [
        "## Every figure against its goal",
        "",
        f"**{met} of {len(rows)} goals met.** Goals are targets from the issues, "
        'not pass/fail tests; measured / goal is <= 1 for a met "at most" goal and >= 1 '
        'for a met "at least" goal.',
        "",
        "| benchmark | figure | measured | goal | measured / goal | met | goal from |",
        "| --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for name, row in rows:
        ratio = goal_ratio(row)
        lines.append(
            f"| {name} | {cell(row['metric'])} | {fmt(row['value'], row['unit'])} | "
            f"{cell(row['goal'])} | {fmt(ratio, 'x') if ratio is not None else 'n/a'} | "
            f"{'yes' if row['met'] else '**no**'} | {GOAL_SOURCES.get(name, '')} |"
        )
    return lines


def ratios_table(doc: dict[str, Any]) -> list[str]:
    rows = [
        (run["name"], row) for run in doc["benchmarks"] for row in run["rows"] if row["unit"] == "x"
    ]
    if not rows:
        return []
    lines = [
        "## Ratios from the same run",
        "",
        "Each divides two figures from this run, so whatever else loaded the machine weighs "
        "on both; on a noisy machine they say more than the absolute latencies.",
        "",
        "| benchmark | ratio | value | note |",
        "| --- | --- | ---: | --- |",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {cell(row['metric'])} | {fmt(row['value'], 'x')} | {cell(row['note'])} |"
        )
    return lines


def benchmark_section(run: dict[str, Any], charts: list[str]) -> list[str]:
    name = run["name"]
    lines = [f"### {name}", ""]
    if run.get("about"):
        lines += [plain(run["about"]), ""]
    facts = [f"`bench/{name}.py`", f"ran {run['seconds']:.0f} s"]
    if name in GOAL_SOURCES:
        facts.append(f"goals from {GOAL_SOURCES[name]}")
    cores = other_cores(run)
    if cores is not None:
        facts.append(f"other processes used up to {cores:.2f} cores")
    lines += ["; ".join(facts) + ".", ""]
    if run["exit"] != 0 or not run["rows"]:
        return [*lines, f"**Did not complete** (exit {run['exit']}): no numbers.", ""]
    lines += ["| figure | measured | goal | met | note |", "| --- | ---: | --- | --- | --- |"]
    for row in run["rows"]:
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(
            f"| {cell(row['metric'])} | {fmt(row['value'], row['unit'])} | {cell(row['goal'])} "
            f"| {met} | {cell(row['note'])} |"
        )
    lines.append("")
    lines += [f"![{name} chart {i + 1}]({png})" for i, png in enumerate(charts)]
    return [*lines, ""] if charts else lines


def render(
    doc: dict[str, Any], json_name: str, goals_png: str | None, charts: dict[str, list[str]]
) -> str:
    lines = header(doc) + [""] + goals_table(doc) + [""]
    if goals_png:
        lines += [f"![every figure against its goal]({goals_png})", ""]
    ratios = ratios_table(doc)
    if ratios:
        lines += [*ratios, ""]
    lines += ["## Each benchmark", ""]
    for run in doc["benchmarks"]:
        lines += benchmark_section(run, charts.get(run["name"], []))
    lines += [
        "---",
        f"Made by `make bench` (bench/run_all.py); the numbers are in `{json_name}`. "
        f"Redraw with `.venv/bin/python bench/report.py bench/results/{json_name}`.",
    ]
    return "\n".join(lines).rstrip() + "\n"


# --- files -----------------------------------------------------------------------------------


def write_report(doc: dict[str, Any], json_path: Path) -> Path:
    """<stem>.md beside ``json_path``, charts in <stem>/ (stale charts removed); the .md path."""
    chart_dir = json_path.with_suffix("")
    chart_dir.mkdir(parents=True, exist_ok=True)
    for old in chart_dir.glob("*.png"):
        old.unlink()
    goals_png = None
    if draw_goals(goal_rows(doc), chart_dir / "goals.png"):
        goals_png = f"{chart_dir.name}/goals.png"
    charts: dict[str, list[str]] = {}
    for run in doc["benchmarks"]:
        for i, chart in enumerate(run.get("distributions", [])):
            png = chart_dir / f"{run['name']}-{i + 1}.png"
            if draw_distribution(chart, png):
                charts.setdefault(run["name"], []).append(f"{chart_dir.name}/{png.name}")
    md_path = json_path.with_suffix(".md")
    md_path.write_text(render(doc, json_path.name, goals_png, charts))
    return md_path


def write_latest(doc: dict[str, Any], md_path: Path) -> Path:
    """LATEST.md beside the report: a stable link to it, with its headline."""
    rows = goal_rows(doc)
    met = sum(1 for _name, row in rows if row["met"])
    mach = doc["machine"]
    latest = md_path.parent / "LATEST.md"
    latest.write_text(
        "# Latest benchmark report\n\n"
        f"[{doc['date']}, commit {doc['commit']}]({md_path.name}): {met} of {len(rows)} goals "
        f"met, on {mach.get('cpus')} cores ({mach.get('cpu_model') or 'unknown CPU'}), load "
        f"average {fmt_load(mach.get('load_before'))} at the start.\n\n"
        '`make bench` measures again (see the README, "Benchmarks").\n'
    )
    return latest


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv if not a.startswith("--")]
    if len(paths) != 1:
        print(__doc__)
        return 2
    doc = json.loads(paths[0].read_text())
    md_path = write_report(doc, paths[0])
    print(f"wrote {md_path} and its charts in {paths[0].with_suffix('')}/")
    if "--latest" in argv:
        print(f"wrote {write_latest(doc, md_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
