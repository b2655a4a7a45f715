"""Alerts derived from classes (pure-logic layer): what to page, update and resolve.

Status is a state machine whose transitions are records; alerts react to them, as in
healthchecks: no alert on the first "up", one open alert per (node, condition), updates only
while the wedge incident moves on (wedged -> cycling -> booting), and a resolve once the
condition no longer holds. A failing endpoint explained by a member node's trouble is not
paged separately (as an Alertmanager inhibit rule would). No I/O; ``now`` is an argument.

The open pages have one owner: the ``open_alerts`` of the fleet state, which is persisted.
After a start-up or a reload (``FleetState.restate``) every open page is re-stated once as a
``restated`` trigger, which the dispatcher adopts without sending, so that a later resolve
always goes out. A blind episode is one incident: while blind, only the ``blind`` page moves;
every other page stays as it is, with no trigger and no resolve. Nodes the policy has not
judged afresh (``frozen``) and clusters whose endpoint has not answered since start-up
(``unverified``) keep their pages as they are, too. A plug is paged only once the policy
found it down (``plug_down``: missed twice, over the failure duration), and stays paged
while it does not answer.

This module owns which conditions hold for a node and for a cluster, and when each page is
triggered or resolved; the events' words, severities and the re-stated triggers are built by
:mod:`watchdog.core.alert_events`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType

from watchdog.core.alert_events import (
    WATCHDOG_NODE,
    alert_event,
    cluster_event,
    node_event,
    overload_event,
    restated,
)
from watchdog.core.evidence import ClusterState, FleetState, NodeState
from watchdog.core.model import (
    Action,
    ActionKind,
    AlertAction,
    AlertStatus,
    Condition,
    FailureKind,
    NodeClass,
)
from watchdog.core.records import replace

# While one of these holds for a member node, a failing endpoint is explained by it, so the
# cluster-level degraded/misconfigured alert is inhibited (as Alertmanager inhibit rules do).
_EXPLAINS_ENDPOINT = frozenset(
    {
        NodeClass.WEDGED,
        NodeClass.CYCLING,
        NodeClass.BOOTING,
        NodeClass.POWERED_OFF,
        NodeClass.GIVEN_UP,
        NodeClass.SUSPECT,
        NodeClass.BLIND,
        NodeClass.MAINTENANCE,
        NodeClass.UNKNOWN,
    }
)
# The condition each class pages as, where it has one of its own. A wedge is paged through
# its whole incident (see ``_node_conditions``); degraded and misconfigured endpoints are
# paged per cluster, a wrong sshd banner per node.
CLASS_CONDITION: Mapping[NodeClass, Condition] = MappingProxyType(
    {
        NodeClass.WEDGED: Condition.WEDGED,
        NodeClass.SSH_DOWN: Condition.SSH_DOWN,
        NodeClass.DEGRADED: Condition.DEGRADED,
        NodeClass.MISCONFIGURED: Condition.MISCONFIGURED,
        NodeClass.POWERED_OFF: Condition.POWERED_OFF,
        NodeClass.BLIND: Condition.BLIND,
        NodeClass.GIVEN_UP: Condition.GIVEN_UP,
    }
)
# Classes whose node is paged with the class's own condition, for as long as it holds.
_PAGED_AS_CLASS = frozenset({NodeClass.GIVEN_UP, NodeClass.POWERED_OFF, NodeClass.SSH_DOWN})
# Classes a cluster's endpoint page is about (when no member's trouble explains them).
_ENDPOINT_CLASSES = frozenset({NodeClass.DEGRADED, NodeClass.MISCONFIGURED})
_SUSPECT_KEEPS = frozenset({Condition.WEDGED, Condition.SSH_DOWN, Condition.MISCONFIGURED})


def _node_conditions(st: NodeState, plug_down: bool) -> set[Condition]:
    want: set[Condition] = set()
    was_wedged = Condition.WEDGED in st.open_alerts
    if st.cls is NodeClass.WEDGED or (
        st.cls in (NodeClass.BOOTING, NodeClass.GIVEN_UP) and was_wedged
    ):  # giving up does not make the node less wedged: the page stays open
        want.add(Condition.WEDGED)
    if st.cls is NodeClass.CYCLING and (
        was_wedged or (st.power_kind is ActionKind.POWER_CYCLE and not st.power_manual)
    ):
        want.add(Condition.WEDGED)  # a manual cycle of a healthy node pages nobody
    if st.cls in _PAGED_AS_CLASS:
        want.add(CLASS_CONDITION[st.cls])
    if st.cls is NodeClass.SUSPECT:
        # Failing again, not yet confirmed: that does not show the condition is gone (a
        # suspicion restarted after a restart or a blind spell must not resolve and re-page).
        want |= st.open_alerts & _SUSPECT_KEEPS
    if st.cls is NodeClass.MISCONFIGURED and st.ssh.last_failure is FailureKind.BAD_BANNER:
        want.add(Condition.MISCONFIGURED)  # endpoint faults are paged once, per cluster
    plug_out = st.plug is not None and not st.plug.reachable
    if st.cls is not NodeClass.MAINTENANCE and (
        plug_down or (plug_out and Condition.PLUG in st.open_alerts)
    ):
        want.add(Condition.PLUG)
    if st.cycle_failed and st.cls is not NodeClass.HEALTHY:
        want.add(Condition.CYCLE_FAILED)
    return want


def derive_alerts(
    fleet: FleetState,
    now: float,
    blind: str | None,
    *,
    frozen: set[str] | frozenset[str] = frozenset(),
    unverified: set[str] | frozenset[str] = frozenset(),
    plug_down: set[str] | frozenset[str] = frozenset(),
    sees: bool = True,
    overload: str | None = None,
    only: Collection[str] | None = None,
    members_of: Mapping[str, Sequence[str]] | None = None,
) -> tuple[FleetState, list[Action]]:
    """Page, update and resolve from the classes; ``only``: just these nodes and their
    clusters (``members_of`` maps a cluster to its nodes, so no scan is needed)."""
    out: list[Action] = []
    if fleet.restate:
        out += restated(fleet, now)
        fleet = replace(fleet, restate=False)
    if (overload is not None) != fleet.overload_alert_open:
        out.append(AlertAction(overload_event(overload, now)))
        fleet = replace(fleet, overload_alert_open=overload is not None)
    if (blind is not None) != fleet.blind_alert_open and (blind is not None or sees):
        status = AlertStatus.TRIGGER if blind else AlertStatus.RESOLVE
        out.append(
            alert_event(
                WATCHDOG_NODE,
                "",
                Condition.BLIND,
                status,
                now,
                summary="watchdog cannot see" if blind else "watchdog can see again",
                seen=blind or "witnesses and link answer again",
                done="no power action anywhere while blind" if blind else "",
                todo="check the watchdog host's network and the reference targets",
            )
        )
        fleet = replace(fleet, blind_alert_open=blind is not None)
    if blind is not None:
        return fleet, out  # one page while blind: every other page stays as it is
    nodes: dict[str, NodeState] = {}  # the records that change
    for name in fleet.nodes.keys() if only is None else only:
        st = fleet.nodes[name]
        if st.cls is NodeClass.BLIND or name in frozen:
            continue  # what we cannot see we neither page about nor resolve
        want = _node_conditions(st, name in plug_down)
        for cond in sorted(want | st.open_alerts):
            if cond not in want:
                out.append(node_event(st, cond, AlertStatus.RESOLVE, now))
            elif cond not in st.open_alerts or (cond is Condition.WEDGED and st.since == now):
                # New, or the wedge incident moved on (wedged -> cycling -> booting).
                out.append(node_event(st, cond, AlertStatus.TRIGGER, now))
        if st.open_alerts != want:
            nodes[name] = replace(st, open_alerts=frozenset(want))
    fleet = fleet.with_nodes(nodes)
    for cs in _clusters(fleet, only):
        if cs.name in unverified:
            continue  # not probed since start-up: its pages stay as they are
        members = _members(fleet, cs.name, members_of)
        want_c: dict[Condition, NodeState] = {}
        if not any(m.cls in _EXPLAINS_ENDPOINT for m in members):
            for m in members:
                if m.cls in _ENDPOINT_CLASSES and (
                    m.cls is not NodeClass.MISCONFIGURED or m.ssh.last_failure is None
                ):
                    want_c[CLASS_CONDITION[m.cls]] = m
        for cond in sorted(set(want_c) | cs.open_alerts):
            if cond in want_c and cond in cs.open_alerts:
                continue  # still open: the dispatcher re-notifies on its own schedule
            if cond in want_c:
                out.append(cluster_event(cs, cond, AlertStatus.TRIGGER, want_c[cond], now))
            elif not any(m.cls in _EXPLAINS_ENDPOINT for m in members):
                out.append(cluster_event(cs, cond, AlertStatus.RESOLVE, None, now))
            else:
                want_c[cond] = members[0]  # keep open while it is explained by a member
        fleet = fleet.with_cluster(replace(cs, open_alerts=frozenset(want_c)))
    return fleet, [a for a in out if a is not None]


def _clusters(fleet: FleetState, only: Collection[str] | None) -> list[ClusterState]:
    if only is None:
        return list(fleet.clusters.values())
    return [fleet.clusters[c] for c in sorted({fleet.nodes[n].cluster for n in only})]


def _members(
    fleet: FleetState, cluster: str, index: Mapping[str, Sequence[str]] | None
) -> list[NodeState]:
    if index is None:
        return [n for n in fleet.nodes.values() if n.cluster == cluster]
    return [fleet.nodes[n] for n in index.get(cluster, ())]
