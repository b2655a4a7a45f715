"""Benchmark: the pure cost of one probe result, from folding it in to the persisted records.

Run: ``python benchmarks/bench_results.py [--quick]``

What the daemon does with each probe result, less the I/O: ``observe_node`` /
``observe_endpoint`` (fold it into the evidence, replace the node's or cluster's record),
``Scope.evaluate`` (judge only what it can change; a settled healthy node is not judged), and
``Saves.save`` (check the records of the nodes judged for a durable change) with a store that
only counts its writes (what a write costs is ``bench_store.py``'s). Fleets of 2, 100 and
1000 nodes as TP=2 pairs (the config of ``bench_policy.py``), settled and healthy; three
kinds of result:

- ``ssh ok``: a passing banner probe of a healthy node (the common case);
- ``endpoint ok``: a passing ``/health`` of a cluster;
- ``ssh hung``: a failing banner probe of one of the 10 % of nodes that hang (suspect, and
  judged at each result), the healthy results in between not counted.

Figures are thread CPU time per result, the best of several rounds (the machine is shared:
the best round is the one least disturbed), so they compare code, not machines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Collection
from pathlib import Path

from _common import load, machine_facts
from bench_policy import T0, healthy_fleet, make_config, result

from watchdog.core.evidence import FleetState, observe_endpoint, observe_node
from watchdog.core.incremental import Scope, members_index
from watchdog.core.model import FailureKind, ProbeKind
from watchdog.engine.context import Context
from watchdog.engine.saves import Saves
from watchdog.state.persist import to_persisted
from watchdog.state.store import PersistedState, Store

SIZES = (2, 100, 1000)


class _Counted(Store):
    """A store that counts its writes instead of making them."""

    def __init__(self) -> None:
        self.writes = 0

    def save(self, state: PersistedState) -> None:
        self.writes += 1


class _Alerts:
    def submit(self, event: object) -> None: ...
    def tick(self) -> None: ...


class Run:
    """One daemon's pure state: the fleet, its incremental scope and its persisted records."""

    def __init__(self, size: int) -> None:
        self.cfg = make_config(size)
        self.fleet = healthy_fleet(self.cfg)
        self.scope = Scope(members_index(self.fleet))
        self.now = T0 + 1
        decision, _ = self.scope.evaluate(self.fleet, None, cfg=self.cfg, now=self.now)
        self.fleet = decision.fleet
        ctx = Context(self.cfg, {}, _Alerts(), Path(), lambda: self.now)
        self.saves = Saves(_Counted(), ctx, lambda: self.fleet)
        self.saves.persisted = to_persisted(self.fleet, PersistedState())
        self.saves.track(())
        self.names = list(self.fleet.nodes)
        self.clusters = list(self.fleet.clusters)
        self.hung = self.names[::10] if size >= 10 else self.names[:1]
        for i in range(len(self.names)):  # a first passing probe of each node settles it
            self.ssh_ok(i)

    def decide(self, fleet: FleetState, changed: Collection[str]) -> None:
        decision, only = self.scope.evaluate(fleet, changed, cfg=self.cfg, now=self.now)
        self.fleet = decision.fleet
        self.saves.track(only)
        self.saves.save(now=True)  # the daemon coalesces writes: here a write costs nothing

    def ssh_ok(self, i: int) -> None:
        self.now += 0.01
        name = self.names[i % len(self.names)]
        self.decide(observe_node(self.fleet, name, result(ProbeKind.SSH), self.now), (name,))

    def endpoint_ok(self, i: int) -> None:
        self.now += 0.01
        cluster = self.clusters[i % len(self.clusters)]
        fleet = observe_endpoint(self.fleet, cluster, result(ProbeKind.HEALTH), self.now)
        self.decide(fleet, self.scope.members[cluster])

    def ssh_hung(self, i: int) -> None:
        self.now += 0.01
        name = self.hung[i % len(self.hung)]
        failed = result(ProbeKind.SSH, FailureKind.NO_BANNER)
        self.decide(observe_node(self.fleet, name, failed, self.now), (name,))


def per_result(step: Callable[[int], None], count: int, rounds: int) -> float:
    """Best per-result thread CPU time over ``rounds`` runs of ``count`` results (seconds)."""
    best = float("inf")
    i = 0
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(count):
            step(i)
            i += 1
        best = min(best, (time.thread_time() - start) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    count, rounds = (1000, 3) if args.quick else (2000, 7)
    machine_facts("bench_results: one probe result, observe + evaluate + records")
    print(f"{'nodes':>5} {'ssh ok':>9} {'endpoint ok':>12} {'ssh hung':>9}   (µs per result)")
    for size in SIZES:
        run = Run(size)
        figures = [
            per_result(step, count, rounds) for step in (run.ssh_ok, run.endpoint_ok, run.ssh_hung)
        ]
        ok, endpoint, hung = (f * 1e6 for f in figures)
        print(f"{size:>5} {ok:>9.1f} {endpoint:>12.1f} {hung:>9.1f}")
    print(f"\nload at the end: {load()}")


if __name__ == "__main__":
    main()
