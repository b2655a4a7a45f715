"""Benchmark: the real daemon watching a simulated fleet of N nodes — CPU, RSS, punctuality.

Run: ``python benchmarks/bench_fleet.py --nodes 1000 --hung 10 [--warmup 60] [--window 120]``

One process (this one) serves N simulated nodes on 127.0.0.1 (:mod:`watchdog.sim.fleet`):
per node an sshd banner listener and a Kasa plug emulator speaking the real protocol, per
cluster of two nodes a fake vLLM. ``cluster-watchdog run`` runs as a child process in dry run
with the fleet timings: ssh banner every 10 s (timeout 5 s), ``/health`` every 10 s,
``/v1/models`` every 60 s, a tool call every 300 s, plug validation every 5 min.

``--hung`` percent of the nodes (spread evenly) answer normally at first and go silent at
``--hang-at`` seconds (default: half the warm-up): TCP accepted, no banner. They are seen
healthy first, so the whole suspect -> confirmation -> wedged -> dry-run cycle path runs.

Measured over ``--window`` seconds after ``--warmup`` seconds, from outside the daemon:

* CPU: the child's user+system CPU seconds in the window / window length (% of one core);
* RSS: the child's resident set size, sampled every 5 s (max and end of window);
* lateness over healthy nodes: for each node, the gaps between two consecutive banner
  connections the *simulated sshd* accepted, minus the configured interval (p50/p99/max);
* achieved vs configured probe rate: per healthy node, banner probes per interval over its
  span in the window; endpoint and plug requests as the simulated servers counted them;
* then SIGTERM: how long the daemon takes to exit.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from _common import load, machine_facts, pct

from watchdog.sim.fleet import FleetSim

# The daemon under cProfile with a CPU-time clock (waiting is not cost): argv[1] is the output.
_PROFILED = """
import cProfile, runpy, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "cluster-watchdog"
prof = cProfile.Profile(time.process_time)
prof.enable()
try:
    runpy.run_module("watchdog", run_name="__main__")
finally:
    prof.disable()
    prof.dump_stats(out)
