"""Benchmark: what each import of the ``run`` path costs, in resident memory and time.

Run: ``python benchmarks/bench_imports.py [--runs 3]``

Each measurement is a fresh interpreter (``sys.executable -c``) that imports one thing and
reports its own peak RSS (``VmHWM`` from ``/proc/self/status``) and the wall time of the
import. Two tables:

- **alone**: each third-party library the daemon loads, imported by itself, minus a bare
  interpreter — what it would cost if nothing else were loaded;
- **cumulative**: the ``run`` path in the order the daemon loads it, each row adding to the
  previous one — what each step adds;
- **later**: what the daemon loads only when it needs it, each on top of the whole ``run``
  path: the engine-progress probe's fallback parser, the HTTP client at the first page, the
  metrics endpoint with ``metrics.listen``, python-kasa for a KLAP/AES/Tapo plug.

The idle daemon's own RSS is measured by ``bench_fleet.py --nodes 2``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from _common import machine_facts

PROBE = """
import time
t = time.perf_counter()
{stmt}
took = time.perf_counter() - t
status = open("/proc/self/status").read()
hwm = int(status.split("VmHWM:")[1].split()[0])
print(hwm, took)
"""

LIBRARIES = [
    ("pydantic", "import pydantic"),
    ("PyYAML", "import yaml"),
    ("psutil", "import psutil"),
    ("immutables", "import immutables"),
    ("prometheus-client", "import prometheus_client"),
    ("httpx", "import httpx"),
    ("aiohttp", "import aiohttp"),
    ("python-kasa (aiohttp, cryptography)", "import kasa"),
]

RUN_PATH = [
    ("interpreter", "pass"),
    ("+ watchdog.config (pydantic, PyYAML)", "import watchdog.config"),
    (
        "+ watchdog.core (policy, paging, immutables)",
        "import watchdog.core.policy, watchdog.core.paging",
    ),
    ("+ watchdog.state (store)", "import watchdog.state.store"),
    ("+ watchdog.probes (ssh, HTTP/1.1)", "import watchdog.probes"),
    ("+ watchdog.alerts (no httpx until a page)", "import watchdog.alerts.dispatch"),
    ("+ watchdog.plugs (Kasa XOR natively)", "import watchdog.plugs.factory"),
    ("+ the engine (psutil)", "import watchdog.engine.engine"),
    ("+ the daemon (journald, sd_notify)", "import watchdog.service.daemon"),
]

LATER = [
    (
        "+ the progress probe's fallback parser (prometheus-client), for a page outside the "
        "strict grammar",
        "import prometheus_client.parser",
    ),
    (
        "+ the first page or heartbeat (httpx client)",
        "from watchdog.probes.http import make_client\nmake_client()",
    ),
    (
        "+ metrics.listen (aiohttp web, prometheus-client)",
        "import watchdog.service.metrics_server\n"
        "from watchdog.telemetry import metrics\nmetrics.enable()",
    ),
    (
        "+ a KLAP, AES or Tapo plug (python-kasa)",
        "import watchdog.plugs.kasa",
    ),
]


def measure(stmt: str, runs: int) -> tuple[float, float]:
    """Median peak RSS (MiB) and import time (ms) of ``stmt`` in a fresh interpreter."""
    rss, took = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rss.append(int(out[0]) / 1024)
        took.append(float(out[1]) * 1000)
    return statistics.median(rss), statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    machine_facts("imports: what the run path loads")
    base, _ = measure("pass", args.runs)
    print(f"\nbare interpreter: {base:.1f} MiB\n")
    print(f"{'library, imported alone':40} {'RSS added':>10} {'import':>9}")
    for name, stmt in LIBRARIES:
        rss, took = measure(stmt, args.runs)
        print(f"{name:40} {rss - base:7.1f} MiB {took:6.0f} ms")
    print(f"\n{'the run path, cumulative':50} {'RSS':>9} {'added':>9} {'import':>9}")
    stmts: list[str] = []
    last = None
    for name, stmt in RUN_PATH:
        stmts.append(stmt)
        rss, took = measure("\n".join(stmts), args.runs)
        added = 0.0 if last is None else rss - last
        print(f"{name:50} {rss:5.1f} MiB {added:5.1f} MiB {took:6.0f} ms")
        last = rss
    run_path = "\n".join(stmts)
    assert last is not None
    print(f"\n{'loaded later, each on top of the run path':50} {'RSS':>9} {'added':>9}")
    for name, stmt in LATER:
        rss, took = measure(f"{run_path}\n{stmt}", args.runs)
        print(f"{name:50} {rss:5.1f} MiB {rss - last:5.1f} MiB {took:6.0f} ms")


if __name__ == "__main__":
    main()
