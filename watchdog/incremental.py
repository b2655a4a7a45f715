"""Which nodes a change can affect, so a probe result re-evaluates only those (pure logic).

The policy (:func:`watchdog.policy.evaluate`) judges a node from its own state, its cluster's
endpoint evidence, the time, and three fleet-wide facts: whether the watchdog is blind (or
otherwise cannot trust what it sees), whether it may act, and who else competes for a power
action (oldest failure first, ``max_in_flight``, fleet caps). This module derives, for a change,
the smallest set of nodes whose evaluation gives the same result as evaluating them all:

- the nodes the change touched (a node probe: that node; an endpoint probe: its cluster's
  members; an operator request or a finished power action: that node);
- every node when a fleet-wide fact changed (:class:`~watchdog.policy.FleetFacts`: blind
  or not and why, a witness missing, a plug sweep due);
- every *time-sensitive* node (:func:`may_change_with_time`) when one of the touched nodes is
  or would be competing for a power action, or has just left one: the gate then sees every
  competitor as a full evaluation would.

Time alone changes only time-sensitive nodes, so the engine's tick evaluates just those.
``tests/test_incremental_evaluation.py`` checks, over random sequences of observations, that
this equals a full evaluation. No I/O, no clock; ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from watchdog.config import Config
from watchdog.evidence import ClusterState, FleetState, NodeState
from watchdog.model import NodeClass
from watchdog.policy import Decision, FleetFacts, _classify, evaluate, fleet_facts

Outlook = FleetFacts  # the fleet-wide facts every verdict depends on, at the last evaluation


def outlook(
    fleet: FleetState,
    cfg: Config,
    now: float,
    hold: str | None,
    candidates: Collection[str] | None = None,
) -> Outlook:
    return fleet_facts(fleet, cfg, now, hold, candidates)


def members_index(fleet: FleetState) -> dict[str, tuple[str, ...]]:
    """Cluster -> its nodes, in the fleet's order (as a scan of the fleet would list them)."""
    out: dict[str, list[str]] = {c: [] for c in fleet.clusters}
    for name, st in fleet.nodes.items():
        out.setdefault(st.cluster, []).append(name)
    return {c: tuple(v) for c, v in out.items()}


def may_change_with_time(st: NodeState, cs: ClusterState) -> bool:
    """Whether the passing of time alone can change this node's verdict or alerts.

    A healthy node with nothing failing, not paused, not booting and not in a power action is
    judged the same at any later time (arming only ever becomes true); everything else —
    thresholds held for a duration, boot and serve graces, pause expiry, back-off, budget
    windows — depends on ``now``.
    """
    return (
        st.cls is not NodeClass.HEALTHY
        or st.paused
        or st.boot_started_at is not None
        or st.cycling_since is not None
        or st.restore_on
        or st.ssh.failing
        or st.ping.failing
        or any(ev.failing for ev in cs.probes.values())
    )


def update_watch(fleet: FleetState, watch: set[str], only: Collection[str] | None) -> set[str]:
    """The time-sensitive set after an evaluation of ``only`` (None: of every node)."""
    if only is None:
        return {
            n
            for n, st in fleet.nodes.items()
            if may_change_with_time(st, fleet.clusters[st.cluster])
        }
    for n in only:
        st = fleet.nodes.get(n)
        if st is not None and may_change_with_time(st, fleet.clusters[st.cluster]):
            watch.add(n)
        else:
            watch.discard(n)
    return watch


def _competes(st: NodeState, fleet: FleetState, cfg: Config, now: float, look: Outlook) -> bool:
    """The node is, or has just stopped, competing for a power action."""
    if st.cycling_since is not None or st.cls is NodeClass.CYCLING:
        return True  # a slot in flight is taken or freed: the waiting ones must see it
    _, verdict = _classify(st, fleet.clusters[st.cluster], cfg, now, look.blind)
    return verdict.wants is not None


