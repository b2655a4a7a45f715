"""Benchmark: saving and loading ``state.json`` for a fleet of N nodes.

Run: ``python benchmarks/bench_store.py [--nodes 1000] [--runs 50]``

The daemon saves its state after a durable change (at most every few seconds at 1000 nodes)
and loads it once at start. Four figures per size, each over ``--runs`` calls:

- ``encode``: the state to JSON text (``to_json`` + ``json.dumps``), no disk;
- ``decode``: JSON bytes back to a validated state (``json.loads`` + ``from_json``), no disk;
- ``save``: :meth:`Store.save`, with its fsyncs and rename (the disk's flush time counts);
- ``load``: :meth:`Store.load` of the file just saved.

The state sets most fields: every node has a class and a reason, one in ten has two power
cycles, one in twenty an open page, one in fifty is latched; one intent, and fleet cycles.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import machine_facts, summary_ms

from watchdog.state.store import (
    CycleIntent,
    IntentStep,
    NodeRecord,
    PersistedState,
    Store,
    from_json,
    to_json,
)

T0 = 1.7e9


def make_state(nodes: int) -> PersistedState:
    records = {
        f"node-{i:04d}": NodeRecord(
            node_class="healthy",
            since=T0 + i,
            consecutive_failures=i % 5,
            failing_since=None if i % 3 else T0,
            seen_healthy=True,
            cycles=(T0, T0 + 60.0) if i % 10 == 0 else (),
            latched=i % 50 == 0,
            latched_reason="budget spent" if i % 50 == 0 else "",
            last_failure="no_banner" if i % 7 == 0 else "",
            last_detail="TCP accepted, no banner in 5s",
            open_alerts=("wedged",) if i % 20 == 0 else (),
        )
        for i in range(nodes)
    }
    return PersistedState(
        saved_at=T0,
        nodes=records,
        intents={"node-0001": CycleIntent("node-0001", T0, IntentStep.OFF)},
        fleet_cycles=tuple((f"node-{i:04d}", T0 + i) for i in range(0, nodes, 10)),
        cluster_alerts={"c1": ("endpoint_down",)},
        fleet_alerts=("blind",),
    )


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    machine_facts(f"state.json save/load, {args.nodes} nodes, {args.runs} runs")
    state = make_state(args.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        store.save(state)
        raw = store.path.read_bytes()
        if store.load().state != state or from_json(json.loads(raw)) != state:
            raise SystemExit("the state did not load back equal")
        print(f"file:    {len(raw) / 1024:.0f} KiB")
        figures = {
            "encode": timed(
                lambda: json.dumps(to_json(state), indent=2, sort_keys=True), args.runs
            ),
            "decode": timed(lambda: from_json(json.loads(raw)), args.runs),
            "save": timed(lambda: store.save(state), args.runs),
            "load": timed(store.load, args.runs),
        }
    for name, values in figures.items():
        print(f"{name:8} {summary_ms(values)}")


if __name__ == "__main__":
    main()
