"""Node classification: one node's class and the power action it wants, before the gates (pure).

:func:`_classify` judges a node from its own state, its cluster's endpoint evidence and the
time, in the order of docs/design.md, "Decision rules": latched, maintenance, in a power
action, booting (boot and serve grace), blind or dark, not yet probed afresh, plug off, wrong
banner, the ssh wedge path (count and duration thresholds, serving proof, a fresh plug
reading), endpoint faults, healthy. The result is a :class:`_Verdict`; the gates in
:mod:`watchdog.core.policy` decide whether its power action may run. :func:`settled` says when
judging a healthy node again cannot change anything; :func:`timeless` when the passing of time
alone cannot change a verdict. A reason says what the evidence shows (``ssh no_banner 5x over
40s``: the span the failures cover), never a running age, so a verdict that holds keeps its
words. No I/O, no clock: ``now`` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.config import Config, Ssh
from watchdog.core.evidence import ClusterState, Evidence, NodeState
from watchdog.core.model import ActionKind, Blocked, Blocker, FailureKind, NodeClass, ProbeKind
from watchdog.core.proof import Proof, _cluster, _cluster_verified, _serving_since, proof
from watchdog.core.records import replace
from watchdog.core.sight import _WEDGE_SSH, _answers

# The reason of a node judged healthy with nothing to say (see ``settled``).
HEALTHY_REASON = "all probes pass"


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

    endpoint = _endpoint_fault(cs)
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
    armed = _armed(st, cfg, now)
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
                f"ssh {ssh.last_failure}: {ssh.consecutive}/{p.failure_threshold} failures "
                f"over {_span(ssh):.0f}s",
                confirm=True,
                prove=pending,
            )
        if served is Proof.SERVING:
            ok_at = cs.evidence(ProbeKind.TOOL_CALL).ok_at or began
            return st, _Verdict(
                NodeClass.SSH_DOWN,
                f"{_streak(ssh)}, but the endpoint completed a tool call {ok_at - began:.0f}s "
                "after ssh began failing: serving, never powered",
            )
        if served is Proof.ANSWERING:
            return st, _Verdict(
                NodeClass.SSH_DOWN,
                f"{_streak(ssh)}, but the endpoint on this node still answers (no tool call "
                "configured): never powered",
            )
        if pending:
            return st, _Verdict(
                NodeClass.SUSPECT,
                f"ssh {ssh.last_failure}: waiting for a tool call to prove or rule out serving",
                confirm=True,
                prove=True,
            )
        why = "sshd did not return within boot_timeout" if boot_failed else _streak(ssh)
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


def _span(ev: Evidence) -> float:
    """How long the failures of the current streak span, first to last: from the evidence
    alone, so a reason that says it stays the same until the next result."""
    if ev.failing_since is None or ev.last_at is None:
        return 0.0
    return max(0.0, ev.last_at - ev.failing_since)


def _streak(ssh: Evidence) -> str:
    """The ssh failure streak in words, e.g. ``ssh no_banner 5x over 40s``."""
    return f"ssh {ssh.last_failure} {ssh.consecutive}x over {_span(ssh):.0f}s"


def timeless(st: NodeState, cs: ClusterState, cfg: Config, now: float, blind: str | None) -> bool:
    """Whether this node, as judged at ``now``, is judged the same at any later time while no
    new evidence arrives and the fleet-wide facts (``blind`` among them) hold: same class,
    reason and pages, no power action wanted, no confirmation or proof asked.

    It follows :func:`_classify` step by step. Time enters a verdict only through a timed
    pause, the boot and serve graces, arming and the thresholds (which only ever turn true:
    ``Evidence.meets`` is monotone in time), a stale ssh probe and the gates of a power action;
    pages (:mod:`watchdog.core.paging`) read classes and evidence, not the time.
    """
    p = cfg.policy
    if st.cycling_since is not None or st.restore_on:
        return False  # a power action in flight, or one to restore: graces and gates run
    if st.latched:
        return True  # given up: nothing but an operator's clear changes it
    if st.paused:
        return st.paused_until is None  # in maintenance for good; a timed pause ends
    if st.boot_started_at is not None:
        return False  # boot and serve graces
    ssh = st.ssh
    failing = ssh.failing or any(ev.failing for ev in cs.probes.values())
    if st.cls is NodeClass.HEALTHY and not failing:
        return True  # judged healthy (armed: that only turns true), or held as healthy
    if blind is not None and (failing or st.dark):
        return True  # blind: judged again when sight returns, a fleet-wide fact
    if st.dark and ssh.failing:
        return False  # cannot judge: a confirmation is asked
    if not _fresh(st, cfg):
        return True  # held as it is until probed afresh
    plug = st.plug
    if plug is not None and plug.reachable and plug.is_on is False:
        return not p.power_on_if_off  # a wanted power-on goes through the gates
    thresholds = (p.failure_threshold, p.failure_duration, now)
    if ssh.failing and ssh.last_failure is FailureKind.BAD_BANNER:
        return ssh.meets(*thresholds)  # misconfigured, for good; suspect until then
    if ssh.failing and ssh.last_failure in _WEDGE_SSH:
        if not _armed(st, cfg, now) or ssh.failing_since is None or not ssh.meets(*thresholds):
            return False
        # ssh_down: the proof is evidence about the time the failure began. Every other
        # outcome asks for something, wants power or turns stale with time.
        served = proof(cs, _cluster(cfg, st.cluster), ssh.failing_since, st.name)
        return served in (Proof.SERVING, Proof.ANSWERING)
    if not _cluster_verified(cs, cfg) and st.cls is not NodeClass.UNKNOWN:
        return True  # held until the endpoint is probed
    endpoint = _endpoint_fault(cs)
    if endpoint is not None:
        return endpoint[1].meets(*thresholds)  # degraded or misconfigured; suspect until then
    return _armed(st, cfg, now)  # healthy; not armed


def _armed(st: NodeState, cfg: Config, now: float) -> bool:
    """Seen healthy once, or given ``startup_timeout`` to be: a node may be judged (this
    only ever turns true)."""
    return st.seen_healthy or now - st.first_seen >= cfg.policy.startup_timeout


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


def _endpoint_fault(cs: ClusterState) -> tuple[str, Evidence] | None:
    """The endpoint probe to blame: config faults first, then the one failing most often,
    then the one failing longest (from the evidence alone: the same choice at any time)."""
    failing = [(str(k), ev) for k, ev in sorted(cs.probes.items()) if ev.failing]
    if not failing:
        return None
    config = [(k, ev) for k, ev in failing if ev.last_failure and ev.last_failure.is_config_fault]
    pool = config or failing
    return max(pool, key=lambda kv: (kv[1].consecutive, -_began(kv[1])))


def _began(ev: Evidence) -> float:
    return float("inf") if ev.failing_since is None else ev.failing_since
