"""Alert events: each page's words and severity, and the re-statement of open pages (pure).

Builds the :class:`~watchdog.core.model.AlertEvent` values :mod:`watchdog.core.paging` decides
to send: for a node (what was seen, what the watchdog did or holds back, what to do), for its
plug, for a cluster's endpoint, for the fleet-level ``blind`` and ``overloaded`` pages, and
the ``restated`` triggers of every open page after a start-up or a reload, which the
dispatcher adopts without sending (docs/design.md, "Alerts" and "Pages always resolve").
No I/O; ``now`` is an argument.
"""

from __future__ import annotations

from dataclasses import replace

from watchdog.core.evidence import ClusterState, Evidence, FleetState, NodeState
from watchdog.core.hints import hint_for
from watchdog.core.model import (
    Action,
    AlertAction,
    AlertEvent,
    AlertStatus,
    Condition,
    FailureKind,
    NodeClass,
    Severity,
)

WATCHDOG_NODE = "watchdog"  # the pseudo-node that fleet-level (blind) alerts are about


SSH_DOWN_HINT = (
    "sshd does not answer but the model serves: check sshd on the node (stopped or crashed, a "
    "broken sshd_config after an upgrade, MaxStartups throttling during an ssh scan, a firewall "
    "change); it is never power-cycled while it serves"
)


_SEVERITY = {
    Condition.WEDGED: Severity.CRITICAL,
    Condition.SSH_DOWN: Severity.ERROR,
    Condition.GIVEN_UP: Severity.CRITICAL,
    Condition.BLIND: Severity.CRITICAL,
    Condition.CYCLE_FAILED: Severity.CRITICAL,
    Condition.DEGRADED: Severity.ERROR,
    Condition.POWERED_OFF: Severity.ERROR,
    Condition.MISCONFIGURED: Severity.WARNING,
    Condition.PLUG: Severity.WARNING,
    Condition.OVERLOADED: Severity.CRITICAL,
}


def restated(fleet: FleetState, now: float) -> list[Action]:
    """Every open page as a ``restated`` trigger (the dispatcher adopts it, sends nothing)."""
    out: list[AlertAction] = []
    if fleet.overload_alert_open:
        out.append(AlertAction(overload_event("it was overloaded before a restart", now)))
    if fleet.blind_alert_open:
        out.append(
            alert_event(
                WATCHDOG_NODE,
                "",
                Condition.BLIND,
                AlertStatus.TRIGGER,
                now,
                summary="watchdog cannot see",
                done="no power action anywhere while blind",
            )
        )
    for st in fleet.nodes.values():
        out += [node_event(st, c, AlertStatus.TRIGGER, now) for c in sorted(st.open_alerts)]
    for cs in fleet.clusters.values():
        members = [n for n in fleet.nodes.values() if n.cluster == cs.name]
        member = members[0] if members else None
        out += [
            cluster_event(cs, c, AlertStatus.TRIGGER, member, now) for c in sorted(cs.open_alerts)
        ]
    return [AlertAction(replace(a.event, restated=True)) for a in out]


def node_event(st: NodeState, cond: Condition, status: AlertStatus, now: float) -> AlertAction:
    ev = st.ssh
    if status is AlertStatus.RESOLVE:
        summary = f"{st.name}: {cond.value} resolved ({st.cls.value})"
        return alert_event(st.name, st.cluster, cond, status, now, summary=summary, seen=st.reason)
    if cond is Condition.PLUG:
        return _plug_event(st, now)
    done = {
        # What holds the power cycle back, when something does.
        NodeClass.WEDGED: "power cycle pending" if st.blocked is None else st.blocked.text,
        NodeClass.CYCLING: "power cycle started",
        NodeClass.BOOTING: "power restored; waiting for boot and model load",
        NodeClass.GIVEN_UP: "no more power cycles: latched until an operator runs "
        f"'cluster-watchdog clear {st.name}'",
        NodeClass.POWERED_OFF: "nothing (power_on_if_off is off)",
        NodeClass.SSH_DOWN: "no power action: the model still serves",
    }.get(st.cls, "alerted")
    todo = {
        Condition.WEDGED: ev.last_hint or "none needed if it recovers; else check the node",
        Condition.GIVEN_UP: "go to the node: power, BIOS 'restore on AC power loss', boot log",
        Condition.POWERED_OFF: "switch the plug on, or run 'cluster-watchdog cycle' if intended",
        Condition.CYCLE_FAILED: "check the plug and the node's power by hand",
        Condition.MISCONFIGURED: ev.last_hint or "check the node's sshd port",
        Condition.SSH_DOWN: SSH_DOWN_HINT,
    }.get(cond, "")
    summary = f"{st.name} {cond.value.replace('_', ' ')}: {st.reason}"
    return alert_event(
        st.name,
        st.cluster,
        cond,
        status,
        now,
        summary=summary,
        seen=st.reason,
        done=done,
        todo=todo,
        failure=ev.last_failure,
    )


