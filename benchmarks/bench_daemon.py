"""Benchmark: the real daemon watching the simulated 2-node cluster — footprint and detection.

Run: ``python benchmarks/bench_daemon.py [--window 60] [--runs 5]``

``watchdog.sim.harness.Harness`` starts the simulated cluster (fake vLLM, two sshd stand-ins,
two Kasa plug emulators, a witness, a webhook receiver) in this process, on 127.0.0.1 only,
and ``cluster-watchdog run`` as a child process with the harness's compressed timings
(probes every 1 s). Measured from outside the daemon:

1. footprint over ``--window`` seconds of a healthy cluster: the child's RSS (and USS) at
   start and every 10 s (psutil on its pid), CPU seconds it consumed per minute, its disk
   writes, and the probes per minute as the simulated servers counted them, against what
   the config asks;
2. detection latency, ``--runs`` times: from ``sim.wedge("spark-1")`` to the first *off*
   event in that plug's own record (both ``time.monotonic()`` in this process), against the
   configured bound failure_threshold x ssh interval + failure_duration + confirm_interval.

Only the cycle budget is relaxed (max_cycles, fleet_max_cycles, backoff), so repeated wedges
of the same node are acted on; off time, boot and model load are shortened to 1 s each to
keep the run short. Neither changes what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from _common import load, machine_facts

import watchdog.sim.banner as banner_mod
from watchdog.sim.harness import Harness
from watchdog.sim.harness_config import Timings
from watchdog.sim.kasa import KasaEmulator
from watchdog.sim.witness import WitnessServer

NODE = "spark-1"
SAMPLE_EVERY = 10.0


# --------------------------------------------------------------------------- counting probes
class Counts:
    """Requests as the simulated servers saw them (class-level hooks, this process only)."""

    def __init__(self) -> None:
        self.c: Counter[str] = Counter()

    def install(self) -> None:
        counts = self.c
        conn_made = banner_mod._Conn.connection_made
        handle = KasaEmulator.handle
        answer = WitnessServer._answer

        def counted_conn(conn: Any, transport: Any) -> None:
            counts["ssh banner connects"] += 1
            conn_made(conn, transport)

        def counted_handle(emu: KasaEmulator, request: Any) -> Any:
            counts["plug queries"] += 1
            return handle(emu, request)

        async def counted_answer(server: WitnessServer, reader: Any, writer: Any) -> None:
            counts["witness connects"] += 1
            await answer(server, reader, writer)

        banner_mod._Conn.connection_made = counted_conn  # type: ignore[method-assign,assignment]
        KasaEmulator.handle = counted_handle  # type: ignore[method-assign,assignment]
        WitnessServer._answer = counted_answer  # type: ignore[method-assign,assignment]

    def snapshot(self, h: Harness) -> Counter[str]:
        out = Counter(self.c)
        for method, path, _status in h.sim.vllm.requests:
            out[f"vllm {method} {path}"] += 1
        return out


def expected_per_minute(doc: dict[str, Any]) -> dict[str, float]:
    """What the written config asks for, per minute, when everything is healthy."""
    secs = {k: float(str(v).rstrip("s")) for k, v in _durations(doc).items()}
    nodes = len(doc["clusters"][0]["nodes"])
    return {
        "ssh banner connects": nodes * 60 / secs["ssh"],
        "witness connects": 60 / secs["ssh"],
        "vllm GET /health": 60 / secs["health"],
        "vllm GET /v1/models": 60 / secs["models"],
        # A tool-call job is the tool call and, when it passes, the round trip: 2 requests.
        "vllm POST /v1/chat/completions": 2 * 60 / secs["tool_call"],
        # A validation read of a cached python-kasa device is one protocol query.
        "plug queries": nodes * 60 / secs["plug"],
    }


def _durations(doc: dict[str, Any]) -> dict[str, str]:
    c = doc["clusters"][0]
    ep, node = c["endpoint"], c["nodes"][0]
    return {
        "ssh": node["ssh"]["interval"],
        "health": ep["health"]["interval"],
        "models": ep["models"]["interval"],
        "tool_call": ep["tool_call"]["interval"],
        "plug": node["plug"]["validate_interval"],
    }


# --------------------------------------------------------------------------- phases
def mem(proc: psutil.Process) -> tuple[float, float]:
    info = proc.memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def footprint(h: Harness, counts: Counts, window: float) -> None:
    assert h.proc is not None
    proc = psutil.Process(h.proc.pid)
    await h.healthy()
    rss0, uss0 = mem(proc)
    cpu_start = cpu(proc)
    io0 = proc.io_counters()
    print(f"daemon pid {proc.pid}: ready and both nodes healthy")
    print(f"{'t (s)':>6} {'RSS MiB':>8} {'USS MiB':>8} {'CPU s':>7} {'threads':>7} {'fds':>4}")
    print(
        f"{0:>6.0f} {rss0:>8.1f} {uss0:>8.1f} {0:>7.2f} {proc.num_threads():>7} {proc.num_fds():>4}"
    )
    before = counts.snapshot(h)
    t0 = time.monotonic()
    rss = rss0
    while (elapsed := time.monotonic() - t0) < window - 0.01:
        await asyncio.sleep(min(SAMPLE_EVERY, window - elapsed))
        rss, uss = mem(proc)
        print(
            f"{time.monotonic() - t0:>6.0f} {rss:>8.1f} {uss:>8.1f} {cpu(proc) - cpu_start:>7.2f} "
            f"{proc.num_threads():>7} {proc.num_fds():>4}"
        )
    span = time.monotonic() - t0
    used = cpu(proc) - cpu_start
    io1 = proc.io_counters()
    after = counts.snapshot(h)
    per_min = {k: (after[k] - before[k]) * 60 / span for k in after}
    print()
    print(f"RSS at start {rss0:.1f} MiB, after {span:.0f} s {rss:.1f} MiB ({rss - rss0:+.1f} MiB)")
    print(
        f"CPU: {used:.2f} s in {span:.0f} s = {used * 60 / span:.2f} CPU-s per minute "
        f"({used / span * 100:.1f}% of one CPU)"
    )
    # Disk writes matter on a Raspberry Pi's SD card: the state file is saved when it changes.
    print(
        f"disk: {(io1.write_count - io0.write_count) * 60 / span:.1f} write syscalls and "
        f"{(io1.write_bytes - io0.write_bytes) * 60 / span / 1024:.1f} KiB to the block "
        f"layer per minute (healthy steady state)"
    )
    print()
    print(f"{'probes per minute':<34} {'measured':>9} {'config':>8}")
    doc = h.config()
    expected = expected_per_minute(doc)
    for key in sorted(set(per_min) | set(expected)):
        shown = per_min.get(key, 0.0)
        print(f"{key:<34} {shown:>9.1f} {expected.get(key, float('nan')):>8.1f}")
    print(f"{'total':<34} {sum(per_min.values()):>9.1f} {sum(expected.values()):>8.1f}")


async def detection(h: Harness, runs: int) -> None:
    t = h.t
    bound = t.failure_threshold * t.probe_interval + t.failure_duration + t.confirm_interval
    print(
        f"configured bound: failure_threshold {t.failure_threshold} x ssh interval "
        f"{t.probe_interval:g} s + failure_duration {t.failure_duration:g} s + "
        f"confirm_interval {t.confirm_interval:g} s = {bound:.2f} s  "
        f"(probe timeout {t.probe_timeout:g} s)"
    )
    print(f"{'run':>3} {'wedge->off':>11} {'wedge->on':>10} {'wedge->healthy':>15}  within bound")
    latencies = []
    for run in range(1, runs + 1):
        await h.healthy()
        await asyncio.sleep(1.0 + random.uniform(0, t.probe_interval))  # random probe phase
        start = time.monotonic()
        await h.sim.wedge(NODE)
        off = await _first_event(h, start, on=False, within=30.0)
        on = await _first_event(h, off, on=True, within=30.0)
        await h.healthy()
        healthy = time.monotonic() - start
        latency = off - start
        latencies.append(latency)
        print(
            f"{run:>3} {latency:>10.2f}s {on - start:>9.2f}s {healthy:>14.2f}s  "
            f"{'yes' if latency <= bound else 'NO'}"
        )
    print(
        f"detection latency: median {statistics.median(latencies):.2f} s, "
        f"min {min(latencies):.2f} s, max {max(latencies):.2f} s; bound {bound:.2f} s"
    )


async def _first_event(h: Harness, after: float, *, on: bool, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for event in h.sim.power_record(NODE):
            if event.on is on and event.at >= after:
                return event.at
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no plug {'on' if on else 'off'} event within {within} s")


async def main_async(window: float, runs: int) -> None:
    counts = Counts()
    counts.install()
    timings = Timings(off_time=1.0, boot_delay=1.0, load_delay=1.0)
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        async with Harness(Path(tmp), timings=timings, subprocess_daemon=True) as h:
            doc = h.config()
            doc["policy"].update(max_cycles=20, fleet_max_cycles=100, backoff="0s")
            h.write_config(doc)
            started = time.monotonic()
            await h.start_daemon()
            print(f"daemon started (subprocess, ready) in {time.monotonic() - started:.2f} s")
            await footprint(h, counts, window)
            print()
            await detection(h, runs)
            await h.stop_daemon()
            print(f"\ndaemon exit code {h.exit_codes[-1] if h.exit_codes else '?'}")
            _report_alerts(h.alerts)


def _report_alerts(alerts: Callable[[], list[dict[str, Any]]]) -> None:
    got = Counter(f"{a.get('condition')}/{a.get('status')}" for a in alerts())
    print("alerts received: " + ", ".join(f"{k} x{v}" for k, v in sorted(got.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="footprint window, seconds")
    parser.add_argument("--runs", type=int, default=5, help="detection runs")
    args = parser.parse_args()
    machine_facts("bench_daemon: the real daemon on the simulated 2-node cluster")
    asyncio.run(main_async(args.window, args.runs))
    print(f"\nload at the end: {load()}")


if __name__ == "__main__":
    main()
