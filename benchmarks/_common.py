"""Shared helpers of the benchmark scripts: machine facts and summary statistics.

Not a benchmark itself. Each ``bench_*.py`` prints :func:`machine_facts` first, so a figure is
never read without the machine it was measured on.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
from collections.abc import Sequence

import psutil


def machine_facts(title: str) -> None:
    """Print what the figures depend on: CPUs, Python, OS, the date."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    freq = psutil.cpu_freq()
    print(f"== {title}")
    print(f"date:    {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"cpu:     {os.cpu_count()} logical CPUs ({affinity} usable)"
        + (f", {freq.current:.0f} MHz" if freq and freq.current else "")
        + f", {platform.processor() or platform.machine()}"
    )
    print(f"memory:  {psutil.virtual_memory().total / 2**30:.1f} GiB")
    print(f"python:  {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"os:      {platform.system()} {platform.release()}")
    print(f"load:    {load()}")
    print()


def load() -> str:
    """The 1/5/15-minute load average: other work on the machine skews every figure."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min load average)"


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> str:
    """Median / p95 / max of durations in seconds, shown in milliseconds."""
    return (
        f"median {statistics.median(values) * 1e3:7.2f} ms  "
        f"p95 {pct(values, 95) * 1e3:7.2f} ms  "
        f"max {max(values) * 1e3:7.2f} ms"
    )


def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"
