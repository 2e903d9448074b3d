"""bench/report.py on a small made-up results document: no benchmark runs here."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PNG = b"\x89PNG\r\n\x1a\n"


def load(name: str) -> ModuleType:
    """A bench/ module by path (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = load("report")
measure = load("_measure")


def row(metric: str, value: float, unit: str, goal: str = "", met: bool | None = None) -> Any:
    return {"metric": metric, "value": value, "unit": unit, "goal": goal, "met": met, "note": ""}


def results() -> dict[str, Any]:
    idle = [1.0 + i / 100 for i in range(300)]
    loaded = [2.0 + i / 10 for i in range(2000)]
    return {
        "schema": 1,
        "date": "2026-01-02",
        "started_at": "2026-01-02T10:00:00+00:00",
        "finished_at": "2026-01-02T10:30:00+00:00",
        "commit": "abc1234",
        "commit_full": "abc1234" + "0" * 33,
        "dirty": False,
        "flags": ["--quick"],
        "quick": True,
        "complete": False,
        "machine": {
            "python": "3.11.7",
            "cpus": 2,
            "cpu_model": "Test CPU",
            "ram_mib": 4096,
            "kernel": "6.1",
            "platform": "Linux",
            "load_before": [0.5, 0.4, 0.3],
            "load_after": [1.5, 0.9, 0.4],
        },
        "benchmarks": [
            {
                "name": "checkin",
                "exit": 0,
                "seconds": 61.0,
                "about": "Check-in over real HTTP.",
                "rows": [
                    row("20 MB check-in, median", 60.0, "ms", "<= 150 ms", True),
                    row("500 MB check-in throughput, median", 200.0, "MB/s", ">= 250 MB/s", False),
                    row("CPU of other processes during run", 0.35, "cores"),
                    row("p99 during upload / idle", 2.5, "x"),
                ],
                "distributions": [
                    measure.distribution(
                        "GET /api/files", {"idle": idle, "upload": loaded}, goal=50
                    ),
                    measure.distribution("reconnect", {"all": idle}, "s", kind="histogram"),
                ],
                "extra": {},
            },
            {
                "name": "ws_idle",
                "exit": 1,
                "seconds": 3.0,
                "about": "",
                "rows": [],
                "distributions": [],
                "extra": {},
            },
        ],
    }


def test_the_table_compares_each_figure_with_its_goal_and_charts_are_written(
    tmp_path: Path,
) -> None:
    json_path = tmp_path / "2026-01-02-abc1234.json"
    json_path.write_text(json.dumps(results()))

    assert report.main([str(json_path), "--latest"]) == 0

    text = (tmp_path / "2026-01-02-abc1234.md").read_text()
    assert text.startswith("# camvault benchmarks: 2026-01-02, commit abc1234\n")
    assert "**1 of 2 goals met.**" in text
    assert (
        "| checkin | 20 MB check-in, median | 60.0 ms | <= 150 ms | 0.40x | yes | issue 2 |" in text
    )
    assert (
        "| checkin | 500 MB check-in throughput, median | 200 MB/s | >= 250 MB/s | 0.80x "
        "| **no** | issue 2 |" in text
    )
    assert "| checkin | p99 during upload / idle | 2.50x |  |" in text
    assert "quick run" in text and "a subset: checkin, ws_idle" in text
    assert "0.35 cores" in text and "noisy machine" in text
    assert "**Did not complete** (exit 1)" in text

    charts = tmp_path / "2026-01-02-abc1234"
    pngs = sorted(p.name for p in charts.iterdir())
    assert pngs == ["checkin-1.png", "checkin-2.png", "goals.png"]
    for name in pngs:
        assert (charts / name).read_bytes().startswith(PNG)
        assert f"(2026-01-02-abc1234/{name})" in text

    latest = (tmp_path / "LATEST.md").read_text()
    assert "[2026-01-02, commit abc1234](2026-01-02-abc1234.md): 1 of 2 goals met" in latest


def test_a_redraw_removes_charts_a_benchmark_no_longer_has(tmp_path: Path) -> None:
    doc = results()
    json_path = tmp_path / "2026-01-02-abc1234.json"
    report.write_report(doc, json_path)
    doc["benchmarks"][0]["distributions"] = []
    report.write_report(doc, json_path)
    assert sorted(p.name for p in json_path.with_suffix("").iterdir()) == ["goals.png"]


@pytest.mark.parametrize(
    ("goal", "parsed"),
    [("<= 150 ms", ("<=", 150.0)), (">= 2.5e2 MB/s", (">=", 250.0)), ("no 5xx", None), ("", None)],
)
def test_goals_are_read_as_limits_or_not_at_all(goal: str, parsed: Any) -> None:
    assert report.parse_goal(goal) == parsed


def test_long_series_keep_their_count_and_extremes_as_quantiles() -> None:
    values = [float(i) for i in range(10_000)]
    chart = measure.distribution("t", {"s": values[::-1]}, goal=50)
    (series,) = chart["series"]
    assert series["n"] == 10_000 and series["quantiles"] is True
    assert len(series["values"]) == measure.MAX_POINTS
    assert series["values"][0] == 0.0 and series["values"][-1] == 9999.0
    assert series["values"] == sorted(series["values"])
    short = measure.distribution("t", {"s": [3.0, 1.0, 2.0]})["series"][0]
    assert short == {"label": "s", "n": 3, "quantiles": False, "values": [1.0, 2.0, 3.0]}


def test_the_results_file_is_strict_json_with_number_lists_on_one_line() -> None:
    doc = {"rows": [{"value": float("nan"), "note": "[1,  2]"}], "values": [1.5, float("inf")]}
    text = report.dumps(doc)
    assert json.loads(text) == {"rows": [{"value": None, "note": "[1,  2]"}], "values": [1.5, None]}
    assert '"values": [1.5, null]' in text


def test_run_all_gathers_what_a_script_just_wrote_and_not_an_older_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # run_all imports _measure and report by name
    run_all = load("run_all")
    monkeypatch.setattr(run_all.m, "RAW_DIR", tmp_path)
    record = {"bench": "checkin", "at": "t", "machine": {}, "rows": [row("x", 1.0, "ms")]}
    (tmp_path / "checkin.json").write_text(json.dumps(record | {"distributions": [], "k": 2}))
    started = time.time()
    os.utime(tmp_path / "checkin.json", (started - 60, started - 60))
    assert run_all.raw_result("checkin", "", since=started) is None

    found = run_all.raw_result("checkin", "-normal", since=started - 61)
    entry = run_all.collect("checkin", 0, 12.34, found)
    assert entry["rows"] == [row("x", 1.0, "ms")] and entry["extra"] == {"k": 2}
    assert entry["seconds"] == 12.3 and entry["about"].startswith("Check-in over real HTTP")
    assert ".venv/bin/python" not in entry["about"]
    # the docstring's indented variants become a markdown list
    assert "Variants:\n\n- single user - one user alone" in run_all.about("checkout")

    doc = run_all.document([entry], ["--quick"], "2026-01-02T10:00:00+00:00", (0.5, 0.4, 0.3))
    assert doc["date"] == "2026-01-02" and doc["quick"] is True and doc["complete"] is False
    assert doc["machine"]["load_before"] == [0.5, 0.4, 0.3] and doc["machine"]["cpus"]
    assert report.stem(doc) == f"2026-01-02-{doc['commit']}-quick-subset"
    full = doc | {"quick": False, "complete": True, "flags": []}
    assert report.stem(full) == f"2026-01-02-{doc['commit']}"
    normal = full | {"flags": ["--sqlite-synchronous", "NORMAL"]}
    assert report.stem(normal) == f"2026-01-02-{doc['commit']}-normal"