def scope(
    fleet: FleetState,
    changed: Collection[str],
    *,
    cfg: Config,
    now: float,
    last: Outlook | None,
    watch: Collection[str],
    hold: str | None = None,
) -> tuple[Collection[str] | None, Outlook]:
    """The nodes to evaluate after ``changed`` were touched (None: all of them).

    ``watch`` holds the time-sensitive nodes (kept up to date by the caller with
    :func:`may_change_with_time` after each evaluation); ``last`` is the outlook of the
    previous evaluation.
    """
    # Every failing node is time-sensitive (in ``watch``) or has just changed.
    look = outlook(fleet, cfg, now, hold, {*watch, *changed})
    if last is None or look != last:
        return None, look
    if any(_competes(fleet.nodes[n], fleet, cfg, now, look) for n in changed) and _room(
        fleet, cfg, now, watch
    ):
        return {*changed, *watch}, look
    return changed, look


def _room(fleet: FleetState, cfg: Config, now: float, watch: Collection[str]) -> bool:
    """Whether the gate could start a power action at all. If it cannot, every competitor
    is blocked on its own account and evaluating one needs none of the others.

    In-flight nodes and nodes left off are time-sensitive, so ``watch`` holds them all.
    """
    p = cfg.policy
    nodes = fleet.nodes
    in_flight = sum(1 for n in watch if nodes[n].cycling_since is not None)
    if in_flight >= p.max_in_flight:
        return False
    recent = sum(1 for _, t in fleet.fleet_cycles if now - t < p.fleet_window)
    return recent < p.fleet_max_cycles or any(nodes[n].restore_on for n in watch)


def evaluate_scoped(
    fleet: FleetState,
    changed: Collection[str] | None,
    *,
    cfg: Config,
    now: float,
    last: Outlook | None,
    watch: Collection[str],
    members: Mapping[str, tuple[str, ...]],
    hold: str | None = None,
) -> tuple[Decision, Collection[str] | None, Outlook]:
    """Evaluate what ``changed`` can affect (``None``: everything); returns the decision,
    the nodes evaluated (None: all) and the new outlook."""
    if changed is None:
        only: Collection[str] | None = None
        look = outlook(fleet, cfg, now, hold)
    else:
        only, look = scope(fleet, changed, cfg=cfg, now=now, last=last, watch=watch, hold=hold)
    candidates = None if only is None else {*watch, *only}
    decision = evaluate(
        fleet, now, cfg, only=only, members=members, hold=hold, candidates=candidates
    )
    return decision, only, look


class Scope:
    """The bookkeeping behind incremental evaluation, for one fleet.

    Holds the time-sensitive nodes, the last outlook, and the nodes that changed class at the
    last evaluation: a transition is not always a fixed point (a node that was just given a
    power action is *cycling* with a new reason at its next evaluation), so those are
    evaluated again with whatever comes next, as a full evaluation would.
    """

    def __init__(self, members: Mapping[str, tuple[str, ...]]) -> None:
        self.members = members
        self.watch: set[str] = set()
        self.last: Outlook | None = None
        self.carry: set[str] = set()

    def reset(self, members: Mapping[str, tuple[str, ...]]) -> None:
        """New cluster membership (a reload): the next evaluation is a full one."""
        self.members = members
        self.last = None
        self.watch = set()
        self.carry = set()

    def evaluate(
        self,
        fleet: FleetState,
        changed: Collection[str] | None,
        *,
        cfg: Config,
        now: float,
        hold: str | None = None,
    ) -> tuple[Decision, Collection[str] | None]:
        """Evaluate what ``changed`` can affect (None: every node); also returns the nodes
        evaluated (None: all)."""
        if changed is not None:
            changed = {*changed, *(n for n in self.carry if n in fleet.nodes)}
        decision, only, self.last = evaluate_scoped(
            fleet,
            changed,
            cfg=cfg,
            now=now,
            last=self.last,
            watch=self.watch,
            members=self.members,
            hold=hold,
        )
        self.watch = update_watch(decision.fleet, self.watch, only)
        self.carry = {t.node for t in decision.transitions}
        return decision, only
