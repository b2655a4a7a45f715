"""The engine-progress probe's parsing cost: ``parse_sample`` on /metrics bodies of each size.

``parse_sample`` runs on the event loop, so its CPU per call is what a large or hostile
``/metrics`` page can cost the daemon. Bodies: a realistic vLLM page (the fake's 0.33 profile)
padded with other metrics' histogram lines up to 64 KiB, 256 KiB and 1 MiB (the default
``max_response_bytes``, the most the probe ever reads), and 1 MiB pages full of the two metrics
the probe reads: accepted up to ``MAX_LINES`` of them (the most the parser is ever handed),
refused beyond (the time to refuse is measured). Per size: thread
CPU time per call (p50, p95) over ``--runs`` calls. Then the parsers alone on the wanted lines
(a vLLM page's six, and ``MAX_LINES`` of them): the strict parser the probe uses
(``strict_samples``) against prometheus-client's (``client_samples``, its fallback).
Standard library only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from watchdog.probes._faults import Fault
from watchdog.probes.progress import MAX_LINES, _wanted_lines, parse_sample
from watchdog.probes.prom_text import client_samples, strict_samples
from watchdog.sim.vllm_profiles import PROFILES

KIB = 1024


def _bodies() -> dict[str, bytes]:
    page = PROFILES["0.33"].metrics("m", running=2, generated=12345, prompt=999).body
    pad = b'vllm:e2e_request_latency_seconds_bucket{engine="0",model_name="m",le="2.5"} 7.0\n'
    wanted = b'vllm:generation_tokens_total{engine="0",model_name="m"} 12345.0\n'
    out = {}
    for size in (64 * KIB, 256 * KIB, 1024 * KIB):
        out[f"{size // KIB} KiB, other metrics"] = page + pad * ((size - len(page)) // len(pad))
    most = page + wanted * (MAX_LINES - 10)
    out[f"1024 KiB, {MAX_LINES} wanted lines"] = most + pad * ((1024 * KIB - len(most)) // len(pad))
    out["1024 KiB, all wanted (refused)"] = page + wanted * (
        (1024 * KIB - len(page)) // len(wanted)
    )
    return out


def _cpu(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """Thread CPU per call: (p50, p95) in seconds."""
    times = []
    for _ in range(runs):
        start = time.thread_time()
        call()
        times.append(time.thread_time() - start)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def _parse(body: bytes, refused: bool) -> None:
    try:
        assert parse_sample(body) is not None
    except Fault:
        assert refused
    else:
        assert not refused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    print(f"parse_sample, {runs} calls per body; thread CPU per call")
    for name, body in _bodies().items():
        p50, p95 = _cpu(lambda body=body, name=name: _parse(body, "refused" in name), runs)
        print(f"  {name:32s} p50 {p50 * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms")
    page = PROFILES["0.33"].metrics("m", running=2, generated=12345, prompt=999).body
    many = page + b'vllm:generation_tokens_total{engine="1",model_name="m"} 5.0\n' * (MAX_LINES - 6)
    print(f"the wanted lines alone, {runs * 20} calls each; thread CPU per call")
    for name, body in (("a vLLM page (6 lines)", page), (f"{MAX_LINES} lines", many)):
        lines = _wanted_lines(body)
        for parser_name, parse in (
            ("strict", strict_samples),
            ("prometheus-client", client_samples),
        ):
            assert parse(lines), (name, parser_name)
            p50, p95 = _cpu(lambda lines=lines, parse=parse: parse(lines), runs * 20)
            print(
                f"  {name:22s} {parser_name:18s} p50 {p50 * 1e6:8.1f} µs  p95 {p95 * 1e6:8.1f} µs"
            )


if __name__ == "__main__":
    main()
