"""Which nodes a change can affect, so a probe result re-evaluates only those (pure logic).

The policy (:func:`watchdog.core.policy.evaluate`) judges a node from its own state, its cluster's
endpoint evidence, the time, and three fleet-wide facts: whether the watchdog is blind (or
otherwise cannot trust what it sees), whether it may act, and who else competes for a power
action (oldest failure first, ``max_in_flight``, fleet caps). This module derives, for a change,
the smallest set of nodes whose evaluation gives the same result as evaluating them all:

- the nodes the change touched (a node probe: that node; an endpoint probe: its cluster's
  members; an operator request or a finished power action: that node);
- every node when a fleet-wide fact changed (:class:`~watchdog.core.sight.FleetFacts`: blind
  or not and why, a witness missing, a plug sweep due);
- every *time-sensitive* node (:func:`may_change_with_time`) when one of the touched nodes is
  or would be competing for a power action, or has just left one: the gate then sees every
  competitor as a full evaluation would.

Nothing at all needs judging when every touched node is *settled* (healthy, nothing pending:
:func:`~watchdog.core.classify.settled`) and the fleet-wide facts are clear: a passing probe of a
healthy node, the common case, costs no evaluation. The fleet-wide facts themselves are kept
cheap: the nodes whose sshd failure may mean a wedge are indexed, so no fact scans the fleet.
Time alone changes only time-sensitive nodes, so the engine's tick evaluates just those. A
verdict that is a fixed point in time (:func:`~watchdog.core.classify.timeless`: healthy,
``ssh_down`` with serving proved, given up, degraded with its thresholds met…) is not one:
its reason says what the evidence shows, not how long ago, and only new evidence, an
operator or a fleet-wide fact changes it, each of which evaluates the node anyway.
``tests/test_incremental_evaluation.py`` checks, over random sequences of observations, that
this equals a full evaluation. No I/O, no clock; ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from watchdog.config import Config
from watchdog.core.classify import _classify, settled, timeless
from watchdog.core.evidence import ClusterState, FleetState, NodeState
from watchdog.core.model import NodeClass, PowerAction
from watchdog.core.policy import Decision, evaluate
from watchdog.core.sight import FleetFacts, _wedge_signal, fleet_facts, signal_starts

Outlook = FleetFacts  # the fleet-wide facts every verdict depends on, at the last evaluation
_LATER = float("inf")


def members_index(fleet: FleetState) -> dict[str, tuple[str, ...]]:
    """Cluster -> its nodes, in the fleet's order (as a scan of the fleet would list them)."""
    out: dict[str, list[str]] = {c: [] for c in fleet.clusters}
    for name, st in fleet.nodes.items():
        out.setdefault(st.cluster, []).append(name)
    return {c: tuple(v) for c, v in out.items()}


def may_change_with_time(
    st: NodeState, cs: ClusterState, cfg: Config, now: float, blind: str | None
) -> bool:
    """Whether the passing of time alone can change this node's verdict or pages, as judged
    at ``now`` with the fleet-wide ``blind`` fact: the clock re-judges a node only while its
    verdict can change with time alone.

    Not for a verdict that is a fixed point in time (:func:`~watchdog.core.classify.timeless`):
    a healthy node, an ``ssh_down`` one (thresholds met, serving proved since its failure
    began), one given up, paused for good, held until probed afresh, switched off with no
    power-on wanted, or degraded or misconfigured with its thresholds met. Everything else —
    thresholds still to be held for a duration, arming, boot and serve graces, pause expiry,
    a stale ssh probe, back-off and budget windows — depends on ``now``. A node in a power
    action or left off by one is always time-sensitive: :func:`_room` counts them from here.
    """
    return not timeless(st, cs, cfg, now, blind)


def _competes(st: NodeState, fleet: FleetState, cfg: Config, now: float, look: Outlook) -> bool:
    """The node is, or has just stopped, competing for a power action."""
    if st.cycling_since is not None or st.cls is NodeClass.CYCLING:
        return True  # a slot in flight is taken or freed: the waiting ones must see it
    _, verdict = _classify(st, fleet.clusters[st.cluster], cfg, now, look.blind)
    return verdict.wants is not None


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


def _only_sweep_changed(last: Outlook | None, look: Outlook) -> bool:
    """The watchdog sees, as before, and only whether a plug sweep is due changed."""
    return (
        last is not None
        and look.blind is None
        and last.blind is None
        and look.witness_misses == last.witness_misses
    )


def _quiet(fleet: FleetState, look: Outlook, hold: str | None) -> bool:
    """No fleet-wide fact is set and no fleet page is open or due to be re-stated."""
    return not (
        look.blind
        or look.witness_misses
        or look.sweep
        or hold
        or fleet.restate
        or fleet.blind_alert_open
        or fleet.overload_alert_open
        or fleet.blind_since is not None
    )


