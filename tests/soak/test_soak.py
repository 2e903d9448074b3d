"""The soak driver (``make soak``) for 60 s: 20 users over real HTTP and WebSockets against a
real ``camvault serve``; it exits 0 only if every invariant held the whole time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.mark.slow
def test_twenty_users_for_a_minute_break_no_invariant() -> None:
    done = subprocess.run(
        [sys.executable, str(DRIVER), "--seconds", "60", "--users", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    said = f"{done.stdout}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, said
    assert "soak: passed" in done.stdout, said
    assert "invariant violations: 0" in done.stdout, said
