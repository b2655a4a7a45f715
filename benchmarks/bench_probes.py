"""Benchmark: per-probe overhead against local servers, and the response-size bound.

Run: ``python benchmarks/bench_probes.py [--runs 200] [--endpoints 500] [--http-only]``

The simulated servers (``FakeVllm`` HEALTHY and HUGE, ``BannerServer``, ``KasaEmulator``) run
in a child process with its own event loop, on 127.0.0.1 only, so neither their CPU nor their
allocations are counted against the probes, as with a real node. Each probe is then run
``--runs`` times, one at a time as the daemon's jobs do, with the daemon's own HTTP client
(:class:`~watchdog.probes.wire.WireClient`: one request per connection, so every HTTP probe
pays a fresh TCP connect):

- wall latency per probe (median, p95, max) and the client's CPU time per probe. The health
  probe as the daemon runs it: ``/health`` alone, and with ``/version`` (its first run and every
  sixth); the engine-progress probe (``/metrics``); then the health, models and progress probes
  round-robin over ``--endpoints`` simulated vLLMs (one per cluster, as a fleet has them: what
  is kept per endpoint is then looked up among that many). Then the plug reads (not with
  ``--http-only``): the native XOR driver (``XorKasaPlug``) and ``KasaPlug`` (python-kasa),
  each with its connection kept as the daemon keeps it and with a fresh one per read, for an
  HS110 and one outlet of an HS300 strip;
- the memory bound (not with ``--http-only``): ``probe_models`` / ``probe_tool_call`` against
  a 64 MiB chunked body (``VllmMode.HUGE``), for several ``max_response_bytes``, with the
  tracemalloc peak of the probe compared to the limit and the bytes the server managed to send
  before the hang-up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import multiprocessing.connection
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import psutil
from _common import kib, load, machine_facts, summary_ms
from pydantic import SecretStr

from watchdog.config import Endpoint
from watchdog.config import Plug as PlugConfig
from watchdog.core.model import FailureKind, PlugReading, ProbeResult
from watchdog.plugs.kasa import KasaPlug
from watchdog.plugs.kasa_xor import XorKasaPlug
from watchdog.probes.http import probe_health, probe_models
from watchdog.probes.progress import ProgressTracker, probe_progress
from watchdog.probes.ssh import probe_ssh
from watchdog.probes.toolcall import probe_round_trip, probe_tool_call
from watchdog.probes.wire import WireClient
from watchdog.sim.banner import BannerServer
from watchdog.sim.kasa import KasaEmulator
from watchdog.sim.vllm import HUGE_BYTES, FakeVllm, VllmMode

HOST = "127.0.0.1"
MODEL = "nvidia/nemotron-3-super"
LIMITS = (64 * 1024, 1_048_576, 8 * 1_048_576)  # max_response_bytes tried against HUGE
TIMEOUT = 5.0


# --------------------------------------------------------------------------- server process
def serve(conn: multiprocessing.connection.Connection, key: str, fleet: int = 0) -> None:
    """Child process: run the servers, answer commands from the parent until 'stop'."""
    asyncio.run(_serve(conn, key, fleet))


async def _serve(conn: multiprocessing.connection.Connection, key: str, fleet: int) -> None:
    healthy = FakeVllm(HOST, model=MODEL, api_key=key)
    huge = FakeVllm(HOST, model=MODEL, api_key=key)
    banner = BannerServer(HOST)
    plug = KasaEmulator(host=HOST, initial_on=True)
    strip = KasaEmulator("HS300(US)_2.0_1.0.12", host=HOST, initial_on=True)
    clusters = [FakeVllm(HOST, model=MODEL, api_key=key) for _ in range(fleet)]
    for server in (healthy, huge, banner, plug, strip, *clusters):
        await server.start()
    await huge.set_mode(VllmMode.HUGE)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_command() -> None:
        command = conn.recv()
        if command == "huge_streamed":
            conn.send(huge.bytes_streamed)
            huge.bytes_streamed = 0
        elif command == "stop":
            done.set()

    loop.add_reader(conn.fileno(), on_command)
    ports = {"ssh": banner.port, "plug": plug.port, "strip": strip.port}
    conn.send({"vllm": healthy.url, "huge": huge.url, "fleet": [c.url for c in clusters]} | ports)
    await done.wait()
    loop.remove_reader(conn.fileno())
    for server in (healthy, huge, banner, plug, strip, *clusters):
        await server.stop()
    conn.send("stopped")


# --------------------------------------------------------------------------- measuring
def endpoint(url: str, key: str, limit: int = 1_048_576) -> Endpoint:
    ep = Endpoint(base_url=url, model=MODEL, expect_fingerprint="tp2", max_response_bytes=limit)
    return ep.model_copy(update={"api_key": SecretStr(key)})


async def measure(
    name: str,
    probe: Callable[[], Awaitable[ProbeResult | PlugReading]],
    runs: int,
    warm_up: int = 3,
) -> None:
    for _ in range(warm_up):  # imports, first connections, python-kasa device discovery
        await probe()
    walls: list[float] = []
    cpu0 = time.process_time()
    for _ in range(runs):
        t = time.perf_counter()
        out = await probe()
        walls.append(time.perf_counter() - t)
        failed = out.failure if isinstance(out, ProbeResult) else (not out.reachable)
        if failed:
            sys.exit(f"{name}: the probe failed against a healthy server: {out}")
    cpu = (time.process_time() - cpu0) / runs
    print(f"{name:<30} {runs:>5}  {summary_ms(walls)}  cpu {cpu * 1e3:6.2f} ms/probe")


async def latency(urls: dict[str, object], key: str, runs: int, http_only: bool) -> None:
    ep = endpoint(str(urls["vllm"]), key)
    fleet = [endpoint(str(url), key) for url in urls["fleet"]]  # type: ignore[attr-defined]
    port = int(str(urls["ssh"]))
    print(f"{'probe':<30} {'runs':>5}  wall latency (one at a time)                   client CPU")
    async with WireClient() as client:
        await measure(
            "probe_health",  # /health alone: five runs in six in the daemon
            lambda: probe_health(client, ep, timeout=TIMEOUT, target="bench", with_version=False),
            runs,
        )
        await measure(
            "probe_health + /version",  # the first run, and every sixth
            lambda: probe_health(client, ep, timeout=TIMEOUT, target="bench"),
            runs,
        )
        await measure(
            "probe_models",
            lambda: probe_models(client, ep, timeout=TIMEOUT, target="bench"),
            runs,
        )
        tracker = ProgressTracker()
        await measure(
            "probe_progress",
            lambda: probe_progress(
                client, ep, tracker, timeout=TIMEOUT, target="bench", now=time.monotonic()
            ),
            runs,
        )
        if fleet:
            turn = itertools.cycle(fleet)
            n = len(fleet)
            await measure(
                f"probe_health, {n} endpoints",
                lambda: probe_health(
                    client, next(turn), timeout=TIMEOUT, target="bench", with_version=False
                ),
                runs,
                n,  # each endpoint once: the daemon's steady state
            )
            await measure(
                f"probe_models, {n} endpoints",
                lambda: probe_models(client, next(turn), timeout=TIMEOUT, target="bench"),
                runs,
                n,
            )
            await measure(
                f"probe_progress, {n} endpoints",
                lambda: probe_progress(
                    client, next(turn), tracker, timeout=TIMEOUT, target="bench", now=0.0
                ),
                runs,
                n,
            )
        await measure(
            "probe_tool_call",
            lambda: probe_tool_call(client, ep, timeout=TIMEOUT, target="bench"),
            runs,
        )
        await measure(
            "probe_round_trip (2 req)",
            lambda: probe_round_trip(client, ep, timeout=TIMEOUT, target="bench"),
            runs,
        )
    await measure(
        "probe_ssh (banner)",
        lambda: probe_ssh(HOST, port, timeout=TIMEOUT, target="bench"),
        runs,
    )
    if http_only:
        return
    for device, outlet in (("plug", None), ("strip", 4)):
        cfg = PlugConfig.model_validate(
            {"type": "kasa", "host": HOST, "port": urls[device], "timeout": 2, "outlet": outlet}
        )
        what = "HS110" if outlet is None else "HS300[4]"
        for name, driver in (("native", XorKasaPlug), ("python-kasa", KasaPlug)):
            plug = driver(cfg, label="bench")  # connected once, kept as the daemon keeps it
            try:
                await measure(f"{name} {what} kept", plug.read, runs)
            finally:
                await plug.close()

            async def cold_read(cfg: PlugConfig = cfg, driver: type = driver) -> PlugReading:
                fresh = driver(cfg, label="bench")
                try:
                    reading: PlugReading = await fresh.read()
                    return reading
                finally:
                    await fresh.close()

            await measure(f"{name} {what} connect", cold_read, max(20, runs // 4))


async def huge_body(
    urls: dict[str, object], key: str, conn: multiprocessing.connection.Connection
) -> None:
    print()
    print(f"HUGE body: the server streams {HUGE_BYTES // 2**20} MiB (chunked, no Content-Length)")
    print(
        f"{'probe':<24} {'limit':>12} {'peak traced':>13} {'above base':>12} {'/limit':>6} "
        f"{'time':>9} {'server sent':>12}  result"
    )
    # Baseline: the same probe against a healthy server, traced the same way; what a HUGE
    # body adds above it is the body buffer, which the limit must bound.
    cases = [("probe_models", 1_048_576, "vllm")]
    cases += [("probe_models", limit, "huge") for limit in LIMITS]
    cases += [("probe_tool_call", 1_048_576, "huge")]
    rss0 = psutil.Process().memory_info().rss
    base_peak = 0.0
    async with WireClient() as client:
        for name, limit, which in cases:
            ep = endpoint(str(urls[which]), key, limit)
            probe = probe_models if name == "probe_models" else probe_tool_call
            await probe(client, ep, timeout=TIMEOUT, target="bench")  # warm-up
            conn.send("huge_streamed")
            conn.recv()
            peaks, times = [], []
            out: ProbeResult | None = None
            for _ in range(5):
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                t = time.perf_counter()
                out = await probe(client, ep, timeout=TIMEOUT, target="bench")
                times.append(time.perf_counter() - t)
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
                tracemalloc.stop()
            conn.send("huge_streamed")
            sent = conn.recv() / 5
            assert out is not None
            peak = max(peaks)
            if which == "vllm":
                base_peak = peak
            above = peak - base_peak
            verdict = "ok" if out.ok else f"{out.failure}: {out.detail}"
            label = name if which == "huge" else f"{name} (healthy)"
            print(
                f"{label:<24} {kib(limit):>12} {kib(peak):>13} {kib(above):>12} "
                f"{above / limit:>6.2f} {statistics.median(times) * 1e3:>7.1f}ms "
                f"{kib(sent):>12}  {verdict[:52]}"
            )
            if which == "huge" and out.failure is not FailureKind.BAD_RESPONSE:
                sys.exit(f"{name}: a huge body was not refused: {out}")
    rss1 = psutil.Process().memory_info().rss
    print("peak traced: tracemalloc peak during one probe (max of 5); above base: minus the")
    print("healthy probe's peak, i.e. the body buffer; server sent: mean bytes per run the")
    print("server wrote before the probe hung up (loopback socket buffers absorb several MiB)")
    print(f"client RSS before/after the HUGE runs: {rss0 / 2**20:.1f} / {rss1 / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--endpoints", type=int, default=500, help="simulated vLLMs for the round-robin rows"
    )
    parser.add_argument(
        "--http-only", action="store_true", help="the endpoint probes only (no plugs, no HUGE)"
    )
    args = parser.parse_args()
    machine_facts("bench_probes: per-probe overhead against local servers")
    key = secrets.token_hex(16)
    parent, child = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(
        target=serve, args=(child, key, args.endpoints)
    )
    server.start()
    try:
        urls = parent.recv()
        print(f"servers: pid {server.pid}, all on {HOST}; API key set (never printed)")
        print()
        asyncio.run(latency(urls, key, args.runs, args.http_only))
        if not args.http_only:
            asyncio.run(huge_body(urls, key, parent))
        print(f"\nload at the end: {load()}")
        parent.send("stop")
        parent.recv()
    finally:
        server.join(10)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
