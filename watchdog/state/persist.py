"""Mapping between the policy's fleet state and the persisted records (orchestration layer).

What survives a restart: the budget (cycle times, per node and fleet-wide), the latch,
maintenance windows, boot grace in progress, whether a node was ever seen healthy, the open
pages of every node, cluster and the fleet (so a recovery after a restart, even one while
the daemon was down, still resolves its page), and — in the
store's intents — any power cycle that was under way. Failure streaks start afresh: after a
restart the watchdog re-confirms before acting, which only delays action, never causes it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from operator import attrgetter

from immutables import Map

from watchdog.core.evidence import FleetState, NodeState, initial_fleet
from watchdog.core.model import Condition, NodeClass
from watchdog.state.store import NodeRecord, PersistedState

# What must reach the disk when it changes. The rest of a record (failure streak, last
# failure, reason) is information for ``status``: it is written along with the next durable
# change, never once per probe.
_DURABLE = (
    "node_class",
    "since",
    "seen_healthy",
    "cycles",
    "latched",
    "latched_reason",
    "latched_at",
    "paused",
    "paused_until",
    "last_cycle_at",
    "boot_started_at",
    "open_alerts",
)
_durable_of = attrgetter(*_DURABLE)


def to_persisted(
    fleet: FleetState, base: PersistedState, only: Collection[str] | None = None
) -> PersistedState:
    """The fleet as records; intents are kept from ``base`` (the store owns them).

    ``only``: rebuild just these nodes' records and keep ``base``'s for the others.
    """
    records = dict(base.nodes)
    for name in fleet.nodes.keys() if only is None else only:
        st = fleet.nodes.get(name)
        if st is not None:
            records[name] = _record(st)
    # A cluster's pages move only when one of its nodes is evaluated.
    changed = (
        fleet.clusters.keys()
        if only is None
        else {fleet.nodes[n].cluster for n in only if n in fleet.nodes}
    )
    cluster_alerts = {} if only is None else dict(base.cluster_alerts)
    for name in changed:
        alerts = _cluster_alerts(fleet, name)
        if alerts:
            cluster_alerts[name] = alerts
        else:
            cluster_alerts.pop(name, None)
    return replace(
        base,
        nodes=records,
        fleet_cycles=fleet.fleet_cycles,
        cluster_alerts=cluster_alerts,
        fleet_alerts=_fleet_alerts(fleet),
    )


def _record(st: NodeState) -> NodeRecord:
    """One node's persisted record."""
    return NodeRecord(
        node_class=st.cls.value,
        since=st.since,
        consecutive_failures=st.ssh.consecutive,
        failing_since=st.ssh.failing_since,
        seen_healthy=st.seen_healthy,
        cycles=st.cycles,
        latched=st.latched,
        latched_reason=st.latched_reason,
        latched_at=st.since if st.latched else None,
        paused=st.paused,
        paused_until=st.paused_until,
        last_failure=st.ssh.last_failure.value if st.ssh.last_failure else "",
        last_detail=st.reason,
        last_cycle_at=st.cycles[-1] if st.cycles else None,
        boot_started_at=st.boot_started_at,
        open_alerts=tuple(sorted(c.value for c in st.open_alerts)),
    )


def _durable_state(st: NodeState) -> tuple[object, ...]:
    """``_durable_of(_record(st))`` without building the record (a property test keeps the
    two in step)."""
    cycles = st.cycles
    return (
        st.cls.value,
        st.since,
        st.seen_healthy,
        cycles,
        st.latched,
        st.latched_reason,
        st.since if st.latched else None,
        st.paused,
        st.paused_until,
        cycles[-1] if cycles else None,
        st.boot_started_at,
        tuple(sorted(c.value for c in st.open_alerts)) if st.open_alerts else (),
    )


def _cluster_alerts(fleet: FleetState, name: str) -> tuple[str, ...]:
    cs = fleet.clusters.get(name)
    return tuple(sorted(c.value for c in cs.open_alerts)) if cs is not None else ()


