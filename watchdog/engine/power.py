"""The power runner: power actions and their intents (orchestration layer).

Owns the power tasks. A power action records its intent (fsync'd) before the plug is
touched, runs the one power-cycle procedure (:mod:`watchdog.plugs.cycle`) as its own task —
never blocking probing — with a last look at the node before switching off, then reports
back to the pure lifecycle through the fleet keeper. At start-up any half-done cycle is
finished — the plug switched on, after the rest of its off time — before a single probe runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from watchdog.core import lifecycle
from watchdog.core.model import ActionKind, EventType, PowerAction, Severity
from watchdog.core.proof import Proof, proof
from watchdog.engine.context import Context
from watchdog.engine.fleet import Fleet
from watchdog.engine.suite import ProbeSuite
from watchdog.plugs.cycle import ensure_on, power_cycle
from watchdog.plugs.cycle_steps import CycleOutcome, CycleStep, StepReport
from watchdog.plugs.dryrun import DryRunPlug
from watchdog.state import history
from watchdog.state.store import CycleIntent, IntentStep
from watchdog.telemetry import metrics
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")


class PowerRunner:
    """Runs the power actions the policy decides, one task per node."""

    def __init__(self, ctx: Context, suite: ProbeSuite, fleet: Fleet) -> None:
        self._ctx = ctx
        self._suite = suite
        self._fleet = fleet
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, action: PowerAction) -> None:
        self._tasks[action.node] = asyncio.create_task(
            self._power(action), name=f"power:{action.node}"
        )

    def driving(self, node: str) -> bool:
        """A power action owns ``node``'s plug: nothing else may talk to it."""
        return node in self._tasks

    def in_flight(self, node: str) -> bool:
        task = self._tasks.get(node)
        return task is not None and not task.done()

    def cut_short(self) -> None:
        """Cancel every power action now; each still switches its plug back on."""
        for task in self._tasks.values():
            task.cancel()

    async def finish(self) -> None:
        """Let the power actions finish (a stop): a dry run at once, a real one within the
        longest a cycle can take, then cancelled (the procedure still switches the plug on)."""
        await self._cancel_dry_runs()
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            log.info("waiting for %d power action(s) to finish before stopping", len(tasks))
            policy = self._ctx.cfg.policy
            limit = policy.off_time + 3 * policy.plug_confirm_timeout + 30
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for task in pending:
                task.cancel()  # the procedure still switches the plug on when cancelled
            if pending:
                await asyncio.wait(pending, timeout=policy.plug_confirm_timeout + 5)

    async def _cancel_dry_runs(self) -> None:
        """A dry-run "power cycle" switches nothing: stop it now, and forget its intent."""
        dry = {
            node: task
            for node, task in self._tasks.items()
            if not task.done() and isinstance(self._ctx.plugs.get(node), DryRunPlug)
        }
        for task in dry.values():
            task.cancel()
        if dry:
            await asyncio.wait(dry.values(), timeout=2.0)
        for node in dry:
            self._tasks.pop(node, None)
            if node in self._fleet.saves.persisted.intents:
                self._fleet.saves.clear_intent(node)

    async def _power(self, action: PowerAction) -> None:
        node, plug = action.node, self._ctx.plugs[action.node]
        cluster = self._fleet.state.node(node).cluster
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
        intent = CycleIntent(node, self._ctx.clock(), IntentStep.OFF_REQUESTED, action.manual)
        # Written and fsync'd before the plug is touched: a crash from here on is finished
        # at the next start by switching the plug on.
        self._fleet.saves.record_intent(intent)
        policy = self._ctx.cfg.policy
        try:
            if action.kind is ActionKind.POWER_CYCLE:
                outcome = await power_cycle(
                    plug,
                    off_time=policy.off_time,
                    confirm_timeout=policy.plug_confirm_timeout,
                    poll_interval=policy.plug_poll_interval,
                    on_step=self._step_logger(node, cluster),
                    verify=None if action.manual else lambda: self._still_wedged(node),
                )
            else:
                outcome = await ensure_on(
                    plug,
                    confirm_timeout=policy.plug_confirm_timeout,
                    poll_interval=policy.plug_poll_interval,
                )
        except Exception as exc:  # a driver bug must not kill the daemon or lose the intent
            log.exception("power action on %s crashed", node)
            outcome = CycleOutcome(ok=False, steps=(), failed_step=CycleStep.OFF, left_off=True)
            del exc
        finally:
            self._tasks.pop(node, None)
        self._power_done(action, outcome)

    async def _still_wedged(self, node: str) -> str | None:
        """The last look before switching off: probe sshd once more and re-check serving."""
        try:
            cluster_cfg, node_cfg = self._ctx.cfg.node(node)
        except KeyError:
            return "the node is no longer configured"
        result = await self._suite.ssh(node_cfg)
        self._fleet.observed(result, node=node, evaluate=False)
        if result.ok:
            return f"sshd answers again ({result.detail})"
        state = self._fleet.state
        st = state.node(node)
        began = st.ssh.failing_since if st.ssh.failing_since is not None else self._ctx.clock()
        if proof(state.clusters[st.cluster], cluster_cfg, began, node) in (
            Proof.SERVING,
            Proof.ANSWERING,
        ):
            return "the endpoint answered (serving) since the ssh failure began"
        return None

    def _power_done(self, action: PowerAction, outcome: CycleOutcome) -> None:
        node = action.node
        metrics.power_done(node, action.kind, outcome.ok)
        touched = outcome.touched
        self._fleet.state = lifecycle.power_finished(
            self._fleet.state,
            node,
            kind=action.kind,
            ok=outcome.ok,
            touched=touched,
            left_off=outcome.left_off,
            now=self._ctx.clock(),
        )
        if not outcome.left_off:
            self._fleet.saves.clear_intent(node)
        cluster = self._fleet.state.node(node).cluster
        history.power_done(self._ctx.state_dir, action, outcome, cluster, self._ctx.clock())
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
        self._fleet.evaluate()

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
            self._ctx.narrate(
                f"{node}: power cycle step {report.step} "
                f"{'ok' if report.ok else 'FAILED'} {report.detail}".rstrip()
            )
            if report.step is CycleStep.CONFIRM_OFF and report.ok:
                self._fleet.saves.record_intent(
                    CycleIntent(node, self._ctx.clock(), IntentStep.OFF)
                )

        return on_step

    async def finish_half_done_cycles(self) -> None:
        """Switch on every plug a power cycle interrupted by a crash or a kill left off."""
        for node, intent in sorted(self._fleet.saves.persisted.intents.items()):
            plug = self._ctx.plugs.get(node)
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
                hold = max(
                    0.0, intent.started_at + self._ctx.cfg.policy.off_time - self._ctx.clock()
                )
            outcome = await ensure_on(
                plug,
                confirm_timeout=self._ctx.cfg.policy.plug_confirm_timeout,
                poll_interval=self._ctx.cfg.policy.plug_poll_interval,
                hold=hold,
            )
            self._power_done(
                PowerAction(ActionKind.POWER_ON, node, "recovery at start-up"), outcome
            )
