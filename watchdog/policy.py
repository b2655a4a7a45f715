"""The decision policy: classify every node and decide actions, purely (design §3).

``evaluate(fleet, now, cfg) -> Decision`` is the whole state machine. No I/O, no asyncio, no
clock, no logging: time is an argument and the output is values (new state, transitions with
their reasons, actions). Lifecycle events the daemon reports back — a power cycle finished,
an operator paused a node — are the other pure functions here.

The safety rules, each a tested behaviour:
- count *and* duration thresholds before a node is judged wedged (suspect meanwhile, with a
  confirmation burst); a node is not judged before it is armed;
- boot and serve grace after a cycle: failures inside the grace do not count;
- per-node budget with growing back-off, then a latch only an operator clears;
- at most ``max_in_flight`` power actions at once and a fleet-wide cap per window;
- no action at all when the watchdog cannot see (own link down, witnesses silent, or the
  node's plug unreachable).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from watchdog.alerting import derive_alerts
from watchdog.config import Cluster, Config
from watchdog.evidence import ClusterState, Evidence, FleetState, NodeState
from watchdog.model import (
    Action,
    ActionKind,
    FailureKind,
    NodeClass,
    PowerAction,
    ProbeKind,
    Transition,
)

# Banner failures that mean "the node does not serve sshd"; BAD_BANNER is a wrong port, not a
# wedge, and PROBE_ERROR is our own fault.
_WEDGE_SSH = frozenset(
    {
        FailureKind.NO_BANNER,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.TIMEOUT,
        FailureKind.REFUSED,
        FailureKind.UNREACHABLE,
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    fleet: FleetState
    transitions: tuple[Transition, ...] = ()
    actions: tuple[Action, ...] = ()
    confirm: frozenset[str] = frozenset()  # nodes to re-probe at confirm_interval


@dataclass(frozen=True, slots=True)
class _Verdict:
    cls: NodeClass
    reason: str
    wants: ActionKind | None = None  # a power action this node needs, subject to the gates
    confirm: bool = False


# --------------------------------------------------------------------------- evaluate
def evaluate(
    fleet: FleetState,
    now: float,
    cfg: Config,
    *,
    only: Collection[str] | None = None,
    members: Mapping[str, Sequence[str]] | None = None,
    hold: str | None = None,
) -> Decision:
    """Classify every node, apply the safety gates, and derive alerts from the classes.

    ``only`` restricts the work to those nodes (and their clusters' alerts; ``members`` maps
    a cluster to its nodes so that needs no scan): :mod:`watchdog.incremental` says which
    nodes a change can affect. ``hold`` is a reason the watchdog cannot trust what it sees
    other than blindness (it is overloaded): nodes with failing evidence are judged blind.
    """
    blind = _blind_reason(fleet, cfg, now)
    judge_blind = blind or hold
    can_act = judge_blind is None and not (cfg.watchdog.witnesses and fleet.witness.failing)
    verdicts: dict[str, _Verdict] = {}
    names = fleet.nodes.keys() if only is None else only
    nodes = dict(fleet.nodes)
    for name in names:
        st = fleet.nodes[name]
        st, verdict = _classify(st, fleet.clusters[st.cluster], cfg, now, judge_blind)
        nodes[name] = st
        verdicts[name] = verdict
    fleet = replace(fleet, nodes=nodes)
    fleet, verdicts, power = _gate(fleet, verdicts, cfg, now, can_act)

    transitions: list[Transition] = []
    nodes = dict(fleet.nodes)
    for name in names:
        st = fleet.nodes[name]
        v = verdicts[name]
        if v.cls is not st.cls:
            transitions.append(Transition(name, st.cluster, st.cls, v.cls, now, v.reason))
            st = replace(st, cls=v.cls, since=now)
        if v.cls is NodeClass.HEALTHY and st.cycle_failed:
            st = replace(st, cycle_failed=False)  # healthy again: that failure is history
        nodes[name] = st if st.reason == v.reason else replace(st, reason=v.reason)
    fleet = replace(fleet, nodes=nodes)
    fleet, alerts = derive_alerts(fleet, now, blind, only=only, members_of=members)
    confirm = frozenset(n for n, v in verdicts.items() if v.confirm)
    return Decision(fleet, tuple(transitions), (*power, *alerts), confirm)


def _blind_reason(fleet: FleetState, cfg: Config, now: float) -> str | None:
    p = cfg.policy
    if fleet.link_up is False:
        return "the watchdog's own network link is down"
    if cfg.watchdog.witnesses and fleet.witness.meets(p.failure_threshold, 0.0, now):
        return f"no reference target answers ({fleet.witness.last_detail or 'witness failing'})"
    # Without witnesses, mass failure with no plug answering is blindness, not a wedge.
    all_dark = all(
        st.ssh.failing and (st.plug is None or not st.plug.reachable) for st in fleet.nodes.values()
    )
    if all_dark and len(fleet.nodes) > 1:
        return "no node and no plug answers"
    return None


def _classify(
    st: NodeState, cs: ClusterState, cfg: Config, now: float, blind: str | None
) -> tuple[NodeState, _Verdict]:
    p = cfg.policy
    if st.latched:
        return st, _Verdict(NodeClass.GIVEN_UP, st.latched_reason)
    if st.paused and not st.in_maintenance(now):
        st = replace(st, paused=False, paused_until=None)
    if st.in_maintenance(now):
        return st, _Verdict(NodeClass.MAINTENANCE, "paused by an operator")
    if st.cycling_since is not None:
        return st, _Verdict(NodeClass.CYCLING, "power action in flight")
    if st.restore_on:
        return st, _Verdict(
            NodeClass.POWERED_OFF, "left off by a failed cycle", ActionKind.POWER_ON
        )

    boot_failed = False
    if st.boot_started_at is not None:
        b = st.boot_started_at
        ssh_back = st.ssh.ok_since(b)
        if ssh_back and _serving_since(cs, _cluster(cfg, st.cluster), b):
            st = replace(st, boot_started_at=None, seen_healthy=True)
            return st, _Verdict(NodeClass.HEALTHY, f"recovered {now - b:.0f}s after power-on")
        if not ssh_back and now - b > p.boot_timeout:
            # The grace itself was the wait: sshd has been failing since power-on, which
            # meets the count and duration thresholds from now on.
            boot_failed = True
            ssh_ev = replace(
                st.ssh,
                consecutive=max(st.ssh.consecutive, p.failure_threshold),
                failing_since=min(st.ssh.failing_since or b, b),
                last_failure=st.ssh.last_failure or FailureKind.TIMEOUT,
                last_detail=st.ssh.last_detail or "no ssh answer since power-on",
            )
            st = replace(st, boot_started_at=None, ssh=ssh_ev)
        elif ssh_back and now - b > p.serve_timeout:
            st = replace(st, boot_started_at=None, seen_healthy=True)
        else:
            what = "model load" if ssh_back else "sshd"
            return st, _Verdict(NodeClass.BOOTING, f"in boot grace, waiting for {what}")

    endpoint = _endpoint_fault(cs, cfg, now)
    if blind is not None and (st.ssh.failing or endpoint is not None):
        return st, _Verdict(NodeClass.BLIND, f"cannot see: {blind}")
    armed = st.seen_healthy or now - st.first_seen >= p.startup_timeout
    plug = st.plug
    if plug is not None and plug.reachable and plug.is_on is False:
        wants = ActionKind.POWER_ON if p.power_on_if_off else None
        return st, _Verdict(NodeClass.POWERED_OFF, "plug reports off", wants)

    ssh = st.ssh
    if ssh.failing and ssh.last_failure is FailureKind.BAD_BANNER:
        if ssh.meets(p.failure_threshold, p.failure_duration, now):
            return st, _Verdict(NodeClass.MISCONFIGURED, f"ssh: {ssh.last_detail}")
        return st, _Verdict(NodeClass.SUSPECT, "ssh answers with a wrong banner", confirm=True)
    if ssh.failing and ssh.last_failure in _WEDGE_SSH:
        if not armed:
            return st, _Verdict(NodeClass.UNKNOWN, "not armed: never seen healthy yet")
        if not (boot_failed or ssh.meets(p.failure_threshold, p.failure_duration, now)):
            return st, _Verdict(
                NodeClass.SUSPECT,
                f"ssh {ssh.last_failure}: {ssh.consecutive}/{p.failure_threshold} failures, "
                f"held {ssh.held(now):.0f}s",
                confirm=True,
            )
        why = (
            "sshd did not return within boot_timeout"
            if boot_failed
            else (f"ssh {ssh.last_failure} {ssh.consecutive}x over {ssh.held(now):.0f}s")
        )
        if plug is None or not plug.reachable:
            return st, _Verdict(NodeClass.WEDGED, f"{why}; cannot act: plug unreachable")
        return st, _Verdict(NodeClass.WEDGED, why, ActionKind.POWER_CYCLE)
    if endpoint is not None:
        probe, ev = endpoint
        held = ev.meets(p.failure_threshold, p.failure_duration, now)
        kind = ev.last_failure
        text = f"{probe} {kind}: {ev.last_detail}".rstrip(": ")
        if not held:
            return st, _Verdict(NodeClass.SUSPECT, text)
        if kind is not None and kind.is_config_fault:
            return st, _Verdict(NodeClass.MISCONFIGURED, text)
        return st, _Verdict(NodeClass.DEGRADED, text)
    if not armed:
        return st, _Verdict(NodeClass.UNKNOWN, "not armed: never seen healthy yet")
    return st, _Verdict(NodeClass.HEALTHY, "all probes pass")


def _cluster(cfg: Config, name: str) -> Cluster | None:
    return next((c for c in cfg.clusters if c.name == name), None)


def _serving_since(cs: ClusterState, cluster: Cluster | None, since: float) -> bool:
    """Every enabled endpoint probe has passed since ``since`` (recovery confirmed)."""
    needed = [ProbeKind.HEALTH]
    if cluster is not None:
        ep = cluster.endpoint
        needed = [
            k
            for k, on in (
                (ProbeKind.HEALTH, ep.health.enabled),
                (ProbeKind.MODELS, ep.models.enabled),
                (ProbeKind.TOOL_CALL, ep.tool_call.enabled),
            )
            if on
        ] or [ProbeKind.HEALTH]
    return all(cs.evidence(k).ok_since(since) for k in needed)


def _endpoint_fault(cs: ClusterState, cfg: Config, now: float) -> tuple[str, Evidence] | None:
    """The endpoint probe to blame: config faults first, then the longest-failing one."""
    failing = [(str(k), ev) for k, ev in sorted(cs.probes.items()) if ev.failing]
    if not failing:
        return None
    config = [(k, ev) for k, ev in failing if ev.last_failure and ev.last_failure.is_config_fault]
    pool = config or failing
    return max(pool, key=lambda kv: (kv[1].consecutive, kv[1].held(now)))


# --------------------------------------------------------------------------- gates
def _gate(
    fleet: FleetState, verdicts: dict[str, _Verdict], cfg: Config, now: float, can_act: bool
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
        blocked = None
        if not can_act and not restore:
            blocked = "cannot act: a witness is not answering"
        elif not restore and len(recent) >= p.max_cycles:
            reason = (
                f"gave up: {len(recent)} power cycles within {p.cycle_window:.0f}s ({v.reason})"
            )
            fleet = fleet.with_node(replace(st, latched=True, latched_reason=reason))
            verdicts[name] = _Verdict(NodeClass.GIVEN_UP, reason)
            continue
        elif not restore and recent and now < (due := recent[-1] + _backoff(p.backoff, recent)):
            blocked = f"back-off: next power cycle allowed in {due - now:.0f}s"
        elif len(fleet.in_flight) >= p.max_in_flight:
            blocked = "waiting: another power action is in flight"
        elif not restore and len(fleet_recent) >= p.fleet_max_cycles:
            blocked = f"fleet cap: {len(fleet_recent)} cycles within {p.fleet_window:.0f}s"
        if blocked is not None:
            verdicts[name] = replace(v, reason=f"{v.reason}; {blocked}", wants=None)
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
