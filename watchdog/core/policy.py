"""The decision policy: classify every node and decide actions, purely.

``evaluate(fleet, now, cfg) -> Decision`` is the whole state machine. No I/O, no asyncio, no
clock, no logging: time is an argument and the output is values (new state, transitions with
their reasons, actions, and the probes the engine should run at once). Lifecycle events the
daemon reports back live in :mod:`watchdog.core.lifecycle`.

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
from dataclasses import dataclass, replace
from enum import Enum
from urllib.parse import urlsplit

from watchdog.config import Cluster, Config, Ssh
from watchdog.core.evidence import ClusterState, Evidence, FleetState, NodeState, restart
from watchdog.core.model import (
    Action,
    ActionKind,
    Blocked,
    Blocker,
    FailureKind,
    NodeClass,
    PlugReading,
    PowerAction,
    ProbeKind,
    Transition,
)
from watchdog.core.paging import derive_alerts

# Banner failures that mean "the node does not serve sshd"; BAD_BANNER is a wrong port, not a
# wedge, and PROBE_ERROR is our own fault.
HEALTHY_REASON = "all probes pass"
_WEDGE_SSH = frozenset(
    {
        FailureKind.NO_BANNER,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.TIMEOUT,
        FailureKind.REFUSED,
        FailureKind.UNREACHABLE,
    }
)


# What a dark network looks like from here: no answer at all, as opposed to an answer.
_NO_ANSWER = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.CONNECT_TIMEOUT,
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
    prove: frozenset[str] = frozenset()  # clusters to ask for a real tool call now
    sweep: bool = False  # read every plug now, before any power action


class Proof(Enum):
    """Whether the cluster's endpoint proved it serves since a node's ssh failure began."""

    SERVING = "serving"  # a tool call succeeded since: the node is not wedged
    # No tool call configured, but the endpoint on this very node answered since: it does not
    # prove serving, yet a node whose API server answers is not the wedge power fixes.
    ANSWERING = "answering"
    NOT_SERVING = "not_serving"  # the latest tool call since then failed
    PENDING = "pending"  # no tool call answered since then: ask now, judge afterwards
    UNAVAILABLE = "unavailable"  # the tool call is disabled: nothing can prove serving


@dataclass(frozen=True, slots=True)
class _Verdict:
    cls: NodeClass
    reason: str
    wants: ActionKind | None = None  # a power action this node needs, subject to the gates
    confirm: bool = False
    prove: bool = False  # ask the cluster's endpoint for a tool call now
    held: bool = False  # not judged: class and pages stay as they are until fresh evidence
    blocked: Blocked | None = None  # what holds its power action back (said in ``reason``)

    def blocked_by(self, blocked: Blocked) -> _Verdict:
        """This verdict with its power action held back, and the reason saying why."""
        return replace(self, reason=f"{self.reason}; {blocked.text}", wants=None, blocked=blocked)


_PLUG_UNUSABLE = Blocked(Blocker.PLUG, "cannot act: plug unusable")


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
    nodes = dict(fleet.nodes)
    for name in names:
        st = _sight(fleet.nodes[name], judge_blind, now)
        st, verdict = _classify(st, fleet.clusters[st.cluster], cfg, now, judge_blind)
        nodes[name] = st
        verdicts[name] = verdict
    fleet = replace(fleet, nodes=nodes)
    fleet, verdicts, power = _gate(fleet, verdicts, cfg, now, gate_hold)

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
        if st.reason != v.reason or st.blocked != v.blocked:
            st = replace(st, reason=v.reason, blocked=v.blocked)
        nodes[name] = st
    fleet = replace(fleet, nodes=nodes)
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


def _sight_returned(fleet: FleetState, now: float) -> FleetState:
    """The fleet was blind and sees again: every node is probed afresh before it is judged,
    and endpoint failures that darkness alone explains (no answer at all) start again."""
    nodes = {n: _regain(st, now) for n, st in fleet.nodes.items()}
    clusters = {
        c: replace(
            cs,
            probes={
                k: restart(ev) if ev.last_failure in _NO_ANSWER else ev
                for k, ev in cs.probes.items()
            },
        )
        for c, cs in fleet.clusters.items()
    }
    return replace(fleet, nodes=nodes, clusters=clusters)


def _sight(st: NodeState, blind: str | None, now: float) -> NodeState:
    """Track whether the watchdog sees the node; on regaining sight, restart its suspicion.
    A plug reading taken before sight returned says nothing either way."""
    stale = st.plug_at is not None and st.sight_at is not None and st.plug_at < st.sight_at
    sees = blind is None and (_answers(st.plug) or stale)
    if not sees and not st.dark:
        return replace(st, dark=True)
    if sees and st.dark:
        return _regain(st, now)
    return st


def _regain(st: NodeState, now: float) -> NodeState:
    """Sight returns: every failure streak (sshd, ping, plug misses) starts again from zero."""
    return replace(
        st,
        dark=False,
        sight_at=now,
        ssh=restart(st.ssh),
        ping=restart(st.ping),
        plug_misses=0,
        plug_missing_since=None,
    )


def _answers(plug: PlugReading | None) -> bool:
    """Something answered at the plug's address (even a refusal of our credentials proves the
    watchdog sees that far); only an unreachable plug is dark."""
    return plug is None or plug.reachable or plug.failure is not FailureKind.PLUG_UNREACHABLE


def _fresh(st: NodeState, cfg: Config) -> bool:
    """Probed afresh since sight returned (or since start-up): its sshd (its plug, when sshd
    is not probed). A wedge verdict needs its own fresh plug reading besides."""
    if st.sight_at is None:
        return True
    if _ssh_enabled(cfg, st.name):
        return st.ssh.last_started is not None and st.ssh.last_started >= st.sight_at
    return st.plug_at is not None and st.plug_at >= st.sight_at


def _ssh(cfg: Config, name: str) -> Ssh | None:
    """The node's sshd probe settings; None for a node a reload removed."""
    try:
        return cfg.node(name)[1].ssh
    except KeyError:
        return None


