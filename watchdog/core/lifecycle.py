"""Pure updates for what the daemon reports back and what operators ask (pure-logic layer).

A power action finished (or failed), an operator paused, resumed, cleared or cycled a node.
Like :mod:`watchdog.core.policy`, no I/O and no clock: ``now`` is an argument, and the results are
new state values plus the alerts they imply. Budget bookkeeping lives here and in the
policy's gate only, so a manual cycle counts exactly like an automatic one.
"""

from __future__ import annotations

from dataclasses import replace

from watchdog.config import Config
from watchdog.core.evidence import Evidence, FleetState, NodeState
from watchdog.core.model import ActionKind, NodeClass, PlugReading, PowerAction
from watchdog.core.policy import Decision


class Refused(Exception):
    """An operator request the policy will not carry out; the message says why."""


def power_finished(
    fleet: FleetState,
    node: str,
    *,
    kind: ActionKind,
    ok: bool,
    touched: bool,
    left_off: bool,
    now: float,
) -> FleetState:
    """A power action ended. ``touched``: the plug was switched at all."""
    st = fleet.node(node)
    started = st.cycling_since
    st = replace(st, cycling_since=None, power_kind=None, power_manual=False)
    if ok:
        # Failures seen before or during the cycle say nothing about the new boot.
        st = replace(
            st,
            boot_started_at=now,
            restore_on=False,
            # The procedure confirmed the relay on; older readings are stale.
            plug=PlugReading(reachable=True, is_on=True),
            plug_at=now,
            ssh=Evidence(),
            cycle_failed=False,
        )
        return fleet.with_node(st)
    if not touched and started is not None and kind is ActionKind.POWER_CYCLE:
        # Aborted before switching anything (plug check failed): refund the budget.
        st = replace(st, cycles=tuple(t for t in st.cycles if t != started))
        fleet = replace(
            fleet, fleet_cycles=tuple(c for c in fleet.fleet_cycles if c != (node, started))
        )
    st = replace(
        st,
        restore_on=left_off or st.restore_on,
        cycle_failed=touched or st.cycle_failed,
    )
    return fleet.with_node(st)


def pause(fleet: FleetState, node: str, *, until: float | None, now: float) -> FleetState:
    st = _known(fleet, node)
    if until is not None and until <= now:
        raise Refused("the pause would end in the past")
    return fleet.with_node(replace(st, paused=True, paused_until=until))


def resume(fleet: FleetState, node: str, *, now: float) -> FleetState:
    st = _known(fleet, node)
    if not st.paused:
        raise Refused(f"{node} is not paused")
    # Evidence gathered while an operator worked on the node must not trigger action now: a
    # still-failing sshd starts over as a fresh suspicion (confirmed again before any action).
    ssh = st.ssh
    if ssh.failing:
        ssh = replace(ssh, consecutive=1, failing_since=now)
    return fleet.with_node(replace(st, paused=False, paused_until=None, ssh=ssh))


def clear(fleet: FleetState, node: str) -> FleetState:
    """Un-latch a given-up node and reset its budget: the operator has looked at it."""
    st = _known(fleet, node)
    if not st.latched:
        raise Refused(f"{node} is not latched")
    return fleet.with_node(
        replace(
            st,
            latched=False,
            latched_reason="",
            cycles=(),
            ssh=Evidence(),
            seen_healthy=False,
            cls=NodeClass.UNKNOWN,
            first_seen=st.since,
        )
    )


def manual_cycle(fleet: FleetState, node: str, *, now: float, cfg: Config) -> Decision:
    """An operator's ``cycle NODE``: same procedure, same budget and in-flight bookkeeping."""
    st = _known(fleet, node)
    p = cfg.policy
    if st.cycling_since is not None:
        raise Refused(f"{node}: a power action is already in flight")
    if len(fleet.in_flight) >= p.max_in_flight:
        raise Refused(f"another power action is in flight ({', '.join(fleet.in_flight)})")
    st = replace(
        st,
        cycling_since=now,
        cycles=(*st.cycles, now),
        cls=NodeClass.CYCLING,
        since=now,
        reason="manual power cycle",
        blocked=None,
    )
    fleet = replace(fleet.with_node(st), fleet_cycles=(*fleet.fleet_cycles, (node, now)))
    action = PowerAction(ActionKind.POWER_CYCLE, node, "requested by an operator", manual=True)
    return Decision(fleet, (), (action,))


def _known(fleet: FleetState, node: str) -> NodeState:
    if node not in fleet.nodes:
        raise Refused(f"unknown node {node!r}; known: {', '.join(sorted(fleet.nodes))}")
    return fleet.nodes[node]
