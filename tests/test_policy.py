"""The pure policy: tables of (state, observations, now) -> decision, one rule at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from watchdog.config import Config, parse_config
from watchdog.core import lifecycle
from watchdog.core.alert_events import WATCHDOG_NODE
from watchdog.core.evidence import (
    FleetState,
    initial_fleet,
    observe_endpoint,
    observe_link,
    observe_node,
    observe_plug,
    observe_witness,
)
from watchdog.core.model import (
    ActionKind,
    AlertAction,
    AlertStatus,
    Condition,
    FailureKind,
    NodeClass,
    PlugReading,
    PowerAction,
    ProbeKind,
    ProbeResult,
)
from watchdog.core.policy import Decision, evaluate

T0 = 1_000_000.0


DEFAULT_POLICY = {
    "failure_threshold": 3,
    "failure_duration": "60s",
    "startup_timeout": "10m",
    "boot_timeout": "10m",
    "serve_timeout": "30m",
    "max_cycles": 3,
    "cycle_window": "6h",
    "backoff": "5m",
}


def make_cfg(witnesses: bool = True, **policy: object) -> Config:
    doc = {
        "watchdog": {"witnesses": [{"host": "127.0.0.9", "port": 53}] if witnesses else []},
        "policy": {**DEFAULT_POLICY, **policy},
        "clusters": [
            {
                "name": "spark",
                "endpoint": {"base_url": "http://127.0.0.1:8000", "model": "m"},
                "nodes": [
                    {
                        "name": "a",
                        "host": "127.0.0.2",
                        "plug": {"type": "kasa", "host": "127.0.0.3"},
                    },
                    {
                        "name": "b",
                        "host": "127.0.0.4",
                        "plug": {"type": "kasa", "host": "127.0.0.5"},
                    },
                ],
            }
        ],
    }
    return parse_config(yaml.safe_dump(doc), env={})


CFG = make_cfg()
ON = PlugReading(reachable=True, is_on=True, watts=90.0)


def r(probe: ProbeKind, failure: FailureKind | None = None) -> ProbeResult:
    return ProbeResult(probe, "t", failure, 0.0, detail="d", hint=f"hint-{failure}")


def healthy_fleet(now: float = T0) -> FleetState:
    """Both nodes seen healthy, plugs on, witness and link fine, endpoint serving."""
    f = initial_fleet({"a": "spark", "b": "spark"}, now)
    f = observe_link(f, True)
    f = observe_witness(f, r(ProbeKind.WITNESS), now)
    for n in ("a", "b"):
        f = observe_node(f, n, r(ProbeKind.SSH), now)
        f = observe_plug(f, n, ON, now)
    for p in (ProbeKind.HEALTH, ProbeKind.MODELS, ProbeKind.TOOL_CALL):
        f = observe_endpoint(f, "spark", r(p), now)
    return evaluate(f, now, CFG).fleet


def ssh_fail(
    f: FleetState,
    node: str,
    times: list[float],
    kind: FailureKind = FailureKind.NO_BANNER,
    *,
    serving: bool | None = False,
) -> FleetState:
    """sshd fails at ``times``; its plug is read each time. ``serving``: what the tool call
    asked at the first failure says (False: it times out; None: no answer yet)."""
    for i, t in enumerate(times):
        f = observe_node(f, node, r(ProbeKind.SSH, kind), t)
        if i == 0 and serving is not None:
            call = r(ProbeKind.TOOL_CALL, None if serving else FailureKind.TIMEOUT)
            f = observe_endpoint(f, f.node(node).cluster, call, t)
        f = observe_plug(f, node, f.node(node).plug or ON, t)
    return f


def dark(f: FleetState, node: str, t: float) -> FleetState:
    return observe_plug(f, node, DOWN, t)


def power(d: Decision) -> list[PowerAction]:
    return [a for a in d.actions if isinstance(a, PowerAction)]


def alerts(d: Decision) -> list[tuple[str, Condition, AlertStatus]]:
    return [
        (a.event.node, a.event.condition, a.event.status)
        for a in d.actions
        if isinstance(a, AlertAction)
    ]


def finished(
    f: FleetState,
    node: str,
    now: float,
    *,
    ok: bool = True,
    touched: bool = True,
    left_off: bool = False,
) -> FleetState:
    """The daemon reports a power cycle of ``node`` done (by default: it went well)."""
    return lifecycle.power_finished(
        f, node, kind=ActionKind.POWER_CYCLE, ok=ok, touched=touched, left_off=left_off, now=now
    )


def wedge(f: FleetState, node: str = "a", start: float = T0 + 1, cfg: Config = CFG) -> Decision:
    """sshd silent past the thresholds, the tool call asked at once fails (nothing serves), and
    the plug is read during the failure: a wedge."""
    f = ssh_fail(f, node, [start, start + 30, start + 61])
    return evaluate(f, start + 61, cfg)


# --------------------------------------------------------------------------- thresholds
def test_it_keeps_a_healthy_fleet_healthy_and_quiet() -> None:
    d = evaluate(healthy_fleet(), T0 + 1, CFG)
    assert {n.cls for n in d.fleet.nodes.values()} == {NodeClass.HEALTHY}
    assert d.actions == ()


@pytest.mark.parametrize(
    ("times", "now", "expected"),
    [
        ([T0 + 1], T0 + 1, NodeClass.SUSPECT),  # one blip
        ([T0 + 1, T0 + 5], T0 + 5, NodeClass.SUSPECT),  # two blips
        ([T0 + 1, T0 + 5, T0 + 10], T0 + 10, NodeClass.SUSPECT),  # count met, duration not
        ([T0 + 1, T0 + 70], T0 + 70, NodeClass.SUSPECT),  # duration met, count not
        ([T0 + 1, T0 + 30, T0 + 61], T0 + 61, NodeClass.CYCLING),  # both met: acts
    ],
)
def test_it_needs_count_and_duration_before_acting(
    times: list[float], now: float, expected: NodeClass
) -> None:
    d = evaluate(ssh_fail(healthy_fleet(), "a", times), now, CFG)
    assert d.fleet.node("a").cls is expected
    assert bool(power(d)) is (expected is NodeClass.CYCLING)


def test_a_blip_asks_for_a_confirmation_burst_and_pages_nobody() -> None:
    d = evaluate(ssh_fail(healthy_fleet(), "a", [T0 + 1]), T0 + 1, CFG)
    assert d.confirm == frozenset({"a"})
    assert alerts(d) == []


def test_a_success_resets_the_failure_streak() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30])
    f = observe_node(f, "a", r(ProbeKind.SSH), T0 + 40)
    f = ssh_fail(f, "a", [T0 + 62])
    d = evaluate(f, T0 + 62, CFG)
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and not power(d)


def test_it_cycles_a_wedged_node_once_and_pages_wedged() -> None:
    d = wedge(healthy_fleet())
    assert power(d) == [
        PowerAction(ActionKind.POWER_CYCLE, "a", d.fleet.node("a").reason.split(": ", 1)[1])
    ]
    assert ("a", Condition.WEDGED, AlertStatus.TRIGGER) in alerts(d)
    # Evaluating again while the cycle is in flight does not start another one.
    d2 = evaluate(ssh_fail(d.fleet, "a", [T0 + 70]), T0 + 70, CFG)
    assert power(d2) == [] and d2.fleet.node("a").cls is NodeClass.CYCLING


def test_a_wrong_banner_is_misconfigured_not_wedged() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], FailureKind.BAD_BANNER)
    d = evaluate(f, T0 + 61, CFG)
    assert d.fleet.node("a").cls is NodeClass.MISCONFIGURED and not power(d)


# --------------------------------------------------------------------------- arming
def test_an_unarmed_node_is_not_judged_until_the_startup_timeout() -> None:
    f = initial_fleet({"a": "spark", "b": "spark"}, T0)
    f = observe_witness(observe_link(f, True), r(ProbeKind.WITNESS), T0)
    for n in ("a", "b"):
        f = observe_plug(f, n, ON, T0)
    f = observe_node(f, "b", r(ProbeKind.SSH), T0)
    f = ssh_fail(f, "a", [T0 + 1, T0 + 30, T0 + 61])
    d = evaluate(f, T0 + 61, CFG)
    assert d.fleet.node("a").cls is NodeClass.UNKNOWN and not power(d)
    f = ssh_fail(d.fleet, "a", [T0 + 601])
    d = evaluate(f, T0 + 601, CFG)
    assert d.fleet.node("a").cls is NodeClass.CYCLING and power(d)


# --------------------------------------------------------------------------- sight
DOWN = PlugReading(reachable=False, failure=FailureKind.PLUG_UNREACHABLE, detail="refused")


def test_an_unreachable_plug_blocks_any_verdict_and_pages_about_the_plug() -> None:
    # Without its plug the watchdog cannot tell a wedge from a dark network segment: the node
    # is not judged (no wedge page, no cycle); the plug is paged, since the rest can be seen.
    f = observe_plug(healthy_fleet(), "a", DOWN, T0 + 1)
    d = wedge(f)
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and not power(d)
    assert "plug does not answer" in d.fleet.node("a").reason
    assert alerts(d) == [("a", Condition.PLUG, AlertStatus.TRIGGER)]


def test_a_silent_witness_blocks_every_power_action() -> None:
    f = observe_witness(healthy_fleet(), r(ProbeKind.WITNESS, FailureKind.TIMEOUT), T0 + 50)
    d = wedge(f)
    assert not power(d) and "witness" in d.fleet.node("a").reason


def test_a_watchdog_that_cannot_see_declares_itself_blind_and_does_nothing() -> None:
    f = healthy_fleet()
    for t in (T0 + 1, T0 + 30, T0 + 61):
        f = observe_witness(f, r(ProbeKind.WITNESS, FailureKind.TIMEOUT), t)
    d = wedge(f)
    assert not power(d)
    assert d.fleet.node("a").cls is NodeClass.BLIND
    assert (WATCHDOG_NODE, Condition.BLIND, AlertStatus.TRIGGER) in alerts(d)
    assert not any(c is Condition.WEDGED for _, c, _ in alerts(d))


def test_its_own_link_down_makes_it_blind() -> None:
    d = wedge(observe_link(healthy_fleet(), False))
    assert not power(d) and d.fleet.node("a").cls is NodeClass.BLIND


def test_mass_failure_with_no_plug_answering_is_blind_without_witnesses() -> None:
    cfg = make_cfg(witnesses=False)
    f = healthy_fleet()
    dark = PlugReading(reachable=False, failure=FailureKind.PLUG_UNREACHABLE)
    for n in ("a", "b"):
        f = observe_plug(ssh_fail(f, n, [T0 + 1, T0 + 30, T0 + 61]), n, dark, T0 + 61)
    d = evaluate(f, T0 + 61, cfg)
    assert not power(d)
    assert {n.cls for n in d.fleet.nodes.values()} == {NodeClass.BLIND}


def test_both_nodes_wedged_with_plugs_answering_are_cycled_one_at_a_time() -> None:
    f = healthy_fleet()
    f = ssh_fail(f, "b", [T0 + 1, T0 + 30, T0 + 61])
    f = ssh_fail(f, "a", [T0 + 2, T0 + 31, T0 + 62])
    d = evaluate(f, T0 + 62, CFG)
    assert [p.node for p in power(d)] == ["b"]  # the longest-failing goes first
    assert "another power action" in d.fleet.node("a").reason
    f = finished(d.fleet, "b", T0 + 200)
    d = evaluate(ssh_fail(f, "a", [T0 + 201]), T0 + 201, CFG)
    assert [p.node for p in power(d)] == ["a"]


# --------------------------------------------------------------------------- grace
def after_cycle(now: float = T0 + 100) -> FleetState:
    d = wedge(healthy_fleet())
    return finished(d.fleet, "a", now)


def test_failures_inside_the_boot_grace_do_not_count() -> None:
    f = after_cycle()
    f = ssh_fail(f, "a", [T0 + 110 + i * 30 for i in range(15)], FailureKind.REFUSED)
    for t in (T0 + 120, T0 + 400):
        f = observe_endpoint(f, "spark", r(ProbeKind.HEALTH, FailureKind.REFUSED), t)
    d = evaluate(f, T0 + 650, CFG)
    assert d.fleet.node("a").cls is NodeClass.BOOTING and not power(d)


def test_a_slow_model_load_after_sshd_returns_stays_in_serve_grace() -> None:
    f = observe_node(after_cycle(), "a", r(ProbeKind.SSH), T0 + 300)
    f = observe_endpoint(f, "spark", r(ProbeKind.HEALTH, FailureKind.REFUSED), T0 + 1500)
    d = evaluate(f, T0 + 1500, CFG)
    assert d.fleet.node("a").cls is NodeClass.BOOTING and "model load" in d.fleet.node("a").reason


def test_recovery_is_confirmed_only_when_sshd_and_every_endpoint_probe_pass() -> None:
    f = observe_node(after_cycle(), "a", r(ProbeKind.SSH), T0 + 300)
    f = observe_endpoint(f, "spark", r(ProbeKind.HEALTH), T0 + 400)
    f = observe_endpoint(f, "spark", r(ProbeKind.MODELS), T0 + 400)
    assert evaluate(f, T0 + 400, CFG).fleet.node("a").cls is NodeClass.BOOTING
    f = evaluate(f, T0 + 400, CFG).fleet
    f = observe_endpoint(f, "spark", r(ProbeKind.TOOL_CALL), T0 + 420)
    d = evaluate(f, T0 + 420, CFG)
    assert d.fleet.node("a").cls is NodeClass.HEALTHY
    assert ("a", Condition.WEDGED, AlertStatus.RESOLVE) in alerts(d)


def test_a_node_that_never_boots_is_cycled_again_after_back_off_then_given_up() -> None:
    cfg = make_cfg(backoff="1s")
    d = wedge(healthy_fleet(), cfg=cfg)
    now = T0 + 61
    cycles = 1
    for _ in range(5):
        f = finished(d.fleet, "a", now + 70)
        now += 70 + 601  # boot_timeout passes, sshd never returns
        f = ssh_fail(f, "a", [now - 1])
        d = evaluate(f, now, cfg)
        if d.fleet.node("a").cls is NodeClass.GIVEN_UP:
            break
        assert power(d), d.fleet.node("a").reason
        cycles += 1
    assert cycles == 3
    assert d.fleet.node("a").latched
    assert ("a", Condition.GIVEN_UP, AlertStatus.TRIGGER) in alerts(d)
    # Latched: nothing more happens, however long it stays down.
    d = evaluate(ssh_fail(d.fleet, "a", [now + 3600]), now + 3600, cfg)
    assert d.fleet.node("a").cls is NodeClass.GIVEN_UP and not power(d)


def test_back_off_grows_between_cycles() -> None:
    cfg = make_cfg(backoff="20m", boot_timeout="1m", serve_timeout="2m")
    d = wedge(healthy_fleet(), cfg=cfg)
    f = finished(d.fleet, "a", T0 + 100)
    d = evaluate(ssh_fail(f, "a", [T0 + 200]), T0 + 200, cfg)  # boot failed, back-off 20 min
    assert not power(d) and "back-off" in d.fleet.node("a").reason
    d = evaluate(ssh_fail(d.fleet, "a", [T0 + 61 + 1201]), T0 + 61 + 1201, cfg)
    assert power(d)


def test_the_fleet_cap_limits_cycles_across_nodes() -> None:
    cfg = make_cfg(fleet_max_cycles=1)
    d = wedge(healthy_fleet(), cfg=cfg)
    f = finished(d.fleet, "a", T0 + 100)
    f = ssh_fail(f, "b", [T0 + 101, T0 + 130, T0 + 170])
    d = evaluate(f, T0 + 170, cfg)
    assert not power(d) and "fleet cap" in d.fleet.node("b").reason


# --------------------------------------------------------------------------- endpoint
@pytest.mark.parametrize(
    ("probe", "kind", "cls", "cond"),
    [
        (ProbeKind.MODELS, FailureKind.AUTH, NodeClass.MISCONFIGURED, Condition.MISCONFIGURED),
        (
            ProbeKind.MODELS,
            FailureKind.MODEL_MISSING,
            NodeClass.MISCONFIGURED,
            Condition.MISCONFIGURED,
        ),
        (
            ProbeKind.TOOL_CALL,
            FailureKind.NO_TOOL_CALL,
            NodeClass.MISCONFIGURED,
            Condition.MISCONFIGURED,
        ),
        (
            ProbeKind.TOOL_CALL,
            FailureKind.TRUNCATED,
            NodeClass.MISCONFIGURED,
            Condition.MISCONFIGURED,
        ),
        (
            ProbeKind.TOOL_CALL,
            FailureKind.REASONING_LEAK,
            NodeClass.MISCONFIGURED,
            Condition.MISCONFIGURED,
        ),
        (ProbeKind.TOOL_CALL, FailureKind.TIMEOUT, NodeClass.DEGRADED, Condition.DEGRADED),
        (ProbeKind.HEALTH, FailureKind.HTTP_STATUS, NodeClass.DEGRADED, Condition.DEGRADED),
    ],
)
def test_endpoint_faults_with_sshd_fine_are_alerted_never_powered(
    probe: ProbeKind, kind: FailureKind, cls: NodeClass, cond: Condition
) -> None:
    f = healthy_fleet()
    for t in (T0 + 1, T0 + 30, T0 + 61):
        f = observe_endpoint(f, "spark", r(probe, kind), t)
        for n in ("a", "b"):
            f = observe_node(f, n, r(ProbeKind.SSH), t)
    d = evaluate(f, T0 + 61, CFG)
    assert {n.cls for n in d.fleet.nodes.values()} == {cls}
    assert not power(d)
    events = [a.event for a in d.actions if isinstance(a, AlertAction)]
    assert [(e.node, e.condition, e.status) for e in events] == [
        ("spark", cond, AlertStatus.TRIGGER)
    ]
    assert events[0].failure is kind and events[0].todo == f"hint-{kind}"


def test_a_failing_endpoint_explained_by_a_wedged_member_is_not_paged_separately() -> None:
    f = healthy_fleet()
    for t in (T0 + 1, T0 + 30, T0 + 61):
        f = observe_endpoint(f, "spark", r(ProbeKind.TOOL_CALL, FailureKind.TIMEOUT), t)
        f = observe_node(f, "b", r(ProbeKind.SSH), t)
    d = wedge(f)
    assert [c for n, c, _ in alerts(d)] == [Condition.WEDGED]


# --------------------------------------------------------------------------- plug and power
def test_a_plug_reporting_off_is_alerted_not_switched_on_by_default() -> None:
    f = observe_plug(healthy_fleet(), "a", PlugReading(reachable=True, is_on=False), T0 + 1)
    d = wedge(f)
    assert d.fleet.node("a").cls is NodeClass.POWERED_OFF and not power(d)
    assert ("a", Condition.POWERED_OFF, AlertStatus.TRIGGER) in alerts(d)


def test_it_switches_a_powered_off_node_on_only_when_configured() -> None:
    cfg = make_cfg(power_on_if_off=True)
    f = observe_plug(healthy_fleet(), "a", PlugReading(reachable=True, is_on=False), T0 + 1)
    d = evaluate(f, T0 + 2, cfg)
    assert [p.kind for p in power(d)] == [ActionKind.POWER_ON]


def test_a_cycle_aborted_before_switching_refunds_the_budget() -> None:
    d = wedge(healthy_fleet())
    f = finished(d.fleet, "a", T0 + 70, ok=False, touched=False)
    assert f.node("a").cycles == () and f.fleet_cycles == ()


def test_a_node_left_off_by_a_failed_cycle_is_switched_on_even_past_the_budget() -> None:
    d = wedge(healthy_fleet())
    f = finished(d.fleet, "a", T0 + 70, ok=False, left_off=True)
    f = replace(f, nodes={**f.nodes, "a": replace(f.node("a"), cycles=(T0, T0 + 1, T0 + 2))})
    d = evaluate(f, T0 + 80, CFG)
    assert [p.kind for p in power(d)] == [ActionKind.POWER_ON]
    assert ("a", Condition.CYCLE_FAILED, AlertStatus.TRIGGER) in alerts(d)


# --------------------------------------------------------------------------- operators
def test_a_paused_node_is_neither_cycled_nor_paged_and_resumes_after() -> None:
    f = lifecycle.pause(healthy_fleet(), "a", until=T0 + 3600, now=T0)
    d = wedge(f)
    assert d.fleet.node("a").cls is NodeClass.MAINTENANCE and d.actions == ()
    f = ssh_fail(d.fleet, "a", [T0 + 3601])
    d = evaluate(f, T0 + 3601, CFG)  # the pause expired: judged again from its evidence
    assert d.fleet.node("a").cls is not NodeClass.MAINTENANCE and not d.fleet.node("a").paused


def test_resume_and_clear_refuse_what_makes_no_sense() -> None:
    f = healthy_fleet()
    with pytest.raises(lifecycle.Refused):
        lifecycle.resume(f, "a", now=T0)
    with pytest.raises(lifecycle.Refused):
        lifecycle.clear(f, "a")
    with pytest.raises(lifecycle.Refused, match="unknown node"):
        lifecycle.pause(f, "zz", until=None, now=T0)


def test_clear_unlatches_and_resets_the_budget() -> None:
    f = healthy_fleet()
    f = replace(
        f,
        nodes={
            **f.nodes,
            "a": replace(f.node("a"), latched=True, latched_reason="x", cycles=(T0,)),
        },
    )
    assert evaluate(f, T0 + 1, CFG).fleet.node("a").cls is NodeClass.GIVEN_UP
    f = lifecycle.clear(f, "a")
    assert not f.node("a").latched and f.node("a").cycles == ()


def test_a_manual_cycle_counts_against_the_budget_and_respects_in_flight() -> None:
    f = healthy_fleet()
    d = lifecycle.manual_cycle(f, "a", now=T0 + 1, cfg=CFG)
    assert power(d)[0].manual and d.fleet.node("a").cycles == (T0 + 1,)
    with pytest.raises(lifecycle.Refused, match="in flight"):
        lifecycle.manual_cycle(d.fleet, "b", now=T0 + 2, cfg=CFG)
    # A manual cycle of a healthy node pages nobody.
    assert alerts(evaluate(d.fleet, T0 + 2, CFG)) == []
