"""The fleet benchmark runs: a two-node fleet, a few seconds, the real daemon against it.

A smoke test of ``benchmarks/bench_fleet.py`` only; no figure is asserted (speed is measured
in ``benchmarks/``, never in timed tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_fleet.py"


def test_the_fleet_benchmark_runs_the_daemon_against_two_simulated_nodes() -> None:
    args = ["--nodes", "2", "--hung", "50", "--warmup", "3", "--hang-at", "1", "--window", "21"]
    run = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "nodes 2, hung 1 (50 %)" in out
    # The healthy node was probed in the window, as its own simulated sshd saw it.
    assert "1/1 nodes >= 99 %" in out, out
    assert "exit code 0" in out
    assert "| 2 | 50 % |" in out