def _plug_event(st: NodeState, now: float) -> AlertAction:
    """The actuator is unusable: said before it is needed, about the plug, not the node."""
    plug = st.plug
    kind = plug.failure if plug and plug.failure else FailureKind.PLUG_UNREACHABLE
    detail = plug.detail if plug and plug.detail else kind.value
    done = "no power action is possible through it" + (
        f"; the node is {st.cls.value}" if st.cls is not NodeClass.HEALTHY else ""
    )
    return alert_event(
        st.name,
        st.cluster,
        Condition.PLUG,
        AlertStatus.TRIGGER,
        now,
        summary=f"{st.name}: its plug is unusable ({kind.value}): {detail}",
        seen=f"plug: {detail}",
        done=done,
        todo=hint_for(kind),
        failure=kind,
    )


def cluster_event(
    cs: ClusterState, cond: Condition, status: AlertStatus, member: NodeState | None, now: float
) -> AlertAction:
    if status is AlertStatus.RESOLVE or member is None:
        return alert_event(
            cs.name,
            cs.name,
            cond,
            AlertStatus.RESOLVE,
            now,
            summary=f"cluster {cs.name}: endpoint {cond.value} resolved",
        )
    faults = [ev for ev in cs.probes.values() if ev.failing]
    ev = (
        max(
            faults,
            key=lambda e: (bool(e.last_failure and e.last_failure.is_config_fault), e.consecutive),
        )
        if faults
        else Evidence()
    )
    return alert_event(
        cs.name,
        cs.name,
        cond,
        status,
        now,
        summary=f"cluster {cs.name} endpoint {cond.value}: {member.reason}",
        seen=member.reason,
        done="alert only: power never fixes this"
        if cond is Condition.MISCONFIGURED
        else "alert only: sshd answers, so no power action",
        todo=ev.last_hint,
        failure=ev.last_failure,
    )


def alert_event(
    node: str,
    cluster: str,
    cond: Condition,
    status: AlertStatus,
    now: float,
    *,
    summary: str,
    seen: str = "",
    done: str = "",
    todo: str = "",
    failure: FailureKind | None = None,
) -> AlertAction:
    sev = _SEVERITY[cond] if status is AlertStatus.TRIGGER else Severity.INFO
    return AlertAction(
        AlertEvent(
            node=node,
            cluster=cluster,
            condition=cond,
            status=status,
            severity=sev,
            summary=summary,
            seen=seen,
            done=done,
            todo=todo,
            at=now,
            failure=failure,
        )
    )


def overload_event(reason: str | None, now: float) -> AlertEvent:
    """The one fleet-level page while the watchdog cannot keep up, and its resolve."""
    if reason is None:
        return AlertEvent(
            node=WATCHDOG_NODE,
            cluster="",
            condition=Condition.OVERLOADED,
            status=AlertStatus.RESOLVE,
            severity=Severity.INFO,
            summary="watchdog keeps up again",
            seen="its event loop runs on time",
            at=now,
        )
    return AlertEvent(
        node=WATCHDOG_NODE,
        cluster="",
        condition=Condition.OVERLOADED,
        status=AlertStatus.TRIGGER,
        severity=Severity.CRITICAL,
        summary="watchdog overloaded: it cannot probe on time",
        seen=reason,
        done="no node is judged on failing evidence and no power action runs while it lasts",
        todo="give the watchdog more CPU, or watch fewer nodes / probe less often per instance",
        at=now,
    )
