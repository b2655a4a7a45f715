"""The engine-progress probe's parsing cost: ``parse_sample`` on /metrics bodies of each size.

``parse_sample`` runs on the event loop, so its CPU per call is what a large or hostile
``/metrics`` page can cost the daemon. Bodies: a realistic vLLM page (the fake's 0.33 profile)
padded with other metrics' histogram lines up to 64 KiB, 256 KiB and 1 MiB (the default
``max_response_bytes``, the most the probe ever reads), and 1 MiB pages full of the two metrics
the probe reads: accepted up to ``MAX_LINES`` of them (the most the parser is ever handed),
refused beyond (the time to refuse is measured). Per size: thread
CPU time per call (p50, p95) over ``--runs`` calls. Standard library only.
"""

from __future__ import annotations

import argparse
import statistics
import time

from watchdog.probes._faults import Fault
from watchdog.probes.progress import MAX_LINES, parse_sample
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    print(f"parse_sample, {runs} calls per body; thread CPU per call")
    for name, body in _bodies().items():
        refused = "refused" in name
        times = []
        for _ in range(runs):
            start = time.thread_time()
            try:
                assert parse_sample(body) is not None, name
            except Fault:
                assert refused, name
            else:
                assert not refused, name
            times.append(time.thread_time() - start)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        p50 = statistics.median(times)
        print(f"  {name:32s} p50 {p50 * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
