"""Benchmark: ``watchdog.core.policy.evaluate`` latency and allocation by fleet size.

Run: ``python benchmarks/bench_policy.py [--quick]``

The daemon calls ``evaluate`` after every probe result and on every tick, so its cost per call
times the call rate is the policy's whole CPU bill. Fleets of 2, 16, 64 and 256 nodes, as TP=2
pairs (one cluster, one endpoint per pair), each node with a Kasa plug; one witness. Two
states per size:

- ``healthy``: every node armed and healthy, every endpoint serving (the steady state);
- ``trouble``: a quarter of the nodes wedged (count and duration met: one is cycled, the rest
  wait behind ``max_in_flight``), a quarter of the endpoints failing (degraded) — the gate and
  alert paths run too.

Timing (``time.perf_counter_ns`` per call, tracemalloc off) and allocation (tracemalloc on,
separate pass) are measured apart, because tracing slows every allocation down several-fold.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable

import yaml
from _common import kib, load, machine_facts, pct

from watchdog.config import Config, parse_config
from watchdog.core.evidence import (
    FleetState,
    initial_fleet,
    observe_endpoint,
    observe_link,
    observe_node,
    observe_plug,
    observe_witness,
)
from watchdog.core.model import FailureKind, PlugReading, ProbeKind, ProbeResult
from watchdog.core.policy import evaluate

SIZES = (2, 16, 64, 256)
T0 = 1_000_000.0
ON = PlugReading(reachable=True, is_on=True, watts=90.0)
ENDPOINT_PROBES = (ProbeKind.HEALTH, ProbeKind.MODELS, ProbeKind.TOOL_CALL)


def make_config(nodes: int) -> Config:
    """``nodes`` nodes as TP=2 pairs, default policy and intervals; addresses never contacted."""
    clusters = []
    for c in range(nodes // 2):
        members = []
        for k in range(2):
            i = 2 * c + k
            members.append(
                {
                    "name": f"n{i:03d}",
                    "host": f"127.1.{i // 200}.{i % 200 + 1}",
                    "plug": {"type": "kasa", "host": f"127.2.{i // 200}.{i % 200 + 1}"},
                }
            )
        url = f"http://127.1.{c // 200}.{c % 200 + 1}:8000"
        clusters.append(
            {
                "name": f"c{c:03d}",
                "endpoint": {"base_url": url, "model": "m"},
                "nodes": members,
            }
        )
    doc = {"watchdog": {"witnesses": [{"host": "127.0.0.9", "port": 53}]}, "clusters": clusters}
    return parse_config(yaml.safe_dump(doc), env={})


def result(probe: ProbeKind, failure: FailureKind | None = None) -> ProbeResult:
    return ProbeResult(probe, "bench", failure, 0.01, detail="d", hint="h")


def healthy_fleet(cfg: Config) -> FleetState:
    members = {n.name: c.name for c, n in cfg.nodes()}
    f = initial_fleet(members, T0)
    f = observe_link(f, True)
    f = observe_witness(f, result(ProbeKind.WITNESS), T0)
    for name in members:
        f = observe_node(f, name, result(ProbeKind.SSH), T0)
        f = observe_plug(f, name, ON, T0)
    for cluster in cfg.clusters:
        for probe in ENDPOINT_PROBES:
            f = observe_endpoint(f, cluster.name, result(probe), T0)
    return evaluate(f, T0, cfg).fleet  # settled: classes and open alerts as the daemon has them


def trouble_fleet(cfg: Config) -> FleetState:
    f = healthy_fleet(cfg)
    names = sorted(f.nodes)
    p = cfg.policy
    fail_times = [T0 + 1 + k * p.failure_duration / 2 for k in range(p.failure_threshold)]
    for name in names[::4]:  # a quarter of the nodes: sshd silent, thresholds met
        for t in fail_times:
            f = observe_node(f, name, result(ProbeKind.SSH, FailureKind.NO_BANNER), t)
    for cluster in cfg.clusters[1::4]:  # a quarter of the endpoints: hanging
        for t in fail_times:
            f = observe_endpoint(f, cluster.name, result(ProbeKind.HEALTH, FailureKind.TIMEOUT), t)
    return f


def calls_per_second_at_defaults(cfg: Config) -> float:
    """How often the daemon calls evaluate with this config (one per job run and per tick)."""
    rate = 1.0 / max(0.2, min(1.0, cfg.policy.confirm_interval / 2))  # the tick job
    for _, node in cfg.nodes():
        rate += 1 / node.ssh.interval + 1 / node.plug.validate_interval
    for cluster in cfg.clusters:
        ep = cluster.endpoint
        rate += sum(1 / t.interval for t in (ep.health, ep.models, ep.tool_call) if t.enabled)
    if cfg.watchdog.witnesses:
        rate += 1 / min(n.ssh.interval for _, n in cfg.nodes())
    return rate


def time_calls(call: Callable[[], object], budget_s: float) -> tuple[list[float], list[float]]:
    """Per-call (wall, CPU) durations in seconds of as many calls as fit in ``budget_s``.

    CPU is this thread's CPU time (``thread_time_ns``): unlike wall time it does not grow
    while other processes hold the CPU, so it is the figure to trust on a busy machine.
    """
    for _ in range(20):  # warm caches and the allocator
        call()
    start = time.thread_time()
    call()
    estimate = max(time.thread_time() - start, 1e-7)
    n = max(200, min(50_000, int(budget_s / estimate)))
    wall, cpu = [], []
    wclock, cclock = time.perf_counter_ns, time.thread_time_ns
    for _ in range(n):
        w, c = wclock(), cclock()
        call()
        cpu.append((cclock() - c) / 1e9)
        wall.append((wclock() - w) / 1e9)
    return wall, cpu


def allocation(call: Callable[[], object], n: int = 50) -> tuple[float, float]:
    """Median (transient peak, retained) bytes per call above the pre-call baseline."""
    peaks, kept = [], []
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            call()
        for _ in range(n):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            out = call()
            current, peak = tracemalloc.get_traced_memory()
            peaks.append(peak - before)
            kept.append(current - before)
            del out
    finally:
        tracemalloc.stop()
    return statistics.median(peaks), statistics.median(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    args = parser.parse_args()
    budget = 0.5 if args.quick else 2.0
    machine_facts("bench_policy: watchdog.core.policy.evaluate")
    header = (
        f"{'nodes':>5} {'state':<8} {'calls':>6} {'cpu p50':>9} {'cpu mean':>9} {'cpu p95':>9} "
        f"{'wall p50':>9} {'wall p95':>9} {'evals/s':>9} {'peak/call':>11} {'kept/call':>11} "
        f"{'calls/s':>8} {'CPU@dflt':>9}"
    )
    print(header)
    print("-" * len(header))
    for size in SIZES:
        cfg = make_config(size)
        for label, fleet in (("healthy", healthy_fleet(cfg)), ("trouble", trouble_fleet(cfg))):
            now = T0 + 1 + cfg.policy.failure_duration + 1

            def call(fleet: FleetState = fleet, now: float = now, cfg: Config = cfg) -> object:
                return evaluate(fleet, now, cfg)

            wall, cpu = time_calls(call, budget)
            peak, kept = allocation(call)
            mean = statistics.fmean(cpu)
            rate = calls_per_second_at_defaults(cfg)
            print(
                f"{size:>5} {label:<8} {len(cpu):>6} {pct(cpu, 50) * 1e6:>9.1f} "
                f"{mean * 1e6:>9.1f} {pct(cpu, 95) * 1e6:>9.1f} {pct(wall, 50) * 1e6:>9.1f} "
                f"{pct(wall, 95) * 1e6:>9.1f} {1 / mean:>9,.0f} {kib(peak):>11} {kib(kept):>11} "
                f"{rate:>8.2f} {rate * mean * 100:>8.3f}%"
            )
    print()
    print("peak/call: tracemalloc peak above the pre-call baseline (working memory of one call)")
    print("kept/call: bytes still held by the returned Decision (the new fleet state)")
    print("cpu/wall: µs per evaluate call, thread CPU time / wall time (perf_counter)")
    print("evals/s: 1 / cpu mean, what one core sustains")
    print("calls/s: evaluate calls per second the daemon makes at the default intervals")
    print("CPU@dflt: share of one CPU the policy takes at that rate (calls/s x cpu mean)")
    print(f"\nload at the end: {load()}")


if __name__ == "__main__":
    main()
