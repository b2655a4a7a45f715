"""The clock re-judges a node only while its verdict can change with time alone.

The engine's tick evaluates the nodes :class:`watchdog.core.incremental.Scope` keeps in its
``watch`` set. A verdict that is a fixed point in time (``ssh_down`` with serving proved, given
up, paused for good, degraded with its thresholds met) leaves that set, and its reason says what
the evidence shows rather than how long ago, so its record does not change from tick to tick. New
evidence brings it back: the node is judged again by the probe result itself.
"""

from __future__ import annotations

from dataclasses import replace

from test_policy import CFG, T0, alerts, healthy_fleet, r, ssh_fail

from watchdog.core import lifecycle
from watchdog.core.evidence import FleetState, observe_endpoint, observe_node
from watchdog.core.incremental import Scope, members_index
from watchdog.core.model import AlertStatus, Condition, FailureKind, NodeClass, ProbeKind
from watchdog.core.policy import Decision, evaluate

MEMBERS = ("a", "b")
FAILS = [T0 + 1, T0 + 31, T0 + 61]  # three failures over 60 s: the default thresholds


class Keeper:
    """What the engine's fleet keeper does with a scope: observe, evaluate what changed."""

    def __init__(self, fleet: FleetState) -> None:
        self.scope = Scope(members_index(fleet))
        self.fleet = fleet
        self.run(None, T0)

    def run(self, changed: set[str] | tuple[str, ...] | None, now: float) -> Decision:
        decision, _ = self.scope.evaluate(self.fleet, changed, cfg=CFG, now=now)
        self.fleet = decision.fleet
        return decision

    def tick(self, now: float) -> Decision:
        return self.run(set(self.scope.watch), now)


def ssh_down_keeper() -> Keeper:
    """Node a's sshd silent past the thresholds while the endpoint serves tool calls."""
    keeper = Keeper(healthy_fleet())
    for i, t in enumerate(FAILS):
        keeper.fleet = observe_node(keeper.fleet, "a", r(ProbeKind.SSH, FailureKind.NO_BANNER), t)
        keeper.run({"a"}, t)
        if i == 0:  # the tool call asked at once completes 12 s later
            call = r(ProbeKind.TOOL_CALL)
            keeper.fleet = observe_endpoint(keeper.fleet, "spark", call, t + 12)
            keeper.run(MEMBERS, t + 12)
    assert keeper.fleet.node("a").cls is NodeClass.SSH_DOWN
    return keeper


def test_an_ssh_down_reason_says_what_the_evidence_shows_not_how_long_ago() -> None:
    f = ssh_fail(healthy_fleet(), "a", FAILS, FailureKind.REFUSED, serving=True)
    early, late = (evaluate(f, now, CFG).fleet.node("a") for now in (T0 + 61, T0 + 3600))
    assert early.cls is late.cls is NodeClass.SSH_DOWN
    assert early.reason == late.reason
    assert early.reason.startswith("ssh refused 3x over 60s, but the endpoint completed a tool")
    assert "0s after ssh began failing" in early.reason


def test_a_wedge_reason_counts_the_failures_over_the_span_they_cover() -> None:
    f = ssh_fail(healthy_fleet(), "a", FAILS, serving=False)
    d = evaluate(f, T0 + 75, CFG)
    assert d.fleet.node("a").cls is NodeClass.CYCLING
    assert "ssh no_banner 3x over 60s" in d.fleet.node("a").reason


def test_an_ssh_down_node_leaves_the_clocks_watch_and_its_record_stays_as_it_is() -> None:
    keeper = ssh_down_keeper()
    record = keeper.fleet.node("a")
    assert "12s after ssh began failing" in record.reason
    assert "a" not in keeper.scope.watch
    for now in range(int(T0) + 62, int(T0) + 400, 7):
        d = keeper.tick(float(now))
        assert d.fleet.node("a") is record and not d.transitions and not d.actions
    # A full evaluation much later judges it just the same.
    assert evaluate(keeper.fleet, T0 + 3600, CFG).fleet.node("a") == record


