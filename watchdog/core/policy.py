"""The decision policy: classify every node and decide actions, purely.

``evaluate(fleet, now, cfg) -> Decision`` is the whole state machine. No I/O, no asyncio, no
clock, no logging: time is an argument and the output is values (new state, transitions with
their reasons, actions, and the probes the engine should run at once). Lifecycle events the
daemon reports back live in :mod:`watchdog.core.lifecycle`.

This module orchestrates one evaluation and owns the gates; the parts it composes are
:mod:`watchdog.core.sight` (blindness, sight, the plug sweep: the fleet-wide facts),
:mod:`watchdog.core.classify` (one node's verdict) and :mod:`watchdog.core.proof` (what the
endpoint proves about serving); alerts come from :mod:`watchdog.core.paging`.

The safety rules, each a tested behaviour (docs/design.md, "Decision rules"):
- count *and* duration thresholds before a node is judged wedged (suspect meanwhile, with a
  confirmation burst); a node is not judged before it is armed;
- serving vetoes power: when sshd fails, the cluster's endpoint is asked for a real tool call
  at once (``Decision.prove``); one that succeeds after the ssh failure began makes the node
  ``ssh_down`` (alert, never power), and no wedge verdict is given while that answer is due;
- fresh evidence only: a node is seen only while the fleet is not blind and its plug answers;
  when sight returns its failure streak starts again from zero and it is not judged (its class
  and pages are held) until it has been probed afresh; a wedge verdict needs a plug reading
  taken after the ssh failure began;
- when two or more nodes turn suspect on ssh within one confirm interval, every plug is read
  (``Decision.sweep``) before any power action, so a blind watchdog is recognised first;
- boot and serve grace after a cycle: failures inside the grace do not count;
- per-node budget with growing back-off, then a latch only an operator clears;
- at most ``max_in_flight`` power actions at once and a fleet-wide cap per window;
- no action at all when the watchdog cannot see (own link down, witnesses silent, or the
  node's plug unreachable).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from watchdog.config import Config
from watchdog.core.classify import _classify, _Verdict
from watchdog.core.evidence import FleetState, NodeState
from watchdog.core.model import (
    Action,
    ActionKind,
    Blocked,
    Blocker,
    NodeClass,
    PowerAction,
    Transition,
)
from watchdog.core.paging import derive_alerts
from watchdog.core.proof import _cluster_verified
from watchdog.core.records import replace
from watchdog.core.sight import FleetFacts, _blind_reason, _sight, _sight_returned, _sweep_needed


@dataclass(frozen=True, slots=True)
class Decision:
    fleet: FleetState
    transitions: tuple[Transition, ...] = ()
    actions: tuple[Action, ...] = ()
    confirm: frozenset[str] = frozenset()  # nodes to re-probe at confirm_interval
    prove: frozenset[str] = frozenset()  # clusters to ask for a real tool call now
    sweep: bool = False  # read every plug now, before any power action


# --------------------------------------------------------------------------- evaluate
def evaluate(
    fleet: FleetState,
    now: float,
    cfg: Config,
    *,
    only: Collection[str] | None = None,
    members: Mapping[str, Sequence[str]] | None = None,
    hold: str | None = None,
    sweep: bool | None = None,
) -> Decision:
    """Classify every node, apply the safety gates, and derive alerts from the classes.

    ``only`` restricts the work to those nodes (and their clusters' alerts; ``members`` maps
    a cluster to its nodes so that needs no scan): :mod:`watchdog.core.incremental` says which
    nodes a change can affect. ``hold`` is a reason the watchdog cannot trust what it sees
    other than blindness (it is overloaded): nodes with failing evidence are judged blind.
    ``sweep``: whether a plug sweep is due, when the caller already knows it (None: find out).
    """
    blind = _blind_reason(fleet, cfg, now)
    judge_blind = blind or hold  # overloaded: what fails may be our own fault
    if judge_blind is None and fleet.blind_since is not None:
        fleet = _sight_returned(fleet, now)
    if (judge_blind is None) != (fleet.blind_since is None):
        fleet = replace(fleet, blind_since=None if judge_blind is None else now)
    facts = FleetFacts(
        judge_blind,
        bool(cfg.watchdog.witnesses and fleet.witness.failing),
        _sweep_needed(fleet, cfg, now) if sweep is None else sweep,
    )
    gate_hold = None
    if judge_blind is not None:
        gate_hold = Blocked(Blocker.BLIND, f"cannot act: {judge_blind}")
    elif facts.witness_misses:
        gate_hold = Blocked(Blocker.WITNESS, "cannot act: a witness is not answering")
    elif facts.sweep:
        gate_hold = Blocked(
            Blocker.SWEEP, "waiting: reading every plug first (two or more nodes fail on ssh)"
        )
    verdicts: dict[str, _Verdict] = {}
    names = fleet.nodes.keys() if only is None else only
    updated: dict[str, NodeState] = {}  # the node table is copied only if a node changed
    for name in names:
        was = fleet.nodes[name]
        st = _sight(was, judge_blind, now)
        st, verdict = _classify(st, fleet.clusters[st.cluster], cfg, now, judge_blind)
        if st is not was:
            updated[name] = st
        verdicts[name] = verdict
    fleet = _with_nodes(fleet, updated)
    fleet, verdicts, power = _gate(fleet, verdicts, cfg, now, gate_hold)

    transitions: list[Transition] = []
    updated = {}
    for name in names:
        st = was = fleet.nodes[name]
        v = verdicts[name]
        if v.cls is not st.cls:
            transitions.append(Transition(name, st.cluster, st.cls, v.cls, now, v.reason))
            st = replace(st, cls=v.cls, since=now)
        if v.cls is NodeClass.HEALTHY and st.cycle_failed:
            st = replace(st, cycle_failed=False)  # healthy again: that failure is history
        if st.reason != v.reason or st.blocked != v.blocked:
            st = replace(st, reason=v.reason, blocked=v.blocked)
        if st is not was:
            updated[name] = st
    fleet = _with_nodes(fleet, updated)
    # While the watchdog may be going blind (a sweep is due, a witness misses) or cannot keep
    # up, no node is paged.
    doubt = facts.sweep or facts.witness_misses or hold is not None
    frozen = {n for n, v in verdicts.items() if v.held or doubt}
    clusters = fleet.clusters if only is None else {fleet.nodes[n].cluster for n in names}
    unverified = {c for c in clusters if not _cluster_verified(fleet.clusters[c], cfg)}
    plug_down = {n for n in names if _plug_down(fleet.nodes[n], cfg, now)}
    fleet, alerts = derive_alerts(
        fleet,
        now,
        blind,
        frozen=frozen,
        unverified=unverified,
        plug_down=plug_down,
        # A blind page resolves only once some node was probed afresh (after a restart).
        sees=any(not v.held for v in verdicts.values()),
        overload=hold,
        only=only,
        members_of=members,
    )
    confirm = frozenset(n for n, v in verdicts.items() if v.confirm)
    prove = frozenset(fleet.nodes[n].cluster for n, v in verdicts.items() if v.prove)
    return Decision(fleet, tuple(transitions), (*power, *alerts), confirm, prove, facts.sweep)


def _with_nodes(fleet: FleetState, updated: Mapping[str, NodeState]) -> FleetState:
    """``fleet`` with these node records replaced (the same fleet when there are none)."""
    return fleet.with_nodes(updated)


def _plug_down(st: NodeState, cfg: Config, now: float) -> bool:
    """The plug missed twice in a row, over at least ``failure_duration``: worth a page."""
    p = cfg.policy
    since = st.plug_missing_since
    at = st.plug_at
    return (
        st.plug_misses >= 2
        and since is not None
        and at is not None
        and at - since >= p.failure_duration
    )


# --------------------------------------------------------------------------- gates
def _gate(
    fleet: FleetState,
    verdicts: dict[str, _Verdict],
    cfg: Config,
    now: float,
    hold: Blocked | None,
) -> tuple[FleetState, dict[str, _Verdict], list[Action]]:
    """Apply budget, back-off, in-flight and fleet caps; oldest failure goes first."""
    p = cfg.policy
    actions: list[Action] = []
    wanting = sorted(
        (n for n, v in verdicts.items() if v.wants is not None),
        key=lambda n: (fleet.nodes[n].ssh.failing_since or now, n),
    )
    for name in wanting:
        st, v = fleet.nodes[name], verdicts[name]
        kind = v.wants
        assert kind is not None
        restore = kind is ActionKind.POWER_ON and st.restore_on
        recent = [t for t in st.cycles if now - t < p.cycle_window]
        fleet_recent = [t for _, t in fleet.fleet_cycles if now - t < p.fleet_window]
        blocked: Blocked | None = None
        if hold is not None and not restore:
            blocked = hold
        elif not restore and len(recent) >= p.max_cycles:
            reason = (
                f"gave up: {len(recent)} power cycles within {p.cycle_window:.0f}s ({v.reason})"
            )
            fleet = fleet.with_node(replace(st, latched=True, latched_reason=reason))
            verdicts[name] = _Verdict(NodeClass.GIVEN_UP, reason)
            continue
        elif not restore and recent and now < (due := recent[-1] + _backoff(p.backoff, recent)):
            text = f"back-off: next power cycle allowed in {due - now:.0f}s"
            blocked = Blocked(Blocker.BACKOFF, text)
        elif len(fleet.in_flight) >= p.max_in_flight:
            blocked = Blocked(Blocker.IN_FLIGHT, "waiting: another power action is in flight")
        elif not restore and len(fleet_recent) >= p.fleet_max_cycles:
            text = f"fleet cap: {len(fleet_recent)} cycles within {p.fleet_window:.0f}s"
            blocked = Blocked(Blocker.FLEET_CAP, text)
        if blocked is not None:
            verdicts[name] = v.blocked_by(blocked)
            continue
        cycles = st.cycles if restore else (*st.cycles, now)
        st = replace(st, cycling_since=now, cycles=cycles, power_kind=kind, power_manual=False)
        fleet = replace(
            fleet.with_node(st),
            fleet_cycles=fleet.fleet_cycles if restore else (*fleet.fleet_cycles, (name, now)),
        )
        verdicts[name] = _Verdict(NodeClass.CYCLING, f"{kind.value}: {v.reason}")
        actions.append(PowerAction(kind, name, v.reason))
    return fleet, verdicts, actions


def _backoff(base: float, recent: list[float]) -> float:
    """Growing back-off before the next cycle: base, 2·base, 4·base… after 1, 2, 3 cycles."""
    return base * float(2 ** max(0, len(recent) - 1))
