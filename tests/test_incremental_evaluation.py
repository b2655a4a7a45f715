"""Incremental evaluation equals a full one, over random sequences of observations.

Two drivers see the same events: one evaluates every node after each event (the policy as
table-tested in ``test_policy.py``), the other evaluates only what the event can change, as
the engine does (``watchdog.core.incremental``). After every event their fleets, transitions and
power actions must be equal, and the alerts they emitted at each instant the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.config import Config, parse_config
from watchdog.core import lifecycle
from watchdog.core.evidence import (
    FleetState,
    initial_fleet,
    observe_endpoint,
    observe_link,
    observe_node,
    observe_plug,
    observe_sweep,
    observe_witness,
)
from watchdog.core.incremental import Scope, members_index
from watchdog.core.model import (
    AlertAction,
    FailureKind,
    PlugReading,
    PowerAction,
    ProbeKind,
    ProbeResult,
)
from watchdog.core.policy import Decision, evaluate

T0 = 1_000_000.0
NODES = [f"n{i}" for i in range(6)]
CLUSTERS = {f"c{i}": NODES[2 * i : 2 * i + 2] for i in range(3)}


def make_cfg(witnesses: bool, power_on_if_off: bool, tool_call: bool = True) -> Config:
    """Without a tool call, each cluster's endpoint runs on its first node (which it can then
    prove alive by answering ``/health``)."""
    doc = {
        "watchdog": {"witnesses": [{"host": "127.0.0.9", "port": 53}] if witnesses else []},
        "policy": {
            "failure_threshold": 2,
            "failure_duration": "10s",
            "confirm_interval": "2s",
            "startup_timeout": "60s",
            "boot_timeout": "30s",
            "serve_timeout": "60s",
            "max_cycles": 2,
            "cycle_window": "10m",
            "backoff": "20s",
            "max_in_flight": 1,
            "fleet_max_cycles": 3,
            "fleet_window": "1h",
            "power_on_if_off": power_on_if_off,
        },
        "clusters": [
            {
                "name": c,
                "endpoint": {
                    "base_url": f"http://{nodes_host(2 * i) if not tool_call else '127.0.0.1'}",
                    "model": "m",
                    "tool_call": {"enabled": tool_call},
                },
                "nodes": [
                    {
                        "name": n,
                        "host": nodes_host(j),
                        "plug": {"type": "kasa", "host": f"127.0.2.{j + 1}"},
                    }
                    for j, n in enumerate(nodes, start=2 * i)
                ],
            }
            for i, (c, nodes) in enumerate(CLUSTERS.items())
        ],
    }
    return parse_config(yaml.safe_dump(doc), env={})


def nodes_host(j: int) -> str:
    return f"127.0.1.{j + 1}"


SSH_FAIL = st.sampled_from(
    [None, None, FailureKind.NO_BANNER, FailureKind.REFUSED, FailureKind.BAD_BANNER]
)
EP_FAIL = st.sampled_from(
    [
        None,
        None,
        FailureKind.TIMEOUT,
        FailureKind.REFUSED,
        FailureKind.AUTH,
        FailureKind.NO_TOOL_CALL,
    ]
)
READING = st.sampled_from(
    [
        PlugReading(reachable=True, is_on=True, watts=90.0),
        PlugReading(reachable=True, is_on=True, watts=90.0),
        PlugReading(reachable=True, is_on=False, watts=0.0),
        PlugReading(reachable=False, failure=FailureKind.PLUG_UNREACHABLE, detail="timeout"),
    ]
)
node = st.sampled_from(NODES)
EVENT = st.one_of(
    st.tuples(st.just("ssh"), node, SSH_FAIL),
    st.tuples(st.just("ssh"), node, SSH_FAIL),
    # The wedge signal, often enough that two nodes show it at once and a sweep is due.
    st.tuples(st.just("ssh"), node, st.just(FailureKind.NO_BANNER)),
    # A failure streak that meets the count and duration thresholds (expanded by ``steps``).
    st.tuples(
        st.just("streak"),
        node,
        st.sampled_from([FailureKind.NO_BANNER, FailureKind.REFUSED, FailureKind.BAD_BANNER]),
    ),
    st.tuples(
        st.just("streak"),
        st.sampled_from(list(CLUSTERS)),
        st.sampled_from([ProbeKind.HEALTH, ProbeKind.TOOL_CALL]),
        st.sampled_from([FailureKind.TIMEOUT, FailureKind.AUTH]),
    ),
    # Serving proved after sshd began failing: the node is ssh_down, a verdict fixed in time.
    st.tuples(st.just("endpoint"), st.sampled_from(list(CLUSTERS)), st.just(ProbeKind.TOOL_CALL)),
    st.tuples(st.just("ping"), node, st.sampled_from([None, FailureKind.TIMEOUT])),
    st.tuples(st.just("sweep")),
    st.tuples(
        st.just("endpoint"),
        st.sampled_from(list(CLUSTERS)),
        st.sampled_from([ProbeKind.HEALTH, ProbeKind.MODELS, ProbeKind.TOOL_CALL]),
        EP_FAIL,
    ),
    st.tuples(st.just("plug"), node, READING),
    st.tuples(st.just("witness"), st.booleans()),
    st.tuples(st.just("link"), st.sampled_from([True, True, True, False])),
    st.tuples(st.just("power_done"), node, st.booleans()),
    st.tuples(st.just("pause"), node, st.sampled_from([None, 5.0, 60.0])),
    st.tuples(st.just("resume"), node),
    st.tuples(st.just("clear"), node),
    st.tuples(st.just("hold"), st.sampled_from([None, None, "overloaded"])),
    st.tuples(st.just("tick"), st.floats(min_value=0.5, max_value=40.0)),
    st.tuples(st.just("tick"), st.floats(min_value=0.5, max_value=5.0)),
)


def result(probe: ProbeKind, failure: FailureKind | None) -> ProbeResult:
    return ProbeResult(probe, "t", failure, 0.01, detail=str(failure or "ok"))


@dataclass
class Incremental:
    """The engine's bookkeeping, without the engine."""

    cfg: Config
    fleet: FleetState
    scope: Scope = field(default_factory=lambda: Scope({}))

    def __post_init__(self) -> None:
        self.scope.reset(members_index(self.fleet))

    def run(
        self, changed: set[str] | tuple[str, ...] | None, now: float, hold: str | None
    ) -> Decision:
        decision, _ = self.scope.evaluate(self.fleet, changed, cfg=self.cfg, now=now, hold=hold)
        self.fleet = decision.fleet
        return decision