class Scope:
    """The bookkeeping behind incremental evaluation, for one fleet.

    Holds the time-sensitive nodes (``watch``), the last outlook, the nodes that changed class
    at the last evaluation (a transition is not always a fixed point: a node just given a
    power action is *cycling* with a new reason at its next evaluation, so those are evaluated
    again with whatever comes next, as a full evaluation would), and an index of the nodes
    whose sshd failure may mean a wedge, with when that failure began, so that whether a plug
    sweep is due is answered without a scan of the fleet.
    """

    def __init__(self, members: Mapping[str, tuple[str, ...]]) -> None:
        self.reset(members)

    def reset(self, members: Mapping[str, tuple[str, ...]]) -> None:
        """New cluster membership (a reload): the next evaluation is a full one."""
        self.members = members
        self.last: Outlook | None = None
        self.watch: set[str] = set()
        self.unsettled: set[str] = set()  # nodes not settled at their last evaluation
        self.carry: set[str] = set()
        self.signal: dict[str, NodeState] = {}  # nodes with a wedge signal at any time
        self._fixed: list[float] | None = None  # their failure starts, unpaused (a cache)
        self._paused: list[NodeState] = []

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
        if changed is None or self.last is None:
            return self._full(fleet, cfg, now, hold)
        changed = {*changed, *(n for n in self.carry if n in fleet.nodes)}
        self._index(fleet, changed)
        look = fleet_facts(fleet, cfg, now, hold, self._starts(now))
        if look != self.last:
            if not _only_sweep_changed(self.last, look):
                return self._full(fleet, cfg, now, hold)
            # Whether a plug sweep is due holds power actions and pages only: a settled node
            # is judged the same either way, so the others are judged, not the whole fleet.
            self.last = look
            changed = {*changed, *self.watch, *self.unsettled}
            decision = evaluate(
                fleet, now, cfg, only=changed, members=self.members, hold=hold, sweep=look.sweep
            )
            self._after(decision, changed, cfg, now)
            return decision, changed
        if _quiet(fleet, look, hold) and all(
            (st := fleet.nodes.get(n)) is not None and settled(st, fleet.clusters[st.cluster], cfg)
            for n in changed
        ):
            # Healthy nodes that passed another probe: judging them again changes nothing.
            self.watch.difference_update(changed)
            self.unsettled.difference_update(changed)
            self.carry = set()
            return Decision(fleet, (), (), frozenset(), frozenset(), False), ()
        only: set[str] = changed
        if any(_competes(fleet.nodes[n], fleet, cfg, now, look) for n in changed) and _room(
            fleet, cfg, now, self.watch
        ):
            only = {*changed, *self.watch}
        decision = evaluate(
            fleet, now, cfg, only=only, members=self.members, hold=hold, sweep=look.sweep
        )
        self._after(decision, only, cfg, now)
        return decision, only

    def _full(
        self, fleet: FleetState, cfg: Config, now: float, hold: str | None
    ) -> tuple[Decision, None]:
        self.last = fleet_facts(fleet, cfg, now, hold)
        decision = evaluate(fleet, now, cfg, members=self.members, hold=hold)
        self._after(decision, None, cfg, now)
        return decision, None

    def _after(
        self, decision: Decision, only: Collection[str] | None, cfg: Config, now: float
    ) -> None:
        fleet = decision.fleet
        blind = self.last.blind if self.last is not None else None
        if only is None:
            self.watch = {
                n
                for n, st in fleet.nodes.items()
                if may_change_with_time(st, fleet.clusters[st.cluster], cfg, now, blind)
            }
            self.unsettled = {
                n
                for n, st in fleet.nodes.items()
                if not settled(st, fleet.clusters[st.cluster], cfg)
            }
            self.signal = {}
            self._fixed = None
            self._index(fleet, fleet.nodes.keys())
        else:
            for n in only:
                st = fleet.nodes.get(n)
                if st is not None and may_change_with_time(
                    st, fleet.clusters[st.cluster], cfg, now, blind
                ):
                    self.watch.add(n)
                else:
                    self.watch.discard(n)
                if st is not None and not settled(st, fleet.clusters[st.cluster], cfg):
                    self.unsettled.add(n)
                else:
                    self.unsettled.discard(n)
            self._index(fleet, only)
        # A node just given a power action may keep its class (cycling again after a failed
        # cycle) but is judged anew next time ("power action in flight"): carry it too.
        self.carry = {t.node for t in decision.transitions} | {
            a.node for a in decision.actions if isinstance(a, PowerAction)
        }

    def _index(self, fleet: FleetState, names: Collection[str]) -> None:
        """Keep ``signal`` in step with these nodes: every node that has, or at some later
        time may have, a wedge signal (paused ones are judged at each use)."""
        for n in names:
            st = fleet.nodes.get(n)
            before = self.signal.get(n)
            # At a time past any timed pause: a node paused for good is never a signal.
            if st is not None and st.ssh.consecutive and _wedge_signal(st, _LATER):
                self.signal[n] = st
                if before is None or (before.ssh.failing_since, before.paused) != (
                    st.ssh.failing_since,
                    st.paused,
                ):
                    self._fixed = None
            elif before is not None:
                del self.signal[n]
                self._fixed = None

    def _starts(self, now: float) -> list[float]:
        """When each indexed node began to fail, ascending; kept between evaluations while no
        entry changed (paused nodes are judged at each call: a pause may have ended)."""
        if self._fixed is None:
            self._fixed = sorted(
                st.ssh.failing_since or now for st in self.signal.values() if not st.paused
            )
            self._paused = [st for st in self.signal.values() if st.paused]
        if not self._paused:
            return self._fixed
        return sorted(
            [
                *self._fixed,
                *(st.ssh.failing_since or now for st in self._paused if _wedge_signal(st, now)),
            ]
        )


__all__ = ["Outlook", "Scope", "may_change_with_time", "members_index", "signal_starts"]
