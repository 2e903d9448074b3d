"""Measuring and reporting for the benchmarks: RSS and CPU sampling, py-spy, percentiles,
the printed table and the JSON line in bench/results/raw/ (scratch: run_all.py gathers it
into the dated report).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RAW_DIR = BENCH_DIR / "results" / "raw"
PY_SPY = Path(sys.executable).parent / "py-spy"


# --- process memory -----------------------------------------------------------------------


def read_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kib = read_rss_kib(self.pid)
            except (FileNotFoundError, RuntimeError):
                return  # the process exited (a zombie has no VmRSS): nothing left to sample
            self.samples.append((time.perf_counter(), kib))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_kib(self) -> int:
        return max(kib for _t, kib in self.samples)


# --- machine noise -----------------------------------------------------------------------

_HZ = os.sysconf("SC_CLK_TCK")


def _machine_busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    return sum(fields[:8]) - fields[3] - fields[4]


def _process_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0
    # utime, stime, cutime, cstime (fields 14-17 of proc(5))
    return sum(int(x) for x in fields[11:15])


def wait_for_quiet(limit_cores: float = 0.3, max_wait: float = 10.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``limit_cores``; returns it.

    Other jobs share this 2-core machine; starting in a quiet moment removes some noise.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy0, t0 = _machine_busy_ticks(), time.perf_counter()
        time.sleep(1.0)
        cores = (_machine_busy_ticks() - busy0) / _HZ / (time.perf_counter() - t0)
        if cores < limit_cores or time.monotonic() > deadline:
            if cores >= limit_cores:
                step(f"machine still busy ({cores:.2f} cores used by others); going on")
            return cores


class CpuMonitor:
    """CPU used by the whole machine vs by the benchmark's own processes, in cores.

    On a shared 2-core machine another job's CPU skews every number; this row says how much.
    Children reaped during the run count as ours through this process's cutime/cstime.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = [os.getpid(), *pids]
        self.machine_cores = 0.0
        self.own_cores = 0.0
        self.per_pid: dict[int, float] = {}

    def __enter__(self) -> CpuMonitor:
        self._t0 = time.perf_counter()
        self._busy0 = _machine_busy_ticks()
        self._ticks0 = {p: _process_ticks(p) for p in self.pids}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        busy = _machine_busy_ticks() - self._busy0
        self.per_pid = {p: (_process_ticks(p) - t) / _HZ / wall for p, t in self._ticks0.items()}
        self.machine_cores = busy / _HZ / wall
        self.own_cores = sum(self.per_pid.values())

    @property
    def server_cores(self) -> float:
        """CPU of the first pid passed in (the server), in cores."""
        return self.per_pid.get(self.pids[1], 0.0) if len(self.pids) > 1 else 0.0

    @property
    def other_cores(self) -> float:
        return max(0.0, self.machine_cores - self.own_cores)

    def row(self, label: str = "run") -> Row:
        return info(
            f"CPU of other processes during {label}",
            self.other_cores,
            "cores",
            f"of {os.cpu_count()}; server used {self.server_cores:.2f}, bench client "
            f"{self.own_cores - self.server_cores:.2f}; > 0.2 others = noisy numbers",
        )


# --- profiling (optional: py-spy in the venv) ---------------------------------------------


class PySpy:
    """``py-spy record`` on the server while a phase runs; summarises self and total time."""

    def __init__(self, pid: int, label: str, *, rate: int = 250) -> None:
        self.pid = pid
        self.path = RAW_DIR / f"{label}.pyspy.txt"
        self.label = label
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return PY_SPY.exists()

    def __enter__(self) -> PySpy:
        RAW_DIR.mkdir(parents=True, exist_ok=True)
        argv = [str(PY_SPY), "record", "--pid", str(self.pid), "--rate", str(self.rate)]
        argv += ["--format", "raw", "--output", str(self.path), "--nonblocking", "--threads"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attach before the phase starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def summary(self, top: int = 12) -> dict[str, list[tuple[str, float]]]:
        """Top functions by self and by inclusive share of samples (all threads, idle excluded)."""
        if not self.path.exists():
            return {"self": [], "total": []}
        self_counts: dict[str, int] = {}
        total_counts: dict[str, int] = {}
        samples = 0
        for line in self.path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if f and not f.startswith("thread (")]
            frames = [f for f in frames if not f.startswith("process ")]
            if not frames:
                continue
            samples += count
            leaf = frames[-1]
            self_counts[leaf] = self_counts.get(leaf, 0) + count
            for frame in set(frames):
                total_counts[frame] = total_counts.get(frame, 0) + count

        def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
            best = sorted(counts.items(), key=lambda item: -item[1])[:top]
            return [(name, round(100 * n / max(samples, 1), 1)) for name, n in best]

        return {"self": ranked(self_counts), "total": ranked(total_counts)}

    def print_summary(self, top: int = 12) -> dict[str, list[tuple[str, float]]]:
        summary = self.summary(top)
        print(f"\npy-spy ({self.label}): % of non-idle samples, raw stacks in {self.path}")
        for kind in ("self", "total"):
            print(f"  by {kind} time:")
            for name, pct in summary[kind]:
                print(f"    {pct:5.1f}%  {name}")
        return summary