def _stale_after(cfg: Config, name: str) -> float:
    """An ssh result older than two probe periods no longer says how the node is now."""
    ssh = _ssh(cfg, name)
    return float("inf") if ssh is None else 2 * (ssh.interval + ssh.timeout)


def _ssh_enabled(cfg: Config, name: str) -> bool:
    ssh = _ssh(cfg, name)
    return ssh is None or ssh.enabled


def _cluster_verified(cs: ClusterState, cfg: Config) -> bool:
    """Every enabled endpoint probe has answered since start-up."""
    return all(
        (ev := cs.evidence(k)).last_started is not None and ev.last_started >= cs.fresh_from
        for k in _endpoint_probes(_cluster(cfg, cs.name))
    )


def _endpoint_probes(cluster: Cluster | None) -> list[ProbeKind]:
    if cluster is None:
        return [ProbeKind.HEALTH]
    ep = cluster.endpoint
    return [
        k
        for k, on in (
            (ProbeKind.HEALTH, ep.health.enabled),
            (ProbeKind.MODELS, ep.models.enabled),
            (ProbeKind.TOOL_CALL, ep.tool_call.enabled),
        )
        if on
    ] or [ProbeKind.HEALTH]


def _wedge_signal(st: NodeState, now: float) -> bool:
    """sshd fails in a way that may mean a wedge, and the node is not in a power story."""
    return (
        st.ssh.failing
        and st.ssh.last_failure in _WEDGE_SSH
        and st.cycling_since is None
        and st.boot_started_at is None
        and not st.latched
        and not st.in_maintenance(now)
    )


@dataclass(frozen=True, slots=True)
class FleetFacts:
    """The fleet-wide facts every verdict and page depends on: when one changes, every node
    must be judged again (see :mod:`watchdog.core.incremental`)."""

    blind: str | None  # why the watchdog cannot see (or cannot trust what it sees)
    witness_misses: bool  # a configured witness is failing (below the blind threshold)
    sweep: bool  # several nodes fail on ssh and not every plug was read since


