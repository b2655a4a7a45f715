"""``cluster-watchdog demo``: watch the real daemon save a simulated cluster, narrated live.

Everything runs in this process on 127.0.0.1: the simulated two-node cluster (fake vLLM,
sshd stand-ins, Kasa plug emulators speaking the legacy Kasa protocol to the watchdog's plug
driver), a webhook receiver playing on-call, and the real daemon with compressed timings.
No root, no sshd, no journald, no network beyond loopback. The timeline has three voices:
``world`` (what happens to the cluster), ``watchdog`` (what it concludes and does) and
``on-call`` (the alerts as received). The daemon's own log goes to a file, named at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TextIO

from watchdog.core import incidents
from watchdog.sim.scenarios import SCENARIOS, Scenario, run_scenario
from watchdog.sim.vllm_profiles import NEWEST, profile_for
from watchdog.state import history

_COLOURS = {"world": "\033[33m", "watchdog": "\033[36m", "on-call": "\033[35m"}
_RESET = "\033[0m"


class Narrator:
    def __init__(self, out: TextIO, *, colour: bool) -> None:
        self.out = out
        self.colour = colour
        self.t0 = time.monotonic()
        self.seen_alerts = 0

    def say(self, who: str, text: str) -> None:
        voice = who if who in ("watchdog", "on-call") else "world"
        label = f"{voice:<8}"
        if self.colour:
            label = f"{_COLOURS[voice]}{label}{_RESET}"
        prefix = "" if voice != "world" or who in ("world", "endpoint") else f"{who}: "
        if who == "endpoint":
            prefix = "endpoint: "
        print(
            f"  t+{time.monotonic() - self.t0:5.1f}s  {label} {prefix}{text}",
            file=self.out,
            flush=True,
        )


def _describe(sc: Scenario) -> str:
    return f"{sc.ref} {sc.title}: {sc.happens}.\n  Expected: {sc.does}."


def list_scenarios(out: TextIO = sys.stdout) -> None:
    print("Scenarios (cluster-watchdog demo --scenario NAME):", file=out)
    for name, sc in SCENARIOS.items():
        if sc.demo:
            print(f"  {name:<28} {sc.ref:<4} {sc.title}", file=out)


def run_demo(
    *,
    scenario: str = "wedge",
    speed: float = 1.0,
    list_only: bool = False,
    out: TextIO = sys.stdout,
    vllm_version: str = NEWEST,
) -> int:
    if list_only:
        list_scenarios(out)
        return 0
    sc = SCENARIOS.get(scenario)
    if sc is None or not sc.demo:
        print(f"unknown scenario {scenario!r}", file=sys.stderr)
        list_scenarios(sys.stderr)
        return 2
    if not 0.25 <= speed <= 4:
        print("--speed must be between 0.25 and 4", file=sys.stderr)
        return 2
    try:
        spoken = profile_for(vllm_version).version
    except ValueError as exc:
        print(f"--vllm-version: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="cluster-watchdog-demo-"))
    narrator = Narrator(out, colour=out.isatty())
    print(f"cluster-watchdog demo — {_describe(sc)}", file=out)
    print(
        f"  A simulated 2-node cluster (spark-1, spark-2: vLLM {spoken} serving "
        "nvidia/nemotron-3-super "
        "with TP=2,\n  each node with an sshd and a Kasa smart plug) runs on 127.0.0.1, "
        "watched by the real daemon\n  with compressed timings (probes every "
        f"{1 / speed:g}s, 3 failures held {2 / speed:g}s, power off for {2 / speed:g}s).\n",
        file=out,
    )
    handler = logging.FileHandler(workdir / "daemon.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        outcome, problems = asyncio.run(_main(sc, workdir, speed, narrator, vllm_version))
    except KeyboardInterrupt:
        print("\ninterrupted: everything is stopped, nothing is left running", file=out)
        return 130
    finally:
        root.removeHandler(handler)
        handler.close()
    print(file=out)
    cycled = ", ".join(f"{n} {outcome.offs(n)}x" for n in outcome.records)
    pages = sum(1 for a in outcome.alerts if a.get("status") == "trigger")
    print(
        f"  power cycles (from the plugs' own records): {cycled}; "
        f"alerts received: {len(outcome.alerts)} ({pages} trigger)",
        file=out,
    )
    print(f"  the daemon's log: {workdir / 'daemon.log'}; its state: {workdir / 'state'}", file=out)
    if problems:
        print("  RESULT: NOT as expected:", *problems, sep="\n    ", file=out)
    else:
        print(f"  RESULT: as expected ({sc.does}); {outcome.elapsed:.0f}s", file=out)
    print("\n  The run's history (`cluster-watchdog history`):", file=out)
    now = time.time()
    rows = incidents.incidents(history.read(workdir / "state"))
    print(textwrap.indent(incidents.render_table(rows, now), "    "), file=out)
    return 1 if problems else 0


async def _main(
    sc: Scenario, workdir: Path, speed: float, narrator: Narrator, vllm_version: str
) -> tuple:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    # Ctrl-C cancels the run; the harness's async-with stops every server and the daemon.
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, lambda: main.cancel() if main else None)
        loop.add_signal_handler(signal.SIGTERM, lambda: main.cancel() if main else None)
    try:
        return await run_scenario(
            sc,
            workdir,
            speed=speed,
            narrate=narrator.say,
            daemon_logging=False,
            on_alert=_alert_line(narrator),
            vllm_version=vllm_version,
        )
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _alert_line(narrator: Narrator):  # type: ignore[no-untyped-def]
    def line(alert: dict) -> None:  # type: ignore[type-arg]
        status = str(alert.get("status", "?")).upper()
        text = f"{status} {alert.get('summary', '')}"
        if alert.get("status") == "trigger":
            if alert.get("done"):
                text += f" | done: {alert['done']}"
            if alert.get("todo"):
                text += f" | to do: {alert['todo']}"
        narrator.say("on-call", text)

    return line
