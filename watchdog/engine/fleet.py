"""The fleet keeper: owns the fleet state and runs observe → evaluate → apply (orchestration).

A probe result is **observed** (folded into the evidence; a failure our own late event loop
caused is dropped; a failure is logged as a warning when it is news — the first of a streak,
or another kind of failure — and at debug level when it repeats), then only what it can
change is **evaluated** (:mod:`watchdog.core.incremental`), and every decision is **applied**
here, in one place: transitions logged, alerts submitted, power actions handed to the power
runner, confirmation bursts, proofs and sweeps handed to the bursts, and the records
persisted through :class:`watchdog.engine.saves.Saves` when a durable field changed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace
from typing import Protocol

from watchdog.core.evidence import (
    Evidence,
    FleetState,
    observe_endpoint,
    observe_node,
    reconcile,
)
from watchdog.core.incremental import Scope, members_index
from watchdog.core.model import (
    AlertAction,
    AlertEvent,
    EventType,
    FailureKind,
    NodeClass,
    PowerAction,
    ProbeKind,
    ProbeResult,
    Severity,
    Transition,
)
from watchdog.core.policy import Decision
from watchdog.engine.context import Context
from watchdog.engine.overload import LoopMonitor
from watchdog.engine.saves import Saves
from watchdog.state import history
from watchdog.state.persist import from_persisted
from watchdog.state.store import PersistedState, Store
from watchdog.telemetry import metrics
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")

_FULL_EVERY = 30.0  # a full evaluation now and then, behind the incremental ones
# Failures that a deadline produced: if our own loop ate half the budget, they are ours.
_DEADLINE = frozenset(
    {FailureKind.TIMEOUT, FailureKind.CONNECT_TIMEOUT, FailureKind.NO_BANNER, FailureKind.NO_REPLY}
)
_CLASS_EVENT = {
    NodeClass.WEDGED: (EventType.NODE_WEDGED, Severity.CRITICAL),
    NodeClass.BLIND: (EventType.BLIND, Severity.CRITICAL),
    NodeClass.GIVEN_UP: (EventType.GAVE_UP, Severity.CRITICAL),
    NodeClass.DEGRADED: (EventType.DEGRADED, Severity.ERROR),
    NodeClass.MISCONFIGURED: (EventType.MISCONFIGURED, Severity.WARNING),
}


class PowerStarter(Protocol):
    def start(self, action: PowerAction) -> None: ...


class FollowUps(Protocol):
    """What a decision may ask to run at once, besides power actions."""

    def confirm_soon(self, name: str) -> None: ...
    def prove(self, cluster: str) -> None: ...
    def sweep(self) -> None: ...


class Fleet:
    """Owns the fleet state of one engine; every change to it goes through here."""

    def __init__(self, ctx: Context, store: Store, monitor: LoopMonitor) -> None:
        self._ctx = ctx
        self.monitor = monitor
        self.saves = Saves(store, ctx, lambda: self.state)
        self._state: FleetState | None = None
        self.dropped = 0  # failed probe results dropped because our own loop was late
        # Incremental evaluation: time-sensitive nodes, cluster members, last fleet outlook.
        self._index: dict[str, tuple[str, ...]] = {}
        self._scope = Scope(self._index)
        self._last_full = 0.0
        self._power: PowerStarter | None = None
        self._follow: FollowUps | None = None

    def wire(self, power: PowerStarter, follow: FollowUps) -> None:
        """Name who carries out power actions and follow-ups (once, before :meth:`start`)."""
        self._power, self._follow = power, follow

    @property
    def state(self) -> FleetState:
        assert self._state is not None
        return self._state

    @state.setter
    def state(self, fleet: FleetState) -> None:
        self._state = fleet

    # ------------------------------------------------------------------ configuration
    def start(self, loaded: PersistedState) -> None:
        """Adopt the state loaded from disk for the config in force."""
        self.saves.persisted = loaded
        self._state = from_persisted(loaded, self.members(), self._ctx.clock())
        for cluster in self._ctx.cfg.clusters:
            if not cluster.endpoint.tool_call.enabled:
                log.warning(
                    "cluster %s: tool_call is disabled, so nothing can prove that it serves: "
                    "sshd alone decides whether a node is wedged (no serving veto)",
                    cluster.name,
                )
        self._index = members_index(self.state)
        self._scope.reset(self._index)

    def reconfigured(self) -> None:
        """The config changed: keep node histories, re-state every open page (the alert
        channels may be new), and evaluate and persist everything next time."""
        self._state = replace(
            reconcile(self.state, self.members(), self._ctx.clock()), restate=True
        )
        self._index = members_index(self.state)
        self._scope.reset(self._index)  # the next evaluation is a full one
        self.saves.track(None)

    def members(self) -> dict[str, str]:
        return {n.name: c.name for c, n in self._ctx.cfg.nodes()}

    def members_of(self, cluster: str) -> tuple[str, ...]:
        return self._index.get(cluster, ())

    def sweep_still_asked(self) -> bool:
        """The last fleet outlook asks for a plug sweep (or none was made yet)."""
        return self._scope.last is None or self._scope.last.sweep

    # ------------------------------------------------------------------ observe, evaluate
    def observed(
        self,
        result: ProbeResult,
        *,
        node: str | None = None,
        cluster: str | None = None,
        evaluate: bool = True,
        started: float | None = None,
        budget: float | None = None,
    ) -> None:
        now = self._ctx.clock()
        if (
            result.failure in _DEADLINE
            and started is not None
            and budget is not None
            and self.monitor.lag_since(started) >= budget / 2
        ):
            # Our own event loop ate half the budget: not the target's failure.
            self.dropped += 1
            log.debug("dropped %s %s: the event loop was late", result.target, result.probe)
            return
        metrics.probe_observed(result)
        if not result.ok and self._news(result, node, cluster):
            owner = cluster or (self.state.node(node).cluster if node else None)
            log_event(
                log,
                EventType.PROBE_FAILED,
                f"{result.target} {result.probe}: {result.failure}: {result.detail}",
                severity=Severity.WARNING,
                node=node,
                cluster=owner,
                probe=result.probe,
                failure=result.failure,
                hint=result.hint,
                latency=f"{result.latency:.3f}",
            )
        elif not result.ok:  # the same failure again: the first one was logged
            log.debug("%s %s: %s again", result.target, result.probe, result.failure)
        if node is not None:
            self._state = observe_node(self.state, node, result, now)
            if evaluate:
                self.evaluate({node})
        elif cluster is not None:
            self._state = observe_endpoint(self.state, cluster, result, now)
            if evaluate:
                self.evaluate(self.members_of(cluster))

    def _news(self, result: ProbeResult, node: str | None, cluster: str | None) -> bool:
        """A failed result is news (logged as a warning) when its probe was passing before,
        or failed otherwise: a node that stays down does not log every probe."""
        before: Evidence | None = None
        if node is not None and (st := self.state.nodes.get(node)) is not None:
            before = {ProbeKind.SSH: st.ssh, ProbeKind.PING: st.ping}.get(result.probe)
        elif cluster is not None and (cs := self.state.clusters.get(cluster)) is not None:
            before = cs.probes.get(result.probe)
        return before is None or not before.failing or before.last_failure is not result.failure

    def evaluate(self, changed: Collection[str] | None = None) -> None:
        """Evaluate what ``changed`` nodes can affect; None (the default): every node."""
        now = self._ctx.clock()
        hold = self.monitor.reason()  # overloaded: the policy pages once, judges nothing
        if changed is None:
            self._last_full = now
        decision, only = self._scope.evaluate(
            self.state, changed, cfg=self._ctx.cfg, now=now, hold=hold
        )
        self.apply(decision, only)

    def ticked(self, now: float, *, changed: bool) -> None:
        """The tick's evaluation: time alone changes only the time-sensitive nodes; an
        operator request (``changed``) may change anything, and a full evaluation now and
        then backs the incremental ones."""
        if changed:
            self.evaluate()
            self.saves.save(now=True)  # what an operator was told is done is on disk
        elif now - self._last_full >= _FULL_EVERY:
            self.evaluate()
        else:
            self.evaluate(set(self._scope.watch))

    # ------------------------------------------------------------------ apply
    def apply(self, decision: Decision, only: Collection[str] | None = None) -> None:
        """Carry out a decision; ``only``: the nodes it evaluated (None: maybe all)."""
        assert self._power is not None and self._follow is not None, "wire() comes first"
        self._state = decision.fleet
        self.saves.track(only)
        for t in decision.transitions:
            self._log_transition(t)
        for action in decision.actions:
            if isinstance(action, AlertAction):
                self._alert(action.event)
            elif isinstance(action, PowerAction):
                self._power.start(action)
        for name in decision.confirm:
            self._follow.confirm_soon(name)
        for cluster in decision.prove:
            self._follow.prove(cluster)
        if decision.sweep:
            self._follow.sweep()
        self.saves.save()

    def _alert(self, event: AlertEvent) -> None:
        if event.restated:  # open before a restart or reload: the dispatcher adopts it
            log.info("page %s is still open: re-stated, not sent again", event.dedup_key)
            self._ctx.alerts.submit(event)
            return
        log_event(
            log,
            EventType.ALERT_SENT,
            f"alert {event.status}: {event.summary}",
            severity=event.severity,
            node=event.node,
            cluster=event.cluster or None,
            failure=event.failure,
            action=f"alert_{event.status}",
            condition=event.condition.value,
        )
        history.alert_raised(self._ctx.state_dir, event)
        self._ctx.alerts.submit(event)

    def _log_transition(self, t: Transition) -> None:
        event, severity = _CLASS_EVENT.get(t.new, (EventType.CLASS_CHANGED, Severity.INFO))
        if t.old is NodeClass.BOOTING and t.new is NodeClass.HEALTHY:
            event, severity = EventType.RECOVERED, Severity.INFO
        log_event(
            log,
            event,
            f"{t.node}: {t.old} -> {t.new}: {t.reason}",
            severity=severity,
            node=t.node,
            cluster=t.cluster,
            node_class=t.new,
            old_class=t.old.value,
        )
        self._ctx.narrate(f"{t.node}: {t.old} -> {t.new} ({t.reason})")
