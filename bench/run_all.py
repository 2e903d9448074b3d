"""Run every benchmark one after the other, then print one summary of the goal rows.

    .venv/bin/python bench/run_all.py [--quick] [--profile] [--sqlite-synchronous M] [NAME ...]

Flags are passed on to each script; NAMEs pick a subset (e.g. ``checkin list_files``).
Exit status is non-zero only if a script crashed: the numbers are reported, not judged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

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
    failed = []
    for name in names:
        print(f"\n######## {name} ########", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH_DIR / f"{name}.py"), *flags])
        print(f"######## {name}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    mode = flags[flags.index("--sqlite-synchronous") + 1] if "--sqlite-synchronous" in flags else ""
    suffix = f"-{mode.lower()}" if mode and mode.upper() != "FULL" else ""
    summarize([n for n in names if n not in failed], suffix)
    if failed:
        print(f"\nFAILED to run: {', '.join(failed)}")
    return 1 if failed else 0


def summarize(names: list[str], suffix: str) -> None:
    print("\n== summary: measured vs goal (goals are targets, not pass/fail tests) ==")
    for name in names:
        path = RESULTS_DIR / f"{name}{suffix}.json"
        if name in ("checkin", "list_files", "mirror_push", "scale_out"):  # no SQLite-mode variant
            path = RESULTS_DIR / f"{name}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text().splitlines()[-1])
        for row in record["rows"]:
            if row["met"] is None:
                continue
            met = "yes" if row["met"] else "NO"
            value = f"{row['value']:,.1f} {row['unit']}"
            print(f"  {met:<3}  {name:<21} {row['metric']:<48} {value:>14}  goal {row['goal']}")


if __name__ == "__main__":
    sys.exit(main())
