"""Benchmark: the metrics endpoint — scrape size and scrape time by fleet size.

Run: ``python benchmarks/bench_metrics.py [--scrapes 200]``

For fleets of 2 and 100 nodes (TP=2 pairs with a Kasa plug each, as in ``bench_policy.py``),
in the *trouble* state (a quarter wedged, a quarter of the endpoints failing) so the failure
counters have series: the daemon's :class:`~watchdog.metrics_server.MetricsServer` serves an
engine stand-in holding that fleet state and config on 127.0.0.1, with every configured
counter series primed and every probe kind's histogram observed. Each of ``--scrapes``
scrapes is a real HTTP GET of ``/metrics`` (httpx, a fresh connection each time, as
Prometheus does not keep one across its timeout): its wall time (p50, p95, max), the body
size, and, measured apart in this process, the CPU time of rendering one exposition
(``generate_latest``), which is what the daemon's event loop spends per scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable

import httpx
from _common import kib, load, machine_facts, pct
from bench_policy import T0, make_config, trouble_fleet
from prometheus_client import generate_latest

from watchdog import metrics
from watchdog.config import Config
from watchdog.evidence import FleetState
from watchdog.metrics_server import MetricsServer, channel_names
from watchdog.model import FailureKind, ProbeKind, ProbeResult

SIZES = (2, 100)


class EngineStandIn:
    """What the collector reads from the engine: config, fleet state, last tick, clock."""

    def __init__(self, cfg: Config, fleet: FleetState) -> None:
        self.cfg = cfg
        self.state = fleet
        self.last_tick = T0
        self.clock: Callable[[], float] = lambda: T0 + 0.5


def fill_counters(cfg: Config) -> None:
    metrics.prime(cfg, channel_names(cfg) or ["on-call"])
    for probe in ProbeKind:
        for i in range(50):
            failure = FailureKind.TIMEOUT if i % 10 == 0 else None
            metrics.probe_observed(ProbeResult(probe, "bench", failure, 0.001 * (i + 1)))


async def measure(nodes: int, scrapes: int) -> None:
    cfg = make_config(nodes)
    fill_counters(cfg)
    server = MetricsServer(EngineStandIn(cfg, trouble_fleet(cfg)), "127.0.0.1", 0)
    await server.start()
    try:
        walls: list[float] = []
        size = 0
        async with httpx.AsyncClient() as client:
            for _ in range(scrapes):
                start = time.perf_counter()
                r = await client.get(f"{server.url}/metrics", headers={"Connection": "close"})
                walls.append(time.perf_counter() - start)
                assert r.status_code == 200, r.status_code
                size = len(r.content)
                series = sum(1 for line in r.text.splitlines() if line and line[0] != "#")
        gc.collect()
        cpu: list[float] = []
        for _ in range(scrapes):
            start = time.thread_time()
            generate_latest(server.registry)
            cpu.append(time.thread_time() - start)
    finally:
        await server.stop()
    print(
        f"{nodes:4d} nodes  {series:6d} series  body {kib(size):>10}   "
        f"scrape wall p50 {pct(walls, 50) * 1e3:6.2f} ms  p95 {pct(walls, 95) * 1e3:6.2f} ms  "
        f"max {max(walls) * 1e3:6.2f} ms   render CPU p50 {pct(cpu, 50) * 1e3:6.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrapes", type=int, default=200)
    args = ap.parse_args()
    machine_facts("bench_metrics: /metrics scrape size and time")
    # Counters are process-wide: measure the small fleet first, before the big one primes
    # its 100 nodes' series (its figures then include the 2-node fleet's few series).
    for n in SIZES:
        asyncio.run(measure(n, args.scrapes))
    print(f"\nload at end: {load()}")


if __name__ == "__main__":
    main()
