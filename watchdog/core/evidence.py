"""What the watchdog knows, as immutable values, and the pure updates that fold probe results in.

Owns the per-probe :class:`Evidence` (consecutive failures and "failing since"), the per-node,
per-cluster and fleet state the policy judges, and ``observe_*`` functions. Pure-logic layer:
no I/O, no clock — ``now`` is always an argument (Unix seconds).

The fleet's node and cluster tables are persistent maps (:class:`immutables.Map`, a hash array
mapped trie): replacing one record shares the rest of the table, so folding one probe result in
costs the same at 1000 nodes as at 2, where a copied ``dict`` costs in proportion to the fleet.
A table given as a plain mapping (a test's ``dict``) is read as it is and becomes a map at its
first update; fleets compare equal by content whichever form their tables take.

Fresh evidence only: a result counts from the moment its probe *started* (``now - latency``).
A node's failure that started before its ``sight_at`` (the watchdog regained sight of it, or
started) is not counted, and a cluster's endpoint failure is not counted while the fleet is
blind or when it started before the cluster's ``fresh_from``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

from immutables import Map

from watchdog.core.model import (
    ActionKind,
    Blocked,
    Condition,
    FailureKind,
    NodeClass,
    PlugReading,
    ProbeKind,
    ProbeResult,
)
from watchdog.core.records import replace


@dataclass(frozen=True, slots=True)
class Evidence:
    """Track record of one probe against one target."""

    consecutive: int = 0
    failing_since: float | None = None
    last_failure: FailureKind | None = None
    last_detail: str = ""
    last_hint: str = ""
    last_at: float | None = None
    last_started: float | None = None  # when the probe of the last result started
    ok_at: float | None = None  # last success

    @property
    def failing(self) -> bool:
        return self.consecutive > 0

    def held(self, now: float) -> float:
        """How long the current failure streak has lasted."""
        return 0.0 if self.failing_since is None else now - self.failing_since

    def meets(self, threshold: int, duration: float, now: float) -> bool:
        """Count *and* duration thresholds both met (docs/design.md, "Threshold and duration")."""
        return self.consecutive >= threshold and self.held(now) >= duration

    def ok_since(self, t: float) -> bool:
        return not self.failing and self.ok_at is not None and self.ok_at >= t


_NO_EVIDENCE = Evidence()  # frozen: one instance serves every probe not run yet


def fold(ev: Evidence, result: ProbeResult, now: float) -> Evidence:
    """Fold one probe result into its evidence."""
    started = now - max(0.0, result.latency)
    if result.ok:
        return Evidence(ok_at=now, last_at=now, last_started=started)
    return Evidence(
        consecutive=ev.consecutive + 1,
        failing_since=ev.failing_since if ev.failing_since is not None else now,
        last_failure=result.failure,
        last_detail=result.detail,
        last_hint=result.hint,
        last_at=now,
        last_started=started,
        ok_at=ev.ok_at,
    )


def restart(ev: Evidence) -> Evidence:
    """The same record with its failure streak forgotten: the suspicion starts again from zero
    (what was last seen stays, for display)."""
    return replace(ev, consecutive=0, failing_since=None)


def started_before(result: ProbeResult, t: float | None, now: float) -> bool:
    """The probe behind ``result`` started before ``t``."""
    return t is not None and now - max(0.0, result.latency) < t


@dataclass(frozen=True, slots=True)
class NodeState:
    name: str
    cluster: str
    cls: NodeClass = NodeClass.UNKNOWN
    since: float = 0.0
    reason: str = ""
    blocked: Blocked | None = None  # what holds its power action back (``reason`` says it too)
    first_seen: float = 0.0
    seen_healthy: bool = False
    ssh: Evidence = Evidence()
    ping: Evidence = Evidence()
    plug: PlugReading | None = None
    plug_at: float | None = None  # when the read of ``plug`` started
    plug_misses: int = 0  # consecutive readings that found the plug unreachable
    plug_missing_since: float | None = None  # when the first of them started
    # Sight: lost while the fleet is blind or the node's plug does not answer; regained at
    # ``sight_at``, from when the node must be probed afresh (ssh and plug) before it is judged.
    dark: bool = False
    sight_at: float | None = None
    cycles: tuple[float, ...] = ()  # start times of power cycles (the budget)
    cycling_since: float | None = None  # a power action is in flight
    power_kind: ActionKind | None = None  # which one, and whether an operator asked for it
    power_manual: bool = False
    boot_started_at: float | None = None  # power confirmed back on: boot grace runs
    restore_on: bool = False  # a cycle switched it off and could not switch it back on
    cycle_failed: bool = False  # the last power action failed after touching the plug
    latched: bool = False
    latched_reason: str = ""
    paused: bool = False
    paused_until: float | None = None  # None with paused: indefinitely
    open_alerts: frozenset[Condition] = frozenset()

    def in_maintenance(self, now: float) -> bool:
        return self.paused and (self.paused_until is None or now < self.paused_until)


@dataclass(frozen=True, slots=True)
class ClusterState:
    name: str
    probes: Mapping[ProbeKind, Evidence] = field(default_factory=dict)
    open_alerts: frozenset[Condition] = frozenset()
    fresh_from: float = 0.0  # endpoint results started before this (start-up) do not count

    def evidence(self, probe: ProbeKind) -> Evidence:
        return self.probes.get(probe, _NO_EVIDENCE)


_V = TypeVar("_V")


def _updated(table: Mapping[str, _V], changes: Mapping[str, _V]) -> Map[str, _V]:
    """``table`` with these entries set, as a persistent map (the rest of it shared)."""
    if isinstance(table, Map):
        return table.update(changes)
    return Map({**table, **changes})


def _same(a: object, b: object) -> bool:
    """Equal values (as a dataclass compares them: the same object is equal); two tables
    compare by content, a map and a ``dict`` alike."""
    if a is b:
        return True
    if type(a) is not type(b) and isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and _same(b[k], v) for k, v in a.items())
    return bool(a == b)


@dataclass(frozen=True, slots=True, eq=False)
class FleetState:
    nodes: Mapping[str, NodeState]
    clusters: Mapping[str, ClusterState]
    witness: Evidence = Evidence()
    link_up: bool | None = None  # None: not checked yet
    fleet_cycles: tuple[tuple[str, float], ...] = ()
    blind_alert_open: bool = False
    overload_alert_open: bool = False  # the watchdog_overloaded page is open
    blind_since: float | None = None  # the fleet is blind since (None: it can see)
    restate: bool = False  # re-state every open page once (start-up, reload): see alerting
    swept_at: float | None = None  # when the last sweep (every plug read at once) began
    banner_at: float | None = None  # when the latest ssh probe that got a banner began

    __hash__ = None  # type: ignore[assignment]  # as before: a fleet is not a dict key

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not FleetState:
            return NotImplemented
        return all(_same(getattr(self, f), getattr(other, f)) for f in _FLEET_FIELDS)

    def node(self, name: str) -> NodeState:
        return self.nodes[name]

    def with_node(self, node: NodeState) -> FleetState:
        """The fleet with this node record (the same fleet when it already holds it)."""
        if self.nodes.get(node.name) is node:
            return self
        return replace(self, nodes=_updated(self.nodes, {node.name: node}))

    def with_nodes(self, changed: Mapping[str, NodeState]) -> FleetState:
        """The fleet with these node records (the same fleet when there are none)."""
        return replace(self, nodes=_updated(self.nodes, changed)) if changed else self

    def with_cluster(self, cluster: ClusterState) -> FleetState:
        """The fleet with this cluster record (the same fleet when it holds an equal one)."""
        old = self.clusters.get(cluster.name)
        if old is cluster or (old is not None and old.probes is cluster.probes and old == cluster):
            return self  # a record rebuilt with the same evidence and pages
        return replace(self, clusters=_updated(self.clusters, {cluster.name: cluster}))

    @property
    def in_flight(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes.values() if n.cycling_since is not None)


_FLEET_FIELDS = tuple(f.name for f in fields(FleetState))


def initial_fleet(members: Mapping[str, str], now: float) -> FleetState:
    """A fresh fleet: ``members`` maps node name -> cluster name."""
    nodes = {
        n: NodeState(name=n, cluster=c, since=now, first_seen=now, sight_at=now)
        for n, c in members.items()
    }
    clusters = {c: ClusterState(name=c, fresh_from=now) for c in sorted(set(members.values()))}
    return FleetState(nodes=Map(nodes), clusters=Map(clusters))


def observe_node(fleet: FleetState, node: str, result: ProbeResult, now: float) -> FleetState:
    """Fold a node-level probe (ssh, ping) into the fleet."""
    st = fleet.node(node)
    if not result.ok and started_before(result, st.sight_at, now):
        return fleet  # a failure from before sight returned: not evidence of anything now
    if result.probe is ProbeKind.SSH:
        seen = st.seen_healthy or (
            result.ok and st.boot_started_at is None and st.cycling_since is None
        )
        st = replace(st, ssh=fold(st.ssh, result, now), seen_healthy=seen)
        if result.ok:
            # Some node's sshd answered a probe begun then: the watchdog saw at that moment.
            began = now - max(0.0, result.latency)
            if fleet.banner_at is None or began > fleet.banner_at:
                nodes = _updated(fleet.nodes, {node: st})
                return replace(fleet, nodes=nodes, banner_at=began)  # one copy, not two
    elif result.probe is ProbeKind.PING:
        st = replace(st, ping=fold(st.ping, result, now))
    else:
        raise ValueError(f"not a node probe: {result.probe}")
    return fleet.with_node(st)


def observe_plug(
    fleet: FleetState, node: str, reading: PlugReading, now: float, started: float | None = None
) -> FleetState:
    """Fold a plug reading; ``started`` is when the read began (default ``now``)."""
    at = now if started is None else started
    st = fleet.node(node)
    if reading.reachable:
        misses, since = 0, None
    else:
        misses = st.plug_misses + 1
        since = st.plug_missing_since if st.plug_missing_since is not None else at
    return fleet.with_node(
        replace(st, plug=reading, plug_at=at, plug_misses=misses, plug_missing_since=since)
    )


def observe_endpoint(
    fleet: FleetState, cluster: str, result: ProbeResult, now: float
) -> FleetState:
    """Fold a cluster-level endpoint probe; it is attributed to every member node."""
    cs = fleet.clusters[cluster]
    if not result.ok and (
        fleet.blind_since is not None or started_before(result, cs.fresh_from, now)
    ):
        return fleet  # seen while blind, or begun before start-up: not counted
    probes = dict(cs.probes)
    probes[result.probe] = fold(cs.evidence(result.probe), result, now)
    return fleet.with_cluster(replace(cs, probes=probes))


def observe_sweep(fleet: FleetState, started: float) -> FleetState:
    """Every plug was read, all the reads begun at ``started`` (their readings are folded)."""
    return replace(fleet, swept_at=started)


def observe_witness(fleet: FleetState, result: ProbeResult, now: float) -> FleetState:
    return replace(fleet, witness=fold(fleet.witness, result, now))


def observe_link(fleet: FleetState, up: bool) -> FleetState:
    return replace(fleet, link_up=up)


def reconcile(fleet: FleetState, members: Mapping[str, str], now: float) -> FleetState:
    """Adopt a new node list (config reload): keep known nodes, add new ones, drop removed."""
    fresh = initial_fleet(members, now)
    nodes = {
        n: replace(fleet.nodes[n], cluster=c) if n in fleet.nodes else fresh.nodes[n]
        for n, c in members.items()
    }
    clusters = {c: fleet.clusters.get(c, fresh.clusters[c]) for c in fresh.clusters}
    return replace(fleet, nodes=Map(nodes), clusters=Map(clusters))
