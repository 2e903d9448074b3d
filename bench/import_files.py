"""Folder import: 2,000 files of ~1 MB (2 GB) through the real ``camvault import`` process.

Prints the import's wall time, MB/s, files/s and the import process's peak RSS (VmRSS
sampled every 20 ms), then the same for a re-run that finds everything already there
(the resume path: hash and compare, nothing written). MB = 10**6 bytes, RSS in MiB.
No server runs: the import alone is measured. Files are 90 % .mcam (LFS) and 10 % .nc
(plain git blobs), generated in a temp dir before the clock starts. A last phase imports
one large file (1 GB; 100 MB with --quick) to show the peak RSS does not follow file size.

    .venv/bin/python bench/import_files.py [--quick]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _measure as m
import _server as b

FILE_SIZE = 1_000_000


def make_tree(root: Path, count: int) -> int:
    """``count`` files of ~1 MB in 20 folders; returns the total bytes."""
    rng = random.Random(5)
    total = 0
    nc_line = b"G1 X12.345 Y-6.789 Z-1.000 F300.\n"
    for i in range(count):
        folder = root / f"customer-{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = FILE_SIZE + rng.randrange(-50_000, 50_000)
        if i % 10 == 9:
            path = folder / f"{1_000_000 + i}_OP1.nc"
            content = (nc_line * (size // len(nc_line) + 1))[:size]
        else:
            path = folder / f"{1_000_000 + i}_A1.mcam"
            content = b.HDF5 + os.urandom(size - len(b.HDF5))
        path.write_bytes(content)
        total += size
    return total


def run_import(data: Path, tree: Path) -> dict[str, Any]:
    """One ``camvault import`` process: wall time and peak RSS."""
    argv = [str(b.CAMVAULT), "import", str(tree), "--data", str(data)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with m.RssSampler(proc.pid) as sampler:
        out, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"camvault import failed ({proc.returncode}):\n{out.decode()[-2000:]}")
    return {
        "seconds": elapsed,
        "peak_rss_mib": sampler.peak_kib / 1024,
        "summary": out.decode().strip().splitlines()[-4:],
    }


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    count = 100 if quick else 2000
    with b.temp_data_dir("import") as work:
        tree, data = work / "tree", work / "data"
        m.step(f"writing {count} files of ~1 MB")
        total = make_tree(tree, count)
        admin = subprocess.run(
            [str(b.CAMVAULT), "user", "add", "admin", "--role", "admin", "--password-stdin",
             "--data", str(data)],
            input=b.ADMIN_PASSWORD + "\n", text=True, capture_output=True, check=False,
        )  # fmt: skip
        if admin.returncode != 0:
            raise SystemExit(admin.stderr)
        subprocess.run(["sync"], check=False)
        m.wait_for_quiet()
        m.step("importing")
        with m.CpuMonitor([]) as cpu:
            first = run_import(data, tree)
        m.step("re-running (everything already there)")
        again = run_import(data, tree)
        big_size = (100 if quick else 1000) * b.MB
        big_tree = work / "big"
        big_tree.mkdir()
        with (big_tree / "9999999_BIG.mcam").open("wb") as fh:
            fh.write(b.HDF5)
            for _ in range(big_size // b.MB):
                fh.write(os.urandom(b.MB))
        m.step(f"importing one {big_size // b.MB} MB file")
        big = run_import(data, big_tree)
    mb = total / b.MB
    rows = [
        m.info("files imported", count, "files", f"{mb:,.0f} MB in total"),
        m.info("import wall time", first["seconds"], "s"),
        m.info("import throughput", mb / first["seconds"], "MB/s"),
        m.info("import rate", count / first["seconds"], "files/s", "one commit + one DB txn each"),
        m.info("import process peak RSS", first["peak_rss_mib"], "MiB", "1 MiB chunks"),
        m.info("re-run (all skipped) wall time", again["seconds"], "s", "hash + compare"),
        m.info("re-run throughput", mb / again["seconds"], "MB/s"),
        m.info("re-run peak RSS", again["peak_rss_mib"], "MiB"),
        m.info(
            f"one {big_size // b.MB} MB file: throughput", big_size / b.MB / big["seconds"], "MB/s"
        ),
        m.info(
            f"one {big_size // b.MB} MB file: peak RSS",
            big["peak_rss_mib"],
            "MiB",
            "same as for 1 MB files = memory bounded",
        ),
        cpu.row("the import"),
    ]
    m.print_table(f"import: {count} files / {mb:,.0f} MB", rows)
    m.write_result(
        "import_files",
        rows,
        {"first": first, "again": again, "big": big, "files": count, "bytes": total},
    )


if __name__ == "__main__":
    main()
