"""Benchmark: the metrics endpoint — scrape size and scrape time by fleet size.

Run: ``python benchmarks/bench_metrics.py [--scrapes 200]``

For fleets of 2 and 100 nodes (TP=2 pairs with a Kasa plug each, as in ``bench_policy.py``),
in the *trouble* state (a quarter wedged, a quarter of the endpoints failing) so the failure
counters have series: the daemon's :class:`~watchdog.service.metrics_server.MetricsServer` serves an
engine stand-in holding that fleet state and config on 127.0.0.1, with every configured
counter series primed and every probe kind's histogram observed. Each of ``--scrapes``
scrapes is a real HTTP GET of ``/metrics`` (httpx, a fresh connection each time, as
Prometheus does not keep one across its timeout): its wall time (p50, p95, max), the body
size, and, measured apart in this process, the CPU time of rendering one exposition
(``generate_latest``), which the daemon spends per scrape in a worker thread.

Then, live (skip with ``--no-live``): 1 and 50 simulated TP=2 clusters — 2 and 100 nodes,
each with its sshd stand-in and Kasa plug emulator, one fake vLLM per pair — run in this
process on 127.0.0.1, watched by the real ``cluster-watchdog run`` (a child process, dry run:
plugs are read, never switched; the default intervals: ssh and health every 30 s, models
every minute, tool call and plug validation every 5 min) with ``metrics.listen`` set. Once
every node is healthy and 40 s more have passed (the start-up burst: every job runs at once
at start), ``--live-scrapes`` scrapes one second apart: body size, wall time, the daemon's
CPU seconds over the scraping window against an equal window without scrapes just before,
and the daemon's own ``event_loop_lag_seconds`` (max seen).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from _common import kib, load, machine_facts, pct
from bench_policy import T0, make_config, trouble_fleet
from prometheus_client import generate_latest

from watchdog.config import Config
from watchdog.core.evidence import FleetState
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.service.metrics_server import MetricsServer, channel_names
from watchdog.sim.cluster import SimCluster
from watchdog.sim.cluster_config import config_clusters
from watchdog.sim.sim_node import SimNodeSpec
from watchdog.telemetry import exposition, metrics

SIZES = (2, 100)
SETTLE = 40.0  # seconds after every node is healthy before the live windows


class EngineStandIn:
    """What the collector reads from the engine: config, fleet state, last tick, clock."""

    def __init__(self, cfg: Config, fleet: FleetState) -> None:
        self.cfg = cfg
        self.state = fleet
        self.last_tick = T0
        self.clock: Callable[[], float] = lambda: T0 + 0.5


def fill_counters(cfg: Config) -> None:
    metrics.enable()  # as the daemon does when metrics.listen is set
    exposition.prime(cfg, channel_names(cfg) or ["on-call"])
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


# --------------------------------------------------------------------------- live
def live_config(sims: list[SimCluster], state: Path, port: int) -> dict[str, Any]:
    """The simulated clusters at the product's default intervals, dry run, metrics on."""
    return {
        "watchdog": {"state_dir": str(state), "dry_run": True, "interface": "lo"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "clusters": [c for sim in sims for c in config_clusters(sim)],
    }


def _value(text: str, prefix: str) -> float:
    lines = text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


async def live(nodes: int, scrapes: int) -> None:
    pairs = nodes // 2
    sims = [
        SimCluster([SimNodeSpec(f"n{2 * i:03d}"), SimNodeSpec(f"n{2 * i + 1:03d}")], name=f"c{i}")
        for i in range(pairs)
    ]
    await asyncio.gather(*(sim.start() for sim in sims))
    work = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cfg_path = work / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(live_config(sims, work / "state", port)))
    with (work / "daemon.log").open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - fork/exec only
            [sys.executable, "-m", "watchdog", "run", "-c", str(cfg_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    healthy = 'cluster_watchdog_node_class{class="healthy"'
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (work / "daemon.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the nodes never all became healthy"
                try:
                    text = (await client.get(url)).text
                except httpx.HTTPError:
                    text = ""
                if _value(text, healthy) == nodes:
                    break
                if "--verbose" in sys.argv:
                    print(
                        f"  healthy {_value(text, healthy):.0f}/{nodes}; daemon CPU "
                        f"{psutil.Process(proc.pid).cpu_percent(0.5):.0f} %, this process "
                        f"{psutil.Process().cpu_percent(0.5):.0f} %"
                    )
                await asyncio.sleep(1)
            await asyncio.sleep(SETTLE)  # past the start-up burst of every job at once
            ps = psutil.Process(proc.pid)
            window = float(scrapes)
            quiet_start = sum(ps.cpu_times()[:2])
            await asyncio.sleep(window)
            quiet = sum(ps.cpu_times()[:2]) - quiet_start
            walls, lags, size = [], [], 0
            busy_start = sum(ps.cpu_times()[:2])
            for _ in range(scrapes):
                start = time.perf_counter()
                r = await client.get(url, headers={"Connection": "close"})
                walls.append(time.perf_counter() - start)
                size = len(r.content)
                lags.append(_value(r.text, "cluster_watchdog_event_loop_lag_seconds "))
                await asyncio.sleep(max(0.0, 1.0 - walls[-1]))
            busy = sum(ps.cpu_times()[:2]) - busy_start
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 60)
        await asyncio.gather(*(sim.stop() for sim in sims))
    print(
        f"{nodes:4d} nodes live  body {kib(size):>10}  scrape wall p50 "
        f"{pct(walls, 50) * 1e3:6.2f} ms  p95 {pct(walls, 95) * 1e3:6.2f} ms  "
        f"max {max(walls) * 1e3:6.2f} ms\n"
        f"                daemon CPU: {quiet / window * 100:5.1f} % of a CPU without scrapes, "
        f"{busy / window * 100:5.1f} % with one scrape a second "
        f"(~{max(0.0, busy - quiet) / scrapes * 1e3:.1f} ms per scrape); "
        f"event-loop lag max {max(lags) * 1e3:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrapes", type=int, default=200)
    ap.add_argument("--live-scrapes", type=int, default=30)
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="progress while the nodes settle")
    args = ap.parse_args()
    machine_facts("bench_metrics: /metrics scrape size and time")
    # Counters are process-wide: measure the small fleet first, before the big one primes
    # its 100 nodes' series (its figures then include the 2-node fleet's few series).
    print("in-process, the daemon's server over a stand-in engine (trouble state):")
    for n in SIZES:
        asyncio.run(measure(n, args.scrapes))
    if not args.no_live:
        print("\nlive, the real daemon watching the simulated cluster:")
        for n in SIZES:
            asyncio.run(live(n, args.live_scrapes))
    print(f"\nload at end: {load()}")


if __name__ == "__main__":
    main()