def fleet_facts(
    fleet: FleetState,
    cfg: Config,
    now: float,
    hold: str | None,
    starts: Collection[float] | None = None,
) -> FleetFacts:
    """``starts``: when each node with a wedge signal began to fail (None: scan the fleet)."""
    return FleetFacts(
        _blind_reason(fleet, cfg, now) or hold,
        bool(cfg.watchdog.witnesses and fleet.witness.failing),
        _sweep_needed(fleet, cfg, now, starts),
    )


def signal_starts(fleet: FleetState, now: float) -> list[float]:
    """When each node with a wedge signal began to fail, by a scan of the fleet."""
    return [
        st.ssh.failing_since or now
        for st in fleet.nodes.values()
        if st.ssh.consecutive and _wedge_signal(st, now)
    ]


def _sweep_needed(
    fleet: FleetState, cfg: Config, now: float, starts: Collection[float] | None = None
) -> bool:
    """Two or more nodes turned suspect on ssh within one confirm interval, no node's sshd
    answered a probe begun since the latest of them began (that would prove the watchdog
    sees), and not every plug was read since then (a sweep, or each plug on its own).

    ``starts``: when each node with a wedge signal began to fail (None: scan the fleet).
    """
    if starts is None:
        starts = signal_starts(fleet, now)
    if len(starts) < 2:
        return False
    latest = max(starts)
    if sum(1 for t in starts if latest - t <= cfg.policy.confirm_interval) < 2:
        return False
    if fleet.swept_at is not None and fleet.swept_at >= latest:
        return False
    # A banner read by a probe begun after the burst proves the watchdog sees: no sweep.
    if fleet.banner_at is not None and fleet.banner_at >= latest:
        return False
    return any(
        st.plug_at is None or st.plug_at < latest
        for st in fleet.nodes.values()
        if st.cycling_since is None
    )


def proof(cs: ClusterState, cluster: Cluster | None, since: float, node: str = "") -> Proof:
    """Did the endpoint complete a real tool call after ``since``? Without a tool call, did
    the endpoint answer ``/health`` or ``/v1/models`` from ``node`` itself since then?"""
    if cluster is None:
        return Proof.UNAVAILABLE
    if not cluster.endpoint.tool_call.enabled:
        hosts = [n for n in cluster.nodes if n.name == node and n.host == _endpoint_host(cluster)]
        answered = any(cs.evidence(k).ok_since(since) for k in (ProbeKind.HEALTH, ProbeKind.MODELS))
        return Proof.ANSWERING if hosts and answered else Proof.UNAVAILABLE
    ev = cs.evidence(ProbeKind.TOOL_CALL)
    if ev.last_at is None or ev.last_at < since:
        return Proof.PENDING
    return Proof.NOT_SERVING if ev.failing else Proof.SERVING