def alerts(d: Decision) -> set[tuple[str, str, str]]:
    return {
        (a.event.node, a.event.condition.value, a.event.status.value)
        for a in d.actions
        if isinstance(a, AlertAction)
    }


def power(d: Decision) -> list[PowerAction]:
    return [a for a in d.actions if isinstance(a, PowerAction)]


@settings(max_examples=500, deadline=None)
@given(
    witnesses=st.booleans(),
    power_on_if_off=st.booleans(),
    tool_call=st.sampled_from([True, True, False]),
    warm=st.booleans(),
    past=st.dictionaries(node, st.sampled_from(["given_up", "cycled", "off"]), max_size=3),
    events=st.lists(EVENT, min_size=1, max_size=80),
)
def test_incremental_evaluation_equals_a_full_one(
    witnesses: bool,
    power_on_if_off: bool,
    tool_call: bool,
    warm: bool,
    past: dict[str, str],
    events: list[tuple[object, ...]],
) -> None:
    cfg = make_cfg(witnesses, power_on_if_off, tool_call)
    members = {n: c for c, ns in CLUSTERS.items() for n in ns}
    now = T0
    full = initial_fleet(members, now)
    if warm:  # every probe passed once since start-up: the fleet is healthy from the start
        full, now = warmed(full, now)
    full = with_past(full, past, now)
    inc = Incremental(cfg, full)
    hold: str | None = None
    first = evaluate(full, now, cfg)
    full = first.fleet
    inc.run(None, now, hold)
    assert inc.fleet == full
    seen_full: set[tuple[str, str, str]] = set()
    seen_inc: set[tuple[str, str, str]] = set()
    for ev in steps(events):
        kind = ev[0]
        changed: set[str] | tuple[str, ...] | None
        if kind == "tick":
            assert seen_inc == seen_full, f"alerts at {now - T0:.1f}s differ"
            seen_full, seen_inc = set(), set()
            now += float(ev[1])  # type: ignore[arg-type]
            changed = set(inc.scope.watch)
        elif kind == "hold":
            hold = ev[1]  # type: ignore[assignment]
            changed = ()
        else:
            before = full
            full, changed = apply(ev, full, now, cfg)
            if full is before and changed == ():
                continue  # nothing happened (e.g. a power action that is not in flight)
            inc.fleet = full if changed is None else apply(ev, inc.fleet, now, cfg)[0]
        d_full = evaluate(full, now, cfg, hold=hold)
        d_inc = inc.run(changed, now, hold)
        full = d_full.fleet
        assert inc.fleet == full, f"after {ev!r} at {now - T0:.1f}s"
        assert {(t.node, t.old, t.new) for t in d_inc.transitions} == {
            (t.node, t.old, t.new) for t in d_full.transitions
        }
        assert power(d_inc) == power(d_full)
        if kind == "tick":  # the clock re-judges every node that asks for a probe
            assert d_full.confirm <= d_inc.confirm and d_full.prove <= d_inc.prove
        seen_full |= alerts(d_full)
        seen_inc |= alerts(d_inc)
    assert seen_inc == seen_full


