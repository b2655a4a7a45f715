"""What the engine does with decisions (orchestration layer): power actions, operator
requests, and the journal records of transitions and alerts.

A power action records its intent (fsync'd) before the plug is touched, runs the one
power-cycle procedure, then reports back to the pure lifecycle; at start-up any half-done
cycle is finished — the plug switched on, after the rest of its off time — before a single
probe runs. Operator requests arrive as files in the state directory and go through the same
lifecycle functions and budget bookkeeping as automatic decisions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from watchdog.config import Config
from watchdog.core import lifecycle
from watchdog.core.evidence import FleetState
from watchdog.core.model import (
    ActionKind,
    AlertEvent,
    EventType,
    NodeClass,
    PowerAction,
    ProbeResult,
    Severity,
    Transition,
)
from watchdog.core.policy import Decision
from watchdog.core.proof import Proof, proof
from watchdog.engine.suite import ProbeSuite
from watchdog.plugs.base import Plug
from watchdog.plugs.cycle import ensure_on, power_cycle
from watchdog.plugs.cycle_steps import CycleOutcome, CycleStep, StepReport
from watchdog.state import control, history
from watchdog.state.store import CycleIntent, IntentStep, PersistedState, Store
from watchdog.telemetry import metrics
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")


_CLASS_EVENT = {
    NodeClass.WEDGED: (EventType.NODE_WEDGED, Severity.CRITICAL),
    NodeClass.BLIND: (EventType.BLIND, Severity.CRITICAL),
    NodeClass.GIVEN_UP: (EventType.GAVE_UP, Severity.CRITICAL),
    NodeClass.DEGRADED: (EventType.DEGRADED, Severity.ERROR),
    NodeClass.MISCONFIGURED: (EventType.MISCONFIGURED, Severity.WARNING),
}


class Actions:
    """Mixin of :class:`watchdog.engine.engine.Engine`: carries out what the policy decided."""

    cfg: Config
    suite: ProbeSuite
    plugs: dict[str, Plug]
    store: Store
    state_dir: Path
    persisted: PersistedState
    fleet: FleetState | None
    clock: Callable[[], float]
    on_event: Callable[[str], None] | None
    _power_tasks: dict[str, asyncio.Task[None]]

    @property
    def state(self) -> FleetState:
        raise NotImplementedError

    def _apply(self, decision: Decision) -> None:
        raise NotImplementedError

    def _evaluate(self) -> None:
        raise NotImplementedError

    def _snapshot(self) -> PersistedState:
        raise NotImplementedError

    def _submit_alert(self, event: AlertEvent) -> None:
        raise NotImplementedError

    def _observed(self, result: ProbeResult, *, node: str, evaluate: bool) -> None:
        raise NotImplementedError

    def _alert(self, event: AlertEvent) -> None:
        if event.restated:  # open before a restart or reload: the dispatcher adopts it
            log.info("page %s is still open: re-stated, not sent again", event.dedup_key)
            self._submit_alert(event)
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
        history.alert_raised(self.state_dir, event)
        self._submit_alert(event)

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
        self._narrate(f"{t.node}: {t.old} -> {t.new} ({t.reason})")

    def _narrate(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    async def _power(self, action: PowerAction) -> None:
        node, plug = action.node, self.plugs[action.node]
        cluster = self.state.node(node).cluster
        log_event(
            log,
            EventType.CYCLE_STARTED,
            f"{node}: {action.kind} ({action.reason})",
            severity=Severity.WARNING,
            node=node,
            cluster=cluster,
            action=action.kind.value,
            manual=action.manual,
        )
        intent = CycleIntent(node, self.clock(), IntentStep.OFF_REQUESTED, action.manual)
        # Written and fsync'd before the plug is touched: a crash from here on is finished
        # at the next start by switching the plug on.
        self.persisted = self.store.record_intent(self._snapshot(), intent)
        try:
            if action.kind is ActionKind.POWER_CYCLE:
                outcome = await power_cycle(
                    plug,
                    off_time=self.cfg.policy.off_time,
                    confirm_timeout=self.cfg.policy.plug_confirm_timeout,
                    poll_interval=self.cfg.policy.plug_poll_interval,
                    on_step=self._step_logger(node, cluster),
                    verify=None if action.manual else lambda: self._still_wedged(node),
                )
            else:
                outcome = await ensure_on(
                    plug,
                    confirm_timeout=self.cfg.policy.plug_confirm_timeout,
                    poll_interval=self.cfg.policy.plug_poll_interval,
                )
        except Exception as exc:  # a driver bug must not kill the daemon or lose the intent
            log.exception("power action on %s crashed", node)
            outcome = CycleOutcome(ok=False, steps=(), failed_step=CycleStep.OFF, left_off=True)
            del exc
        finally:
            self._power_tasks.pop(node, None)
        self._power_done(action, outcome)

    async def _still_wedged(self, node: str) -> str | None:
        """The last look before switching off: probe sshd once more and re-check serving."""
        try:
            cluster_cfg, node_cfg = self.cfg.node(node)
        except KeyError:
            return "the node is no longer configured"
        result = await self.suite.ssh(node_cfg)
        self._observed(result, node=node, evaluate=False)
        if result.ok:
            return f"sshd answers again ({result.detail})"
        st = self.state.node(node)
        began = st.ssh.failing_since if st.ssh.failing_since is not None else self.clock()
        if proof(self.state.clusters[st.cluster], cluster_cfg, began, node) in (
            Proof.SERVING,
            Proof.ANSWERING,
        ):
            return "the endpoint answered (serving) since the ssh failure began"
        return None

    def _power_done(self, action: PowerAction, outcome: CycleOutcome) -> None:
        node = action.node
        metrics.power_done(node, action.kind, outcome.ok)
        touched = outcome.touched
        self.fleet = lifecycle.power_finished(
            self.state,
            node,
            kind=action.kind,
            ok=outcome.ok,
            touched=touched,
            left_off=outcome.left_off,
            now=self.clock(),
        )
        if not outcome.left_off:
            self.persisted = self.store.clear_intent(self._snapshot(), node)
        cluster = self.state.node(node).cluster
        history.power_done(self.state_dir, action, outcome, cluster, self.clock())
        if outcome.ok:
            log_event(
                log,
                EventType.CYCLE_FINISHED,
                f"{node}: {action.kind} done; power is on",
                severity=Severity.INFO,
                node=node,
                cluster=cluster,
                action=action.kind.value,
            )
        elif outcome.failed_step is CycleStep.VERIFY:
            why = outcome.steps[-1].detail if outcome.steps else "the node answers again"
            log_event(
                log,
                EventType.CYCLE_FAILED,
                f"{node}: {action.kind} aborted before switching anything: {why}",
                severity=Severity.WARNING,
                node=node,
                cluster=cluster,
                action=action.kind.value,
                step=CycleStep.VERIFY.value,
            )
        else:
            step = outcome.failed_step.value if outcome.failed_step else "?"
            log_event(
                log,
                EventType.CYCLE_FAILED,
                f"{node}: {action.kind} failed at {step}"
                + ("; NODE LEFT OFF, will keep switching it on" if outcome.left_off else ""),
                severity=Severity.CRITICAL if outcome.left_off else Severity.ERROR,
                node=node,
                cluster=cluster,
                action=action.kind.value,
                step=step,
            )
        self._evaluate()

    def _step_logger(self, node: str, cluster: str) -> Callable[[StepReport], None]:
        def on_step(report: StepReport) -> None:
            log_event(
                log,
                EventType.CYCLE_STEP,
                f"{node}: power cycle {report.step}: {'ok' if report.ok else 'FAILED'}"
                + (f" ({report.detail})" if report.detail else ""),
                severity=Severity.INFO if report.ok else Severity.ERROR,
                node=node,
                cluster=cluster,
                action="power_cycle",
                step=report.step.value,
            )
            self._narrate(
                f"{node}: power cycle step {report.step} "
                f"{'ok' if report.ok else 'FAILED'} {report.detail}".rstrip()
            )
            if report.step is CycleStep.CONFIRM_OFF and report.ok:
                intent = CycleIntent(node, self.clock(), IntentStep.OFF)
                self.persisted = self.store.record_intent(self._snapshot(), intent)

        return on_step

    async def _finish_half_done_cycles(self) -> None:
        for node, intent in sorted(self.persisted.intents.items()):
            plug = self.plugs.get(node)
            if plug is None:
                log.error(
                    "a half-done power cycle of %s is recorded, but %s is no longer "
                    "configured; switch its plug on by hand",
                    node,
                    node,
                )
                continue
            log_event(
                log,
                EventType.CYCLE_STEP,
                f"{node}: finishing a power cycle interrupted at {intent.step}: "
                "switching the plug on",
                severity=Severity.WARNING,
                node=node,
                action="power_on",
                step="recover",
            )
            # A node that was off for less than off_time stays off for the rest of it
            # (DGX Spark: unified memory and PSU state need >= 60 s without power).
            hold = 0.0
            if intent.step is IntentStep.OFF:
                hold = max(0.0, intent.started_at + self.cfg.policy.off_time - self.clock())
            outcome = await ensure_on(
                plug,
                confirm_timeout=self.cfg.policy.plug_confirm_timeout,
                poll_interval=self.cfg.policy.plug_poll_interval,
                hold=hold,
            )
            self._power_done(
                PowerAction(ActionKind.POWER_ON, node, "recovery at start-up"), outcome
            )

    def _take_requests(self) -> None:
        for req in control.take_requests(self.state_dir):
            now = self.clock()
            try:
                if req.op is control.Op.CYCLE:
                    self._apply(lifecycle.manual_cycle(self.state, req.node, now=now, cfg=self.cfg))
                    message = f"{req.node}: power cycle started"
                else:
                    self.fleet, message = apply_request(
                        self.state, req.op, req.node, until=req.until, now=now
                    )
            except lifecycle.Refused as exc:
                control.respond(self.state_dir, control.Response(req.id, False, str(exc)))
                continue
            log_event(
                log,
                EventType.OPERATOR,
                f"operator: {message}",
                node=req.node,
                action=f"operator_{req.op.value}",
            )
            control.respond(self.state_dir, control.Response(req.id, True, message))
        return


def apply_request(
    fleet: FleetState, op: control.Op, node: str, *, until: float | None, now: float
) -> tuple[FleetState, str]:
    """Pause, resume or clear ``node``: the one mapping of an operator request onto the
    lifecycle, for the daemon and for the CLI's offline edit. Raises ``lifecycle.Refused``.
    A cycle is not a state edit: only the daemon's procedure may carry it out."""
    if op is control.Op.PAUSE:
        until_text = f" until {_iso(until)}" if until else " until resumed"
        return lifecycle.pause(fleet, node, until=until, now=now), f"{node} paused{until_text}"
    if op is control.Op.RESUME:
        return lifecycle.resume(fleet, node, now=now), f"{node} resumed"
    if op is control.Op.CLEAR:
        return lifecycle.clear(fleet, node), f"{node} un-latched; its budget is reset"
    raise ValueError(f"{op} is not a state edit")


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