def test_an_ssh_down_node_whose_tool_call_fails_is_judged_again_and_back_on_the_clock() -> None:
    keeper = ssh_down_keeper()
    now = T0 + 100
    keeper.fleet = observe_endpoint(
        keeper.fleet, "spark", r(ProbeKind.TOOL_CALL, FailureKind.TIMEOUT), now
    )
    keeper.run(MEMBERS, now)
    assert keeper.fleet.node("a").cls is not NodeClass.SSH_DOWN
    assert "a" in keeper.scope.watch


def test_an_ssh_down_node_whose_sshd_answers_again_is_healthy_and_its_page_resolves() -> None:
    keeper = ssh_down_keeper()
    assert Condition.SSH_DOWN in keeper.fleet.node("a").open_alerts
    now = T0 + 100
    keeper.fleet = observe_node(keeper.fleet, "a", r(ProbeKind.SSH), now)
    d = keeper.run({"a"}, now)
    assert keeper.fleet.node("a").cls is NodeClass.HEALTHY
    assert alerts(d) == [("a", Condition.SSH_DOWN, AlertStatus.RESOLVE)]


def test_a_timed_pause_keeps_a_node_on_the_clock_and_a_pause_for_good_does_not() -> None:
    keeper = ssh_down_keeper()
    now = T0 + 100
    keeper.fleet = lifecycle.pause(keeper.fleet, "a", until=now + 30, now=now)
    keeper.run(None, now)  # an operator request: the engine evaluates every node
    assert keeper.fleet.node("a").cls is NodeClass.MAINTENANCE and "a" in keeper.scope.watch
    keeper.tick(now + 31)  # the pause ended: judged again by the clock alone
    assert keeper.fleet.node("a").cls is NodeClass.SSH_DOWN and "a" not in keeper.scope.watch
    keeper.fleet = lifecycle.pause(keeper.fleet, "a", until=None, now=now + 40)
    keeper.run(None, now + 40)
    assert keeper.fleet.node("a").cls is NodeClass.MAINTENANCE and "a" not in keeper.scope.watch


def test_a_node_failing_below_the_thresholds_stays_on_the_clock() -> None:
    keeper = Keeper(healthy_fleet())
    keeper.fleet = observe_node(keeper.fleet, "a", r(ProbeKind.SSH, FailureKind.NO_BANNER), T0 + 1)
    keeper.fleet = observe_endpoint(keeper.fleet, "spark", r(ProbeKind.TOOL_CALL), T0 + 2)
    keeper.run(MEMBERS, T0 + 2)
    assert keeper.fleet.node("a").cls is NodeClass.SUSPECT and "a" in keeper.scope.watch


def test_a_given_up_node_is_off_the_clock_unless_a_power_action_is_in_flight() -> None:
    f = healthy_fleet()
    given_up = replace(f.node("a"), latched=True, latched_reason="gave up", cycles=(T0,))
    keeper = Keeper(f.with_node(given_up))
    assert keeper.fleet.node("a").cls is NodeClass.GIVEN_UP and "a" not in keeper.scope.watch
    keeper.fleet = lifecycle.manual_cycle(keeper.fleet, "a", now=T0 + 5, cfg=CFG).fleet
    keeper.run(None, T0 + 5)
    assert "a" in keeper.scope.watch  # the in-flight slot is counted from the watch set


def test_a_degraded_endpoint_is_off_the_clock_once_its_thresholds_are_met() -> None:
    keeper = Keeper(healthy_fleet())
    for t in FAILS:
        failed = r(ProbeKind.HEALTH, FailureKind.ENGINE_DEAD)
        keeper.fleet = observe_endpoint(keeper.fleet, "spark", failed, t)
        keeper.run(MEMBERS, t)
        if t < FAILS[-1]:
            assert keeper.fleet.node("a").cls is NodeClass.SUSPECT and "a" in keeper.scope.watch
    assert keeper.fleet.node("a").cls is NodeClass.DEGRADED
    assert not keeper.scope.watch & set(MEMBERS)