def with_past(fleet: FleetState, past: dict[str, str], now: float) -> FleetState:
    """Nodes given up or power-cycled just before a restart, as loaded from disk: back-off,
    budget and fleet cap are running ("off": its plug then read off)."""
    for name, what in sorted(past.items()):
        st_ = fleet.nodes[name]
        if what == "given_up":
            reason = "gave up: 2 power cycles within 600s"
            st_ = replace(st_, latched=True, latched_reason=reason, cycles=(T0 - 60,))
        else:
            st_ = replace(st_, cycles=(T0 - 5,))
            fleet = replace(fleet, fleet_cycles=(*fleet.fleet_cycles, (name, T0 - 5)))
        fleet = fleet.with_node(st_)
        if what == "off":
            fleet = observe_plug(fleet, name, PlugReading(reachable=True, is_on=False), now)
    return fleet


def steps(events: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The events, with each failure streak spelled out as the probes and ticks it takes."""
    out: list[tuple[object, ...]] = []
    for ev in events:
        if ev[0] == "streak":
            probe = ("ssh" if len(ev) == 3 else "endpoint", *ev[1:])
            out += [probe, ("tick", 6.0), probe, ("tick", 6.0), probe]
        else:
            out.append(ev)
    return out


def warmed(fleet: FleetState, now: float) -> tuple[FleetState, float]:
    """``fleet`` once every probe passed, begun after start-up (and the time it is then)."""
    now += 1.0
    for name in fleet.nodes:
        fleet = observe_node(fleet, name, result(ProbeKind.SSH, None), now)
        fleet = observe_plug(fleet, name, PlugReading(reachable=True, is_on=True), now)
    for cluster in CLUSTERS:
        for probe in (ProbeKind.HEALTH, ProbeKind.MODELS, ProbeKind.TOOL_CALL):
            fleet = observe_endpoint(fleet, cluster, result(probe, None), now)
    return fleet, now


def apply(
    ev: tuple[object, ...], fleet: FleetState, now: float, cfg: Config
) -> tuple[FleetState, set[str] | tuple[str, ...] | None]:
    """One event on ``fleet``, and which nodes the engine would say it touched."""
    kind = ev[0]
    if kind == "ssh":
        name, failure = str(ev[1]), ev[2]
        return observe_node(fleet, name, result(ProbeKind.SSH, failure), now), {name}  # type: ignore[arg-type]
    if kind == "ping":
        name, failure = str(ev[1]), ev[2]
        return observe_node(fleet, name, result(ProbeKind.PING, failure), now), {name}  # type: ignore[arg-type]
    if kind == "endpoint":
        cluster = str(ev[1])
        res = result(ev[2], ev[3] if len(ev) > 3 else None)  # type: ignore[arg-type]
        return observe_endpoint(fleet, cluster, res, now), set(CLUSTERS[cluster])
    if kind == "plug":
        return observe_plug(fleet, str(ev[1]), ev[2], now), {str(ev[1])}  # type: ignore[arg-type]
    if kind == "witness":
        res = result(ProbeKind.WITNESS, None if ev[1] else FailureKind.TIMEOUT)
        return observe_witness(fleet, res, now), ()
    if kind == "link":
        return observe_link(fleet, bool(ev[1])), ()
    if kind == "sweep":  # every plug read at once; the engine then evaluates every node
        for name in fleet.nodes:
            fleet = observe_plug(fleet, name, PlugReading(reachable=True, is_on=True), now)
        return observe_sweep(fleet, now), None
    name = str(ev[1])
    # What reaches the engine through an operator request or a finished power action is
    # followed by a full evaluation there (tick after a request; _power_done).
    if kind == "power_done":
        st_ = fleet.nodes[name]
        if st_.cycling_since is None or st_.power_kind is None:
            return fleet, ()
        ok = bool(ev[2])
        out = lifecycle.power_finished(
            fleet, name, kind=st_.power_kind, ok=ok, touched=True, left_off=not ok, now=now
        )
        return out, None
    try:
        if kind == "pause":
            until = None if ev[2] is None else now + float(ev[2])  # type: ignore[arg-type]
            return lifecycle.pause(fleet, name, until=until, now=now), None
        if kind == "resume":
            return lifecycle.resume(fleet, name, now=now), None
        if kind == "clear":
            return lifecycle.clear(fleet, name), None
    except lifecycle.Refused:
        return fleet, ()
    raise AssertionError(kind)


def test_power_actions_compete_oldest_failure_first_when_only_the_newest_is_evaluated() -> None:
    """Two nodes wedged: the one whose failure is older gets the single in-flight slot,
    even when the evaluation was triggered by the other one's probe."""
    cfg = make_cfg(witnesses=False, power_on_if_off=False)
    members = {n: c for c, ns in CLUSTERS.items() for n in ns}
    fleet = initial_fleet(members, T0)
    inc = Incremental(cfg, fleet)
    inc.run(None, T0, None)
    for name in NODES:
        inc.fleet = observe_node(inc.fleet, name, result(ProbeKind.SSH, None), T0)
        inc.fleet = observe_plug(inc.fleet, name, PlugReading(reachable=True, is_on=True), T0)
    inc.run(None, T0, None)
    now = T0 + 1
    fail = result(ProbeKind.SSH, FailureKind.NO_BANNER)
    inc.fleet = observe_node(inc.fleet, "n0", fail, now)  # n0 fails first
    inc.run({"n0"}, now, None)
    inc.fleet = observe_node(inc.fleet, "n3", fail, now + 1)
    inc.run({"n3"}, now + 1, None)
    # The tool calls asked at once fail (nothing serves), and every plug is read (the sweep
    # two failing nodes ask for): the policy may now act.
    for c in ("c0", "c1"):
        call = result(ProbeKind.TOOL_CALL, FailureKind.TIMEOUT)
        inc.fleet = observe_endpoint(inc.fleet, c, call, now + 2)
        inc.run(set(CLUSTERS[c]), now + 2, None)
    for name in NODES:
        inc.fleet = observe_plug(inc.fleet, name, PlugReading(reachable=True, is_on=True), now + 2)
        inc.run({name}, now + 2, None)
    now += 20
    inc.fleet = observe_node(inc.fleet, "n0", fail, now)
    # Only n3's probe arrives once both met the thresholds: n0 still goes first.
    inc.fleet = observe_node(inc.fleet, "n3", fail, now)
    d = inc.run({"n3"}, now, None)
    assert [a.node for a in power(d)] == ["n0"]
    assert inc.fleet.nodes["n0"].cycling_since == now