"""
SSH_INTERVAL = 10.0
HEALTH_INTERVAL = 10.0
MODELS_INTERVAL = 60.0


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--hung", type=float, default=0.0, help="percent of nodes that hang")
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--window", type=float, default=120.0)
    ap.add_argument("--hang-at", type=float, default=None, help="default: warmup / 2")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--profile", metavar="FILE", help="run the daemon under cProfile into FILE")
    return ap.parse_args()


async def run(args: argparse.Namespace, work: Path) -> int:
    sim = FleetSim(args.nodes)
    await sim.start()
    cfg_path = work / "fleet.yaml"
    cfg_path.write_text(yaml.safe_dump(sim.config(str(work / "state")), sort_keys=False))
    n_hung = round(args.nodes * args.hung / 100)
    names = list(sim.nodes)
    hung = [names[i * len(names) // n_hung] for i in range(n_hung)] if n_hung else []
    healthy = [n for n in names if n not in set(hung)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    log_path = work / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220
            [
                sys.executable,
                *(["-c", _PROFILED, args.profile] if args.profile else ["-m", "watchdog"]),
                "run",
                "-c",
                str(cfg_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    child = psutil.Process(proc.pid)
    t_start = time.monotonic()
    hang_at = args.warmup / 2 if args.hang_at is None else args.hang_at
    try:
        rss_samples: list[int] = []
        await asyncio.sleep(hang_at)
        sim.hang(hung)
        await asyncio.sleep(max(0.0, args.warmup - (time.monotonic() - t_start)))
        if proc.poll() is not None:
            print(f"daemon exited early with {proc.returncode}; see {log_path}")
            return 1
        load_start = load()
        t0 = time.monotonic()
        cpu0 = child.cpu_times()
        http0 = sim.http_requests()
        plug0 = sim.plug_requests
        while time.monotonic() - t0 < args.window:
            rss_samples.append(child.memory_info().rss)
            await asyncio.sleep(min(5.0, args.window - (time.monotonic() - t0)))
        t1 = time.monotonic()
        cpu1 = child.cpu_times()
        threads = [(t.id, round(t.user_time + t.system_time, 2)) for t in child.threads()]
        rss_samples.append(child.memory_info().rss)
        http1 = sim.http_requests()
        plug1 = sim.plug_requests
        load_end = load()
        proc.send_signal(signal.SIGTERM)
        ts = time.monotonic()
        await asyncio.to_thread(proc.wait, 60)
        stop_s = time.monotonic() - ts
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await sim.stop()

    window = t1 - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / window * 100
    late: list[float] = []
    rates: list[float] = []
    unprobed = 0
    for name in healthy:
        ts_ = [t for t in sim.nodes[name].connects if t0 <= t <= t1]
        if len(ts_) < 2:
            unprobed += 1
            rates.append(0.0)
            continue
        late += [b - a - SSH_INTERVAL for a, b in itertools.pairwise(ts_)]
        rates.append((len(ts_) - 1) * SSH_INTERVAL / (ts_[-1] - ts_[0]))
    health = (http1["/health"] - http0["/health"]) / (len(sim.endpoints) * window / HEALTH_INTERVAL)
    models = (http1["/v1/models"] - http0["/v1/models"]) / (
        len(sim.endpoints) * window / MODELS_INTERVAL
    )
    text = log_path.read_text(errors="replace")
    skipped = text.count("skipped: its previous run is still going")
    print(f"nodes {args.nodes}, hung {n_hung} ({args.hung:g} %), window {window:.0f} s")
    print(f"load at window start: {load_start}")
    print(f"load at window end:   {load_end}")
    user = (cpu1.user - cpu0.user) / window * 100
    print(f"CPU      {cpu:.2f} % of one core (user {user:.2f} %, system {cpu - user:.2f} %)")
    print(f"threads  {threads}")
    print(f"RSS      max {max(rss_samples) / 2**20:.1f} MiB, end {rss_samples[-1] / 2**20:.1f} MiB")
    if late:
        print(
            f"lateness p50 {pct(late, 50) * 1e3:.0f} ms  p99 {pct(late, 99) * 1e3:.0f} ms  "
            f"max {max(late) * 1e3:.0f} ms  (mean gap {statistics.mean(late) * 1e3:+.1f} ms "
            f"vs interval, {len(late)} gaps)"
        )
    ok = sum(r >= 0.99 for r in rates)
    print(
        f"ssh rate healthy nodes: mean {statistics.mean(rates) * 100:.1f} %, "
        f"min {min(rates) * 100:.1f} % of configured; {ok}/{len(rates)} nodes >= 99 %; "
        f"{unprobed} not probed twice"
    )
    print(f"/health {health * 100:.1f} %, /v1/models {models * 100:.1f} % of configured")
    print(f"plug requests in window: {plug1 - plug0}")
    print(f"jobs that skipped a fire: {skipped}; daemon log lines: {text.count(chr(10))}")
    print(f"stop (SIGTERM -> exit): {stop_s:.2f} s, exit code {proc.returncode}")
    print(
        f"| {args.nodes} | {args.hung:g} % | {window:.0f} s | {cpu:.2f} | "
        f"{max(rss_samples) / 2**20:.0f} MiB | "
        + (
            f"{pct(late, 50) * 1e3:.0f} / {pct(late, 99) * 1e3:.0f} / {max(late) * 1e3:.0f} ms"
            if late
            else "n/a"
        )
        + f" | {ok}/{len(rates)} | {stop_s:.1f} s | {load_start.split(' (')[0]} |"
    )
    return 0


def main() -> int:
    args = parse()
    machine_facts(f"fleet: {args.nodes} nodes, {args.hung:g} % hung")
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        return asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
