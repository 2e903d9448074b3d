"""Run every benchmark one after the other, then write the dated report and print a summary.

    .venv/bin/python bench/run_all.py [--quick] [--profile] [--sqlite-synchronous M] [NAME ...]

Flags are passed on to each script; NAMEs pick a subset (e.g. ``checkin list_files``). Each
script leaves its rows and samples in bench/results/raw/<name>.json (scratch, not
committed); this gathers them, with the machine, the load average and the commit, into
bench/results/<date>-<commit>.json, and bench/report.py turns that into <date>-<commit>.md
with PNG charts in <date>-<commit>/ (a trial run's name ends in -quick or -subset). A full
run (every script, no --quick) also points bench/results/LATEST.md at it.
Exit status is non-zero only if a script crashed: the numbers are reported, not judged.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _measure as m
import report

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
SCRIPTS = (
    "checkin",
    "latency_under_upload",
    "checkout",
    "list_files",
    "ws_fanout",
    "ws_idle",
    "ws_restart",
    "mirror_push",
    "import_files",
    "scale_out",
    "abuse",
)


def main() -> int:
    flags: list[str] = []
    names: list[str] = []
    args = iter(sys.argv[1:])
    for arg in args:
        if arg == "--sqlite-synchronous":  # the one flag with a value
            flags += [arg, next(args, "FULL")]
        elif arg.startswith("--"):
            flags.append(arg)
        else:
            names.append(arg)
    names = names or list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SCRIPTS)}")
        return 2
    mode = flags[flags.index("--sqlite-synchronous") + 1] if "--sqlite-synchronous" in flags else ""
    suffix = f"-{mode.lower()}" if mode and mode.upper() != "FULL" else ""
    started_at = now()
    load_before = os.getloadavg()
    runs = []
    for name in names:
        print(f"\n######## {name} ########", flush=True)
        started, wall_start = time.perf_counter(), time.time()
        code = subprocess.call([sys.executable, str(BENCH_DIR / f"{name}.py"), *flags])
        seconds = time.perf_counter() - started
        print(f"######## {name}: exit {code} in {seconds:.0f} s", flush=True)
        runs.append(collect(name, code, seconds, raw_result(name, suffix, since=wall_start)))
    doc = document(runs, flags, started_at, load_before)
    complete = doc["complete"] and not doc["quick"] and not suffix
    json_path = RESULTS_DIR / f"{report.stem(doc)}.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path.write_text(report.dumps(doc))
    md_path = report.write_report(doc, json_path)
    if complete:
        report.write_latest(doc, md_path)
    summarize(doc)
    charts = rel(json_path.with_suffix(""))
    print(f"\nwrote {rel(json_path)} and {rel(md_path)} (charts in {charts}/)")
    if not complete:
        print("LATEST.md left as it was: only a full run (every script, no --quick) updates it")
    failed = [run["name"] for run in runs if run["exit"] != 0]
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)}")
    return 1 if failed else 0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rel(path: Path) -> str:
    return str(path.relative_to(BENCH_DIR.parent))


def raw_result(name: str, suffix: str, since: float) -> dict[str, Any] | None:
    """The record the script just wrote (``name-normal`` etc. under a SQLite mode), or None:
    a file older than the script's start is a previous run's and is not reported again."""
    for path in (m.RAW_DIR / f"{name}{suffix}.json", m.RAW_DIR / f"{name}.json"):
        if path.exists() and path.stat().st_mtime >= since:
            record: dict[str, Any] = json.loads(path.read_text().splitlines()[-1])
            return record
    return None


def about(name: str) -> str:
    """How the script measures, as markdown: its docstring without the command-line usage."""
    source = (BENCH_DIR / f"{name}.py").read_text()
    text = ast.get_docstring(ast.parse(source)) or ""
    usage = (".venv/bin/python", "--")
    return "\n\n".join(
        markdown_blocks(p)
        for p in text.split("\n\n")
        if p.strip() and not p.strip().startswith(usage)
    )


ITEM = re.compile(r"^(  |\d+\. )")  # "  name - text" or "1. text" starts a list item


def markdown_blocks(paragraph: str) -> str:
    """A docstring paragraph as markdown: wrapped lines joined, its list items as a list
    ("  paced - ..." -> "- paced - ..."), deeper-indented lines continuing the item above."""
    blocks: list[tuple[bool, int, str]] = []  # (is an item, its indent, text)
    for line in paragraph.splitlines():
        indent = len(line) - len(line.lstrip())
        words = " ".join(line.split())
        inside_item = bool(blocks) and blocks[-1][0] and indent > blocks[-1][1]
        starts_item = ITEM.match(line) is not None and not inside_item
        if blocks and not starts_item and (inside_item or not blocks[-1][0]):
            item, at, text = blocks[-1]
            blocks[-1] = (item, at, f"{text} {words}")
        else:
            blocks.append((starts_item, indent, words))
    out = ""
    for i, (item, _at, text) in enumerate(blocks):
        if i:
            out += "\n" if item and blocks[i - 1][0] else "\n\n"
        out += f"- {text}" if item and not text[0].isdigit() else text
    return out


def collect(name: str, code: int, seconds: float, record: dict[str, Any] | None) -> dict[str, Any]:
    """One benchmark's entry in the report: how it ran, its rows, samples and other numbers."""
    record = dict(record or {})
    rows = record.pop("rows", [])
    distributions = record.pop("distributions", [])
    for key in ("bench", "at", "machine"):  # the same for every script: kept once, at the top
        record.pop(key, None)
    return {
        "name": name,
        "exit": code,
        "seconds": round(seconds, 1),
        "about": about(name),
        "rows": rows,
        "distributions": distributions,
        "extra": record,
    }


def git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def document(
    runs: list[dict[str, Any]], flags: list[str], started_at: str, load_before: tuple[float, ...]
) -> dict[str, Any]:
    """The one results document: when, which commit, on what machine, and every benchmark."""
    return {
        "schema": 1,
        "date": started_at[:10],
        "started_at": started_at,
        "finished_at": now(),
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "commit_full": git("rev-parse", "HEAD"),
        # tracked files changed since the commit: the numbers are not quite that commit's
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "flags": flags,
        "quick": "--quick" in flags,
        # every script ran to the end (not a subset, none crashed)
        "complete": {run["name"] for run in runs} == set(SCRIPTS)
        and all(run["exit"] == 0 for run in runs),
        "machine": {
            **m.machine(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "benchmarks": runs,
    }


def summarize(doc: dict[str, Any]) -> None:
    print("\n== summary: measured vs goal (goals are targets, not pass/fail tests) ==")
    for run in doc["benchmarks"]:
        name = run["name"]
        if run["exit"] != 0 or not run["rows"]:
            print(f"  --   {name:<21} no results (exit {run['exit']})")
            continue
        for row in run["rows"]:
            if row["met"] is None:
                continue
            met = "yes" if row["met"] else "NO"
            value = report.fmt(row["value"], row["unit"])
            print(f"  {met:<3}  {name:<21} {row['metric']:<48} {value:>14}  goal {row['goal']}")


if __name__ == "__main__":
    sys.exit(main())
