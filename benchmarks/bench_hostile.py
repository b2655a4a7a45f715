"""Hostile peers against `cluster-watchdog check`: peak RSS and wall time of the real CLI.

Two cases, each a fresh `cluster-watchdog check` child process, its peak RSS read from the
kernel's own accounting for that child (``os.wait4`` -> ``ru_maxrss``):

* **stacked-gzip endpoint** — every HTTP answer is ``Content-Encoding: gzip, gzip`` with a
  body of a few KB that inflates to 1 GiB (``--inflate`` to change);
* **1 GiB plug answer** — a legacy Kasa plug (XOR framing, TCP) that declares a 1 GiB answer
  to every query and then streams zeros.

The hostile servers run in their own child process, so their memory is not counted. Each
case passes when the check exits within the probe's timeout + 1 s with a peak RSS under
150 MiB; the script exits non-zero otherwise.

    python benchmarks/bench_hostile.py            # ~20 s (building the bomb takes a few s)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_facts

from watchdog.sim.hostile import HostileHttp, HostileKasa, HttpAnswer, stacked_gzip

GIB = 1 << 30
RSS_LIMIT_MIB = 150
PROBE_TIMEOUT = 5.0


async def _serve(kind: str, inflate: int) -> None:
    if kind == "gzip":
        server: HostileHttp | HostileKasa = HostileHttp(
            HttpAnswer(body=stacked_gzip(inflate, layers=2), encoding="gzip, gzip")
        )
    else:
        server = HostileKasa(declare=inflate)
    await server.start()
    print(server.port, flush=True)
    await asyncio.Event().wait()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(endpoint_port: int, plug: str) -> str:
    t = f"{PROBE_TIMEOUT:g}s"
    return f"""
clusters:
  - name: hostile
    endpoint:
      base_url: http://127.0.0.1:{endpoint_port}
      model: m
      health: {{timeout: {t}}}
      models: {{timeout: {t}}}
      tool_call: {{timeout: {t}}}
    nodes:
      - name: n1
        host: 127.0.0.1
        ssh: {{port: {_closed_port()}, timeout: {t}}}
        plug: {plug}
"""


def _measure(config: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MiB, exit code and the last lines of output of one check."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "check", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CLUSTER_WATCHDOG_CONFIG"},
    )
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode, output


def _start_server(kind: str, inflate: int) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--inflate", str(inflate)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["gzip", "plug"], help=argparse.SUPPRESS)
    parser.add_argument("--inflate", type=int, default=GIB, help="bytes (default 1 GiB)")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.inflate))
        return 0

    machine_facts("bench_hostile: `cluster-watchdog check` against hostile peers")
    budget = PROBE_TIMEOUT + 1.0
    failed = False
    print(f"{'case':<34} {'wall':>8} {'peak RSS':>10} {'exit':>5}  verdict")
    with tempfile.TemporaryDirectory() as tmp:
        for case, kind in (
            ("stacked-gzip endpoint (gzip, gzip)", "gzip"),
            ("plug declaring 1 GiB", "plug"),
        ):
            server, port = _start_server(kind, args.inflate)
            try:
                if kind == "gzip":
                    text = _config(port, "{type: dry_run}")
                else:
                    plug = (
                        f"{{type: kasa, host: 127.0.0.1, port: {port}, encryption: xor, "
                        f"timeout: {PROBE_TIMEOUT:g}s}}"
                    )
                    text = _config(_closed_port(), plug)
                config = Path(tmp) / f"{kind}.yaml"
                config.write_text(text)
                wall, rss, code, output = _measure(config)
            finally:
                server.terminate()
                server.wait()
            ok = wall <= budget and rss < RSS_LIMIT_MIB
            failed |= not ok
            verdict = "ok" if ok else f"FAILED (limits {budget:g} s, {RSS_LIMIT_MIB} MiB)"
            print(f"{case:<34} {wall:>6.2f} s {rss:>6.1f} MiB {code:>5}  {verdict}")
            for line in output.splitlines():
                if (
                    "hostile" in line and ("models" in line or "tool_call" in line)
                ) or " plug " in line:
                    print(f"    {line.strip()[:150]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