def _fleet_alerts(fleet: FleetState) -> tuple[str, ...]:
    return tuple(
        c.value
        for c, on in (
            (Condition.BLIND, fleet.blind_alert_open),
            (Condition.OVERLOADED, fleet.overload_alert_open),
        )
        if on
    )


def durable_differs(fleet: FleetState, base: PersistedState, only: Collection[str]) -> bool:
    """Whether rebuilding ``only``'s records from ``fleet`` would change a durable field
    of ``base``: ``durable_change(base, to_persisted(fleet, base, only), only)``, without
    copying the record table (a record that changed in its other fields can wait)."""
    if base.fleet_cycles != fleet.fleet_cycles or base.fleet_alerts != _fleet_alerts(fleet):
        return True
    clusters = set()
    for name in only:
        st = fleet.nodes.get(name)
        if st is None:
            continue  # no longer in the fleet: its record is kept as it is
        old = base.nodes.get(name)
        if old is None or _durable_of(old) != _durable_state(st):
            return True
        clusters.add(st.cluster)
    return any(base.cluster_alerts.get(c) != (_cluster_alerts(fleet, c) or None) for c in clusters)


def durable_change(
    old: PersistedState, new: PersistedState, only: Collection[str] | None = None
) -> bool:
    """Whether ``new`` differs from ``old`` in anything that must survive a restart
    (``only``: the records that may have changed; None: all of them)."""
    if old.fleet_cycles != new.fleet_cycles or old.intents != new.intents:
        return True
    if old.version != new.version:
        return True
    if old.fleet_alerts != new.fleet_alerts or old.cluster_alerts != new.cluster_alerts:
        return True  # open pages must survive a restart, to be resolved after it
    names = new.nodes.keys() | old.nodes.keys() if only is None else only
    for name in names:
        a, b = old.nodes.get(name), new.nodes.get(name)
        if a is None or b is None:
            if a is not b:
                return True
            continue
        if a is not b and _durable_of(a) != _durable_of(b):
            return True
    return False


def from_persisted(state: PersistedState, members: Mapping[str, str], now: float) -> FleetState:
    """A fleet for ``members`` (node -> cluster) seeded from what was persisted."""
    fleet = initial_fleet(members, now)
    nodes = dict(fleet.nodes)
    for name, st in fleet.nodes.items():
        rec = state.nodes.get(name)
        if rec is None:
            continue
        try:
            cls = NodeClass(rec.node_class)
        except ValueError:
            cls = NodeClass.UNKNOWN
        nodes[name] = replace(
            st,
            cls=cls,
            since=rec.since or now,
            reason=rec.last_detail,
            seen_healthy=rec.seen_healthy,
            cycles=rec.cycles,
            latched=rec.latched,
            latched_reason=rec.latched_reason,
            paused=rec.paused,
            paused_until=rec.paused_until,
            boot_started_at=rec.boot_started_at,
            open_alerts=frozenset(_conditions(rec.open_alerts)),
        )
    known = set(members)
    cycles = tuple(c for c in state.fleet_cycles if c[0] in known)
    clusters = {
        name: replace(cs, open_alerts=frozenset(_conditions(state.cluster_alerts.get(name, ()))))
        for name, cs in fleet.clusters.items()
    }
    # Every open page is re-stated once, so the dispatcher knows it and can resolve it.
    return replace(
        fleet,
        nodes=Map(nodes),
        clusters=Map(clusters),
        fleet_cycles=cycles,
        blind_alert_open=Condition.BLIND.value in state.fleet_alerts,
        overload_alert_open=Condition.OVERLOADED.value in state.fleet_alerts,
        restate=True,
    )


def _conditions(values: tuple[str, ...]) -> list[Condition]:
    out = []
    for v in values:
        try:
            out.append(Condition(v))
        except ValueError:
            continue  # a condition a newer version wrote: not ours to resolve
    return out
