"""The scenario catalogue: one definition, two uses — the demo and the tests.

The catalogue itself, S1–S17, is described in docs/design.md, "Scenario catalogue".

Each scenario names what happens to the cluster and what the watchdog must do, a script
that makes it happen against the simulated cluster, and the expected outcome as checks on
the plugs' own records and the alerts as received. ``cluster-watchdog demo --scenario X``
narrates a run; ``tests/test_scenarios.py`` runs every one and asserts ``problems == []``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.sim import scripts
from watchdog.sim.expect import (
    Check,
    cycles,
    exactly,
    latched,
    no_page,
    one_at_a_time,
    only_pages,
    paged,
    powered_on_at_end,
    sequence,
)
from watchdog.sim.harness import Harness
from watchdog.sim.harness_config import Outcome, Timings
from watchdog.sim.scripts import CLUSTER, A, Script
from watchdog.sim.vllm import NEWEST, VllmMode


@dataclass(frozen=True)
class Scenario:
    name: str
    ref: str  # catalogue number, e.g. "S1"
    title: str
    happens: str  # what happens to the cluster
    does: str  # what the watchdog does
    script: Script
    checks: tuple[Check, ...]
    timings: Timings = field(default_factory=Timings)
    subprocess_daemon: bool = False
    demo: bool = True

    def problems(self, outcome: Outcome) -> list[str]:
        return [p for check in self.checks if (p := check(outcome)) is not None]


# ------------------------------------------------------------------------------ catalogue
_WEDGE_ALERTS = sequence((A, "wedged", "trigger"), (A, "wedged", "resolve"))

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "wedge",
            "S1",
            "A node wedges",
            "spark-1's sshd stops answering (TCP accepts, no banner) and the endpoint hangs",
            "exactly one power cycle of spark-1; recovery confirmed; wedged -> cycling -> resolved",
            scripts.wedge_one,
            (
                cycles(spark_1=1, spark_2=0),
                _WEDGE_ALERTS,
                only_pages((A, "wedged")),
                powered_on_at_end,
            ),
        ),
        Scenario(
            "blip",
            "S2",
            "A transient blip",
            "spark-1's sshd is silent twice for about a second",
            "nothing: no cycle, no page",
            scripts.blip,
            (cycles(spark_1=0, spark_2=0), no_page),
        ),
        Scenario(
            "slow-boot",
            "S3",
            "A slow boot after a cycle",
            "spark-1 wedges; after its power cycle, boot and model load take 3x longer",
            "one cycle, then waits out the boot and serve grace: no second cycle",
            scripts.slow_boot,
            (cycles(spark_1=1, spark_2=0), _WEDGE_ALERTS, powered_on_at_end),
            timings=Timings(boot_timeout=12.0, serve_timeout=30.0),
        ),
        *[
            Scenario(
                f"config-{kind}",
                "S4",
                f"Config fault: {kind.replace('_', ' ')}",
                f"the endpoint answers with {what}; sshd is fine",
                f"no cycle; one misconfigured alert with failure {kind} and its fix",
                scripts.config_fault(mode),
                (
                    cycles(spark_1=0, spark_2=0),
                    paged(CLUSTER, "misconfigured", kind),
                    only_pages((CLUSTER, "misconfigured")),
                ),
            )
            for kind, mode, what in [
                ("auth", VllmMode.AUTH, "a 401 Unauthorized (wrong API key)"),
                ("model_missing", VllmMode.MODEL_MISSING, "model list without our model"),
                (
                    "tool_choice_disabled",
                    VllmMode.TOOL_CHOICE_DISABLED,
                    "a 400: auto tool choice not enabled",
                ),
                (
                    "no_tool_call",
                    VllmMode.NO_TOOL_CALL,
                    "prose instead of a tool call (tool parser off)",
                ),
                ("reasoning_leak", VllmMode.REASONING_LEAK, "reasoning text inside the tool call"),
                (
                    "truncated",
                    VllmMode.TRUNCATED,
                    "a finish_reason length (reasoning ate max_tokens)",
                ),
            ]
        ],
        Scenario(
            "engine-stuck",
            "S5",
            "Engine stuck",
            "/health stays 200 but the tool call hangs; sshd is fine",
            "no cycle; a service-degraded alert",
            scripts.engine_stuck,
            (
                cycles(spark_1=0, spark_2=0),
                paged(CLUSTER, "degraded", "timeout"),
                only_pages((CLUSTER, "degraded")),
            ),
        ),
        Scenario(
            "blind",
            "S6",
            "The watchdog is blind",
            "the witness goes silent, both plugs stop answering, both nodes go dark",
            "no cycle anywhere; a 'watchdog cannot see' alert",
            scripts.blind,
            (
                cycles(spark_1=0, spark_2=0),
                paged("watchdog", "blind"),
                only_pages(("watchdog", "blind")),
            ),
        ),
        Scenario(
            "boot-loop",
            "S7",
            "A boot loop",
            "spark-1 wedges and never comes back after a power cycle",
            "cycles stop at the budget (2 here); a given-up page; latched across a restart",
            scripts.boot_loop,
            (cycles(spark_1=2, spark_2=0), paged(A, "given_up"), latched(A), powered_on_at_end),
            timings=Timings(max_cycles=2, boot_timeout=5.0, serve_timeout=10.0),
        ),
        Scenario(
            "both-wedged",
            "S8",
            "Both nodes wedge at once",
            "both nodes of the TP=2 pair wedge together (plugs and witness answer)",
            "both cycled, one at a time",
            scripts.both,
            (cycles(spark_1=1, spark_2=1), one_at_a_time, powered_on_at_end),
        ),
        Scenario(
            "killed",
            "S9",
            "The watchdog is killed mid-cycle",
            "the daemon is killed with SIGKILL between switching spark-1 off and on",
            "at its next start it switches the plug on before anything else",
            scripts.killed,
            (cycles(spark_1=1, spark_2=0), powered_on_at_end),
            timings=Timings(off_time=4.0),
            subprocess_daemon=True,
            demo=False,
        ),
        Scenario(
            "plug-down",
            "S10",
            "The plug does not answer",
            "spark-1 wedges while its plug is unreachable; later the plug answers again",
            "alerts about the plug, no crash, no cycle; cycles once the plug answers",
            scripts.plug_down,
            (cycles(spark_1=1, spark_2=0), paged(A, "plug"), powered_on_at_end),
        ),
        Scenario(
            "maintenance",
            "S13",
            "A node in maintenance",
            "an operator pauses spark-1, which then wedges; later the operator resumes it",
            "no action and no page while paused; after resume it is cycled",
            scripts.maintenance,
            (cycles(spark_1=1, spark_2=0), powered_on_at_end),
        ),
        Scenario(
            "ssh-down",
            "S14",
            "sshd down, model serving",
            "spark-1's sshd is stopped (port 22 refused) while the endpoint serves tool calls",
            "no cycle: a tool call proves it serves; an ssh_down alert, resolved when sshd returns",
            scripts.ssh_down,
            (
                cycles(spark_1=0, spark_2=0),
                exactly((A, "ssh_down", "trigger"), (A, "ssh_down", "resolve")),
            ),
        ),
        Scenario(
            "network-blip",
            "S15",
            "A network blip",
            "every node, every plug and the endpoint stop answering for a while, then all return",
            "no cycle during or after; one blind page and its resolve, nothing else",
            scripts.network_blip,
            (
                cycles(spark_1=0, spark_2=0),
                exactly(("watchdog", "blind", "trigger"), ("watchdog", "blind", "resolve")),
            ),
        ),
        Scenario(
            "wedge-refused",
            "S16",
            "A wedge while the API port refuses",
            "the engine is gone (the API port refuses) and spark-1 wedges",
            "exactly one cycle of spark-1 (a refused port proves nothing serves)",
            scripts.wedge_refused,
            (cycles(spark_1=1, spark_2=0), _WEDGE_ALERTS, powered_on_at_end),
        ),
        Scenario(
            "page-restart",
            "S17",
            "A page across a restart",
            "a page is open (API key rejected); the daemon restarts; the key is fixed meanwhile",
            "the new process resolves the page it never sent",
            scripts.page_across_restart,
            (
                cycles(spark_1=0, spark_2=0),
                exactly(
                    (CLUSTER, "misconfigured", "trigger"), (CLUSTER, "misconfigured", "resolve")
                ),
            ),
            demo=False,
        ),
    ]
}


async def run_scenario(
    sc: Scenario,
    workdir: Path,
    *,
    speed: float = 1.0,
    narrate: Callable[[str, str], None] | None = None,
    daemon_logging: bool = True,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    vllm_version: str = NEWEST,
) -> tuple[Outcome, list[str]]:
    """Run one scenario; return what happened and what did not go as expected."""
    async with Harness(
        workdir,
        speed=speed,
        timings=sc.timings,
        narrate=narrate,
        subprocess_daemon=sc.subprocess_daemon,
        daemon_logging=daemon_logging,
        vllm_version=vllm_version,
    ) as h:
        watcher = asyncio.create_task(_watch_alerts(h, on_alert)) if on_alert else None
        try:
            await h.start_daemon()
            error = None
            try:
                await sc.script(h)
            except (TimeoutError, AssertionError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)  # alerts are delivered in the background
            outcome = h.outcome()
            await h.stop_daemon()
        finally:
            if watcher is not None:
                watcher.cancel()
        if any(code != 0 for code in h.exit_codes if code != -signal.SIGKILL):
            outcome.notes.append(f"daemon exit codes {h.exit_codes}")
    problems = ([error] if error else []) + sc.problems(outcome) + outcome.notes
    return outcome, problems


async def _watch_alerts(h: Harness, on_alert: Callable[[dict[str, Any]], None]) -> None:
    seen = 0
    while True:
        alerts = h.alerts()
        for alert in alerts[seen:]:
            on_alert(alert)
        seen = len(alerts)
        await asyncio.sleep(0.05)
