"""The scenario catalogue (design §7): one definition, two uses — the demo and the tests.

Each scenario names what happens to the cluster and what the watchdog must do, a script
that makes it happen against the simulated cluster, and the expected outcome as checks on
the plugs' own records and the alerts as received. ``cluster-watchdog demo --scenario X``
narrates a run; ``tests/test_scenarios.py`` runs every one and asserts ``problems == []``.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog import control
from watchdog.sim.banner import BannerMode
from watchdog.sim.cluster import NodeFault
from watchdog.sim.harness import Harness, Outcome, Timings
from watchdog.sim.kasa import PlugFault
from watchdog.sim.vllm import VllmMode

A, B = "spark-1", "spark-2"
CLUSTER = "sim"
Script = Callable[[Harness], Awaitable[None]]
Check = Callable[[Outcome], "str | None"]


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


# ------------------------------------------------------------------------------ checks
def cycles(**expected: int) -> Check:
    want = {k.replace("_", "-"): v for k, v in expected.items()}

    def check(o: Outcome) -> str | None:
        got = {n: o.offs(n) for n in want}
        return None if got == want else f"power cycles per node: expected {want}, got {got}"

    return check


def powered_on_at_end(o: Outcome) -> str | None:
    off = [n for n, rec in o.records.items() if rec and not rec[-1].on]
    return f"left switched off: {off}" if off else None


def no_page(o: Outcome) -> str | None:
    pages = [_brief(a) for a in o.alerts if a.get("status") == "trigger"]
    return f"expected no page, got {pages}" if pages else None


def paged(node: str, condition: str, failure: str | None = None, once: bool = True) -> Check:
    def check(o: Outcome) -> str | None:
        hits = [
            a
            for a in o.alerts
            if a.get("node") == node
            and a.get("condition") == condition
            and a.get("status") == "trigger"
        ]
        if not hits:
            return f"expected a {condition} page for {node}; got {[_brief(a) for a in o.alerts]}"
        if once and len(hits) != 1:
            return f"expected one {condition} page for {node}, got {len(hits)}"
        if failure is not None and hits[0].get("failure") != failure:
            return f"{condition} page carries failure {hits[0].get('failure')!r}, not {failure!r}"
        if not hits[0].get("todo"):
            return f"{condition} page has no hint for the human"
        return None

    return check


def sequence(*steps: tuple[str, str, str]) -> Check:
    """These (node, condition, status) alerts arrive in this order (others may interleave)."""

    def check(o: Outcome) -> str | None:
        seen = [(a.get("node"), a.get("condition"), a.get("status")) for a in o.alerts]
        it = iter(seen)
        missing = [s for s in steps if s not in it]
        return f"alert sequence {list(steps)} not in {seen}" if missing else None

    return check


def only_pages(*allowed: tuple[str, str]) -> Check:
    def check(o: Outcome) -> str | None:
        extra = {
            (a.get("node"), a.get("condition")) for a in o.alerts if a.get("status") == "trigger"
        } - set(allowed)
        return f"unexpected pages: {sorted(map(str, extra))}" if extra else None

    return check


def latched(*nodes: str) -> Check:
    def check(o: Outcome) -> str | None:
        return None if o.latched == set(nodes) else f"latched {o.latched}, expected {set(nodes)}"

    return check


def one_at_a_time(o: Outcome) -> str | None:
    spans = []
    for node, rec in o.records.items():
        off = None
        for e in rec:
            if not e.on:
                off = e.at
            elif off is not None:
                spans.append((off, e.at, node))
                off = None
    spans.sort()
    for (_, e1, n1), (s2, _, n2) in itertools.pairwise(spans):
        if s2 < e1:
            return f"{n1} and {n2} were off at the same time"
    return None


def _brief(a: dict[str, Any]) -> str:
    return f"{a.get('node')}/{a.get('condition')}/{a.get('status')}"


# ------------------------------------------------------------------------------ scripts
async def _wedge_one(h: Harness) -> None:
    await h.healthy()
    await h.sleep(1)
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")
    await h.sleep(2)  # and nothing more happens


async def _blip(h: Harness) -> None:
    await h.healthy()
    banner = h.sim.nodes[A].banner
    for _ in range(2):  # two short silences, each shorter than the duration threshold
        await banner.set_mode(BannerMode.WEDGED)
        await h.sleep(1.2)
        await banner.set_mode(BannerMode.SPEAK)
        await h.sleep(1.5)
    await h.sleep(3)


async def _slow_boot(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    # While its power is off, make the next boot and model load slow (the sim holds one
    # fault per node, and power-off clears the wedge).
    await h.sim.set_fault(A, NodeFault.SLOW_BOOT)
    slow_boot_until = h.t.boot_delay * h.t.slow_factor
    await h.wait_until(lambda: h.node_class(A) == "booting", 10, f"{A} to be booting")
    await h.sleep(slow_boot_until * h.speed)
    assert h.node_class(A) == "booting", "left the grace before the slow boot finished"
    await h.wait_until(lambda: h.node_class(A) == "healthy", 40, f"{A} to recover")
    await h.sleep(2)


def _config_fault(mode: VllmMode) -> Script:
    async def script(h: Harness) -> None:
        await h.healthy()
        await h.sim.set_endpoint_mode(mode)
        await h.wait_until(
            lambda: h.has_alert(CLUSTER, "misconfigured"), 25, "the misconfigured alert"
        )
        await h.sleep(3)

    return script


async def _engine_stuck(h: Harness) -> None:
    await h.healthy()
    await h.sim.set_endpoint_mode(VllmMode.ENGINE_STUCK)
    await h.wait_until(lambda: h.has_alert(CLUSTER, "degraded"), 25, "the degraded alert")
    await h.sleep(3)


async def _blind(h: Harness) -> None:
    await h.healthy()
    await h.witness.go_silent()
    for node in (A, B):
        await h.sim.nodes[node].plug.set_fault(PlugFault.DOWN)
        await h.sim.wedge(node)
    await h.wait_until(lambda: h.has_alert("watchdog", "blind"), 25, "the blind alert")
    await h.sleep(4)


async def _boot_loop(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    await h.sim.set_fault(A, NodeFault.BOOT_LOOP)  # from now on it never comes back
    await h.wait_until(lambda: h.is_latched(A), 60, f"{A} to be given up")
    await h.restart_daemon()  # the latch survives a daemon restart
    await h.sleep(3)


async def _both(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.sim.wedge(B)
    await h.wait_until(lambda: h.offs(A) >= 1 and h.offs(B) >= 1, 40, "both to be cycled")
    await h.wait_until(
        lambda: h.node_class(A) == "healthy" == h.node_class(B), 40, "both to recover"
    )


async def _killed(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    h.kill_daemon()  # kill -9 between off and on
    await h.sleep(0.5)
    assert not h.sim.nodes[A].plug.is_on(h.sim.nodes[A].outlet), "plug came on by itself"
    await h.start_daemon()
    await h.wait_until(
        lambda: h.sim.nodes[A].plug.is_on(h.sim.nodes[A].outlet),
        10,
        "the restarted daemon to switch the plug on",
    )
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


async def _plug_down(h: Harness) -> None:
    await h.healthy()
    plug = h.sim.nodes[A].plug
    await plug.set_fault(PlugFault.DOWN)
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.has_alert(A, "plug"), 25, "the plug alert")
    await h.sleep(3)
    assert h.offs(A) == 0, "cycled through an unreachable plug?"
    await plug.set_fault(PlugFault.NONE)  # the plug comes back: retried later
    await h.wait_until(lambda: h.offs(A) >= 1, 30, f"{A} to be cycled once its plug answers")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


async def _maintenance(h: Harness) -> None:
    await h.healthy()
    req = control.new_request(control.Op.PAUSE, A, now=0.0)
    control.submit(h.state_dir, req)
    resp = await control.wait_response(h.state_dir, req.id, timeout=5)
    assert resp is not None and resp.ok, resp
    await h.sim.wedge(A)
    await h.sleep(8)  # far past the thresholds: no action, no page
    assert h.offs(A) == 0 and not h.alerts(), "acted on a node in maintenance"
    req = control.new_request(control.Op.RESUME, A, now=0.0)
    control.submit(h.state_dir, req)
    await control.wait_response(h.state_dir, req.id, timeout=5)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be cycled after resume")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


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
            _wedge_one,
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
            _blip,
            (cycles(spark_1=0, spark_2=0), no_page),
        ),
        Scenario(
            "slow-boot",
            "S3",
            "A slow boot after a cycle",
            "spark-1 wedges; after its power cycle, boot and model load take 3x longer",
            "one cycle, then waits out the boot and serve grace: no second cycle",
            _slow_boot,
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
                _config_fault(mode),
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
            _engine_stuck,
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
            _blind,
            (
                cycles(spark_1=0, spark_2=0),
                paged("watchdog", "blind"),
                only_pages(("watchdog", "blind"), (A, "plug"), (B, "plug")),
            ),
        ),
        Scenario(
            "boot-loop",
            "S7",
            "A boot loop",
            "spark-1 wedges and never comes back after a power cycle",
            "cycles stop at the budget (2 here); a given-up page; latched across a restart",
            _boot_loop,
            (cycles(spark_1=2, spark_2=0), paged(A, "given_up"), latched(A), powered_on_at_end),
            timings=Timings(max_cycles=2, boot_timeout=5.0, serve_timeout=10.0),
        ),
        Scenario(
            "both-wedged",
            "S8",
            "Both nodes wedge at once",
            "both nodes of the TP=2 pair wedge together (plugs and witness answer)",
            "both cycled, one at a time",
            _both,
            (cycles(spark_1=1, spark_2=1), one_at_a_time, powered_on_at_end),
        ),
        Scenario(
            "killed",
            "S9",
            "The watchdog is killed mid-cycle",
            "the daemon is killed with SIGKILL between switching spark-1 off and on",
            "at its next start it switches the plug on before anything else",
            _killed,
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
            _plug_down,
            (cycles(spark_1=1, spark_2=0), paged(A, "plug"), powered_on_at_end),
        ),
        Scenario(
            "maintenance",
            "S13",
            "A node in maintenance",
            "an operator pauses spark-1, which then wedges; later the operator resumes it",
            "no action and no page while paused; after resume it is cycled",
            _maintenance,
            (cycles(spark_1=1, spark_2=0), powered_on_at_end),
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
) -> tuple[Outcome, list[str]]:
    """Run one scenario; return what happened and what did not go as expected."""
    async with Harness(
        workdir,
        speed=speed,
        timings=sc.timings,
        narrate=narrate,
        subprocess_daemon=sc.subprocess_daemon,
        daemon_logging=daemon_logging,
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