# --- statistics and reporting -------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def dist_ms(seconds: list[float]) -> dict[str, float]:
    """n, p50, p90, p95, p99, max and mean of a list of durations, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50": round(pct(ms, 50), 2),
        "p90": round(pct(ms, 90), 2),
        "p95": round(pct(ms, 95), 2),
        "p99": round(pct(ms, 99), 2),
        "max": round(max(ms), 2) if ms else float("nan"),
        "mean": round(statistics.fmean(ms), 2) if ms else float("nan"),
    }


MAX_POINTS = 201


def distribution(
    title: str,
    series: dict[str, list[float]],
    unit: str = "ms",
    *,
    goal: float | None = None,
    goal_quantile: float = 99,
    kind: str = "cdf",
) -> dict[str, Any]:
    """One chart's worth of samples for the report: ``series`` label -> values in ``unit``.

    A series with more than MAX_POINTS values keeps MAX_POINTS evenly spaced quantiles (min
    and max included), enough for a CDF and small enough to commit; ``n`` stays the count.
    ``goal`` is the limit the ``goal_quantile``-th percentile should stay under, if any.
    ``kind`` is how bench/report.py draws it: ``cdf`` or ``histogram``.
    """
    compact = []
    for label, values in series.items():
        ordered = sorted(values)
        if len(ordered) > MAX_POINTS:
            ordered = [pct(ordered, 100 * i / (MAX_POINTS - 1)) for i in range(MAX_POINTS)]
        compact.append(
            {
                "label": label,
                "n": len(values),
                "quantiles": len(values) > MAX_POINTS,
                "values": [round(v, 3) for v in ordered],
            }
        )
    return {
        "title": title,
        "kind": kind,
        "unit": unit,
        "goal": goal,
        "goal_quantile": goal_quantile if goal is not None else None,
        "series": compact,
    }


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


@dataclass
class Row:
    """One line of the results table: what, the number, the goal, and whether it is met."""

    metric: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""


def goal_le(metric: str, value: float, limit: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, f"<= {limit:g} {unit}", value <= limit, note)


def goal_ge(metric: str, value: float, limit: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, f">= {limit:g} {unit}", value >= limit, note)


def info(metric: str, value: float, unit: str, note: str = "") -> Row:
    return Row(metric, value, unit, "", None, note)


def ratio(metric: str, numerator: float, denominator: float, note: str = "") -> Row:
    """A ratio of two figures from the same run (unit ``x``): it holds up on a noisy machine
    better than either figure alone, since both saw the same load."""
    value = numerator / denominator if denominator else float("nan")
    return info(metric, value, "x", note)


def print_table(title: str, rows: list[Row]) -> None:
    header = ("metric", "measured", "goal", "met", "note")
    cells = [
        (
            r.metric,
            f"{r.value:,.2f} {r.unit}",
            r.goal,
            "" if r.met is None else ("yes" if r.met else "NO"),
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n== {title} ==")
    print(line.format(*header).rstrip())
    print(line.format(*("-" * w for w in widths)).rstrip())
    for c in cells:
        print(line.format(*c).rstrip())


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model and count, RAM, kernel, Python."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor(),
        "ram_mib": int((_proc_field("/proc/meminfo", "MemTotal") or "0").split()[0]) // 1024,
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def _proc_field(path: str, key: str) -> str:
    """The value of the first ``key: value`` line of a /proc file; "" if there is none."""
    try:
        with open(path) as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:  # not Linux: the description just lacks the field
        pass
    return ""


def write_result(
    name: str,
    rows: list[Row],
    extra: dict[str, Any],
    distributions: list[dict[str, Any]] | None = None,
) -> Path:
    """One JSON line with every row, the samples for charts (``distribution()``) and the
    script's other numbers: bench/results/raw/<name>.json."""
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "bench": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "rows": [
            {
                "metric": r.metric,
                "value": r.value,
                "unit": r.unit,
                "goal": r.goal,
                "met": r.met,
                "note": r.note,
            }
            for r in rows
        ],
        "distributions": distributions or [],
        **extra,
    }
    path = RAW_DIR / f"{name}.json"
    path.write_text(json.dumps(record, default=str) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


_STARTED = time.perf_counter()


def step(message: str) -> None:
    """A progress line on stderr, so a slow phase shows where the time goes."""
    print(f"[{time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def option(flag: str) -> str | None:
    """The value after ``flag`` on the command line, or None."""
    args = sys.argv[1:]
    if flag in args and args.index(flag) + 1 < len(args):
        return args[args.index(flag) + 1]
    return None


def sqlite_sync_mode() -> str:
    """``--sqlite-synchronous MODE`` on the command line (default FULL, the server's default).

    NORMAL drops the fsync from each WAL commit: comparing the two isolates fsync costs.
    """
    return (option("--sqlite-synchronous") or "FULL").upper()


def sqlite_sync_env() -> dict[str, str]:
    mode = sqlite_sync_mode()
    return {} if mode == "FULL" else {"CAMVAULT_SQLITE_SYNCHRONOUS": mode}


def result_name(name: str) -> str:
    """``name``, or ``name-normal`` etc. when run with a non-default SQLite mode."""
    mode = sqlite_sync_mode()
    return name if mode == "FULL" else f"{name}-{mode.lower()}"


def wants_profile() -> bool:
    """``--profile`` on the command line: record the server with py-spy during key phases."""
    return "--profile" in sys.argv[1:]
