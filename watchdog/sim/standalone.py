"""``cluster-watchdog sim``: the simulated cluster on its own, to rehearse a config against.

Starts the same simulated cluster the demo uses (fake vLLM, sshd stand-ins, Kasa plug
emulators) on loopback, prints a config snippet pointing at it, and runs until Ctrl-C. Point
``cluster-watchdog check -c FILE`` or ``run -c FILE`` at it from another terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import yaml

from watchdog.sim.cluster import SimCluster
from watchdog.sim.cluster_config import config_snippet
from watchdog.sim.sim_node import SimNodeSpec
from watchdog.sim.vllm_profiles import NEWEST, profile_for


def run_sim(
    *,
    nodes: int = 2,
    host: str = "127.0.0.1",
    output: Path | None = None,
    vllm_version: str = NEWEST,
) -> int:
    if not host.startswith("127."):
        print("the simulated cluster listens on loopback only (127.0.0.0/8)", file=sys.stderr)
        return 2
    if not 1 <= nodes <= 8:
        print("--nodes must be between 1 and 8", file=sys.stderr)
        return 2
    try:
        profile_for(vllm_version)
    except ValueError as exc:
        print(f"--vllm-version: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(nodes, host, output, vllm_version))
    return 0


async def _serve(nodes: int, host: str, output: Path | None, vllm_version: str) -> None:
    specs = [SimNodeSpec(f"spark-{i + 1}", ssh_host=host) for i in range(nodes)]
    sim = SimCluster(specs, host=host, vllm_version=vllm_version)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    try:
        snippet = config_snippet(sim)
        print(snippet, flush=True)
        if output is not None:
            doc = {
                "watchdog": {"state_dir": str(output.parent / "state"), "dry_run": True},
                **yaml.safe_load(snippet),
            }
            text = yaml.safe_dump(doc, sort_keys=False)
            await asyncio.to_thread(output.write_text, text, encoding="utf-8")
            print(f"# whole config written to {output} (dry run: plugs are never switched)")
        print("# simulated cluster running; Ctrl-C stops it", flush=True)
        await stop.wait()
    finally:
        await sim.stop()