def _blind_reason(fleet: FleetState, cfg: Config, now: float) -> str | None:
    p = cfg.policy
    if fleet.link_up is False:
        return "the watchdog's own network link is down"
    if cfg.watchdog.witnesses and fleet.witness.meets(p.failure_threshold, 0.0, now):
        return f"no reference target answers ({fleet.witness.last_detail or 'witness failing'})"
    # Without witnesses, mass failure with no plug answering is blindness, not a wedge.
    all_dark = all(st.ssh.failing and not _answers(st.plug) for st in fleet.nodes.values())
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
    if blind is not None and (st.ssh.failing or endpoint is not None or st.dark):
        return st, _Verdict(NodeClass.BLIND, f"cannot see: {blind}")
    plug = st.plug
    if st.dark and st.ssh.failing:
        return st, _Verdict(
            NodeClass.SUSPECT,
            f"cannot judge: its plug does not answer ({plug.detail if plug else 'no reading'})",
            confirm=True,
        )
    if not _fresh(st, cfg) and not boot_failed:
        # No confirmation burst: the node's next regular probe makes it fresh (a burst for
        # every node after a restart or a blind spell would be a stampede on a large fleet).
        reason = st.reason or "waiting for a fresh probe"
        return st, _Verdict(st.cls, reason, held=True, blocked=st.blocked)
    armed = st.seen_healthy or now - st.first_seen >= p.startup_timeout
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
        began = ssh.failing_since if ssh.failing_since is not None else now
        served = proof(cs, _cluster(cfg, st.cluster), began, st.name)
        pending = served is Proof.PENDING
        if not (boot_failed or ssh.meets(p.failure_threshold, p.failure_duration, now)):
            return st, _Verdict(
                NodeClass.SUSPECT,
                f"ssh {ssh.last_failure}: {ssh.consecutive}/{p.failure_threshold} failures, "
                f"held {ssh.held(now):.0f}s",
                confirm=True,
                prove=pending,
            )
        if served is Proof.SERVING:
            ok_at = cs.evidence(ProbeKind.TOOL_CALL).ok_at or now
            return st, _Verdict(
                NodeClass.SSH_DOWN,
                f"ssh {ssh.last_failure} {ssh.consecutive}x over {ssh.held(now):.0f}s, but the "
                f"endpoint completed a tool call {now - ok_at:.0f}s ago: serving, never powered",
            )
        if served is Proof.ANSWERING:
            return st, _Verdict(
                NodeClass.SSH_DOWN,
                f"ssh {ssh.last_failure} {ssh.consecutive}x over {ssh.held(now):.0f}s, but the "
                "endpoint on this node still answers (no tool call configured): never powered",
            )
        if pending:
            return st, _Verdict(
                NodeClass.SUSPECT,
                f"ssh {ssh.last_failure}: waiting for a tool call to prove or rule out serving",
                confirm=True,
                prove=True,
            )
        why = (
            "sshd did not return within boot_timeout"
            if boot_failed
            else (f"ssh {ssh.last_failure} {ssh.consecutive}x over {ssh.held(now):.0f}s")
        )
        if plug is None or st.plug_at is None or st.plug_at < began:
            return st, _Verdict(
                NodeClass.SUSPECT, f"{why}; reading its plug before judging", confirm=True
            )
        if not boot_failed and now - (ssh.last_at or now) > _stale_after(cfg, st.name):
            return st, _Verdict(
                NodeClass.SUSPECT,
                f"{why}; the last ssh probe is stale, probing again",
                confirm=True,
            )
        if not plug.reachable:
            return st, _Verdict(NodeClass.WEDGED, why).blocked_by(_PLUG_UNUSABLE)
        return st, _Verdict(NodeClass.WEDGED, why, ActionKind.POWER_CYCLE)
    if not _cluster_verified(cs, cfg) and st.cls is not NodeClass.UNKNOWN:
        # The endpoint not probed yet: judged once it has been.
        return st, _Verdict(st.cls, st.reason, held=True, blocked=st.blocked)
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
    return st, _Verdict(NodeClass.HEALTHY, HEALTHY_REASON)


def settled(st: NodeState, cs: ClusterState, cfg: Config) -> bool:
    """Judged healthy with nothing pending: no failing evidence, nothing paged, no power
    story, sight and a fresh probe. While the fleet-wide facts stay clear (nothing blind, no
    witness missing, no sweep due, not overloaded, no page open or to re-state), judging it
    again after a passing probe of it or its cluster, at any later time, leaves it as it is
    and pages nothing: :mod:`watchdog.core.incremental` skips that evaluation."""
    plug = st.plug
    return (
        st.cls is NodeClass.HEALTHY
        and st.reason == HEALTHY_REASON
        and st.seen_healthy
        and not (st.open_alerts or st.latched or st.paused or st.restore_on)
        and not (st.cycle_failed or st.dark or st.plug_misses)
        and st.cycling_since is None
        and st.boot_started_at is None
        and not st.ssh.failing
        and not st.ping.failing
        and _answers(plug)
        and not (plug is not None and plug.reachable and plug.is_on is False)
        and _fresh(st, cfg)
        and not cs.open_alerts
        and not any(ev.failing for ev in cs.probes.values())
    )


def _endpoint_host(cluster: Cluster) -> str:
    return (urlsplit(cluster.endpoint.base_url).hostname or "").lower()


def _cluster(cfg: Config, name: str) -> Cluster | None:
    return cfg.cluster(name)


def _serving_since(cs: ClusterState, cluster: Cluster | None, since: float) -> bool:
    """Every enabled endpoint probe has passed since ``since`` (recovery confirmed)."""
    return all(cs.evidence(k).ok_since(since) for k in _endpoint_probes(cluster))


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
