"""The one power-cycle procedure every plug driver goes through, run like a fence agent.

``power_cycle``: CHECK the plug answers (if not, touch nothing) -> VERIFY, the caller's last
look at the node (if it says the node answers again, touch nothing) -> ARM_TIMER, a device-side
rule that switches the outlet back on after ``off_time + timer_margin`` so a dead watchdog
never leaves a node off (failure is reported, not fatal) -> OFF -> CONFIRM_OFF (poll until the
plug reads off, bounded by ``confirm_timeout``; if it never does, switch back on and fail) ->
HOLD ``off_time`` (DGX Spark needs >= 60 s: unified memory and the PSU's power negotiation)
-> ON -> CONFIRM_ON (poll until on, re-sending the switch-on within
``confirm_timeout``; the armed device timer is the backstop) -> disarm the timer -> DONE.
Pacemaker fences the same way: off, poll every 1 s for 20 s, on, verify.

``ensure_on`` finishes a half-done cycle at start-up (docs/design.md, "Crash safety").

Cancellation: once the off command has been sent, a cancelled procedure (CancelledError)
still switches the plug back on — in a task shielded from the cancellation — and re-raises
only after that attempt; so does any other exception that escapes a step (a driver's bug, a
malformed answer), which is re-raised after the switch-on attempt. SIGTERM handling relies on
this: the daemon cancels the cycle task and awaits it, and the node is not left off.
(Cancelled a second time while waiting, the switch-on task carries on in the background and
the caller gets its CancelledError.)

Every step is reported through ``on_step`` (sync or async; its failures are logged, never
fatal). ``StepReport.elapsed`` is how long that step took (for DONE: the whole run). Time
is injected (``sleep``, ``clock``) so tests do not wait for real minutes. No retries here
beyond the bounded polls: python-kasa already retries each request.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from watchdog.core.errors import PlugError
from watchdog.plugs.base import Plug

_LOG = logging.getLogger("watchdog.plugs")


class CycleStep(StrEnum):
    CHECK = "check"
    VERIFY = "verify"  # the caller's last look at the node before anything is switched
    ARM_TIMER = "arm_timer"
    OFF = "off"
    CONFIRM_OFF = "confirm_off"
    HOLD = "hold"
    ON = "on"
    CONFIRM_ON = "confirm_on"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class StepReport:
    step: CycleStep
    ok: bool
    detail: str
    elapsed: float  # seconds this step took (DONE: the whole procedure)


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """``left_off``: the off command was sent and the plug could not be confirmed on again."""

    ok: bool
    steps: tuple[StepReport, ...]
    failed_step: CycleStep | None
    left_off: bool

    @property
    def touched(self) -> bool:
        """Anything was switched (or armed): false when it stopped at CHECK or VERIFY."""
        return self.ok or self.failed_step not in (CycleStep.CHECK, CycleStep.VERIFY)


StepCallback = Callable[[StepReport], Awaitable[None] | None]
# Returns why the node must not be switched off after all (it answers again), or None.
Verify = Callable[[], Awaitable[str | None]]
Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]

_BACKGROUND: set[asyncio.Task[Any]] = set()  # shielded switch-ons outliving their caller


class _Run:
    """State and helpers of one procedure run."""

    def __init__(
        self,
        plug: Plug,
        on_step: StepCallback | None,
        sleep: Sleep,
        clock: Clock,
        confirm_timeout: float,
        poll_interval: float,
    ) -> None:
        self.plug, self.on_step, self.sleep, self.clock = plug, on_step, sleep, clock
        self.confirm_timeout, self.poll_interval = confirm_timeout, poll_interval
        self.steps: list[StepReport] = []
        self.off_sent = False
        self.confirmed_on = False
        self.armed = False

    async def report(self, step: CycleStep, ok: bool, detail: str, started: float) -> None:
        report = StepReport(step, ok, detail, max(0.0, self.clock() - started))
        self.steps.append(report)
        if self.on_step is None:
            return
        try:
            result = self.on_step(report)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _LOG.exception("on_step callback failed for %s", step)

    def outcome(self, failed: CycleStep | None = None, *, left_off: bool = False) -> CycleOutcome:
        return CycleOutcome(failed is None, tuple(self.steps), failed, left_off)

    async def poll_off(self) -> tuple[bool, str]:
        deadline = self.clock() + self.confirm_timeout
        while True:
            try:
                if not await self.plug.is_on():
                    return True, "plug reads off"
                last = "plug still reads on"
            except Exception as err:  # PlugError, or a driver's bug: keep polling
                last = f"cannot read the plug: {err}"
            if self.clock() >= deadline:
                return False, f"not off within {self.confirm_timeout:g} s: {last}"
            await self.sleep(self.poll_interval)

    async def switch_on(self, why: str = "") -> CycleStep | None:
        """ON then CONFIRM_ON, re-sending within confirm_timeout; the failed step or None."""
        started = self.clock()
        deadline = started + self.confirm_timeout
        sent, confirm_started, last = False, started, ""
        while True:
            try:
                await self.plug.turn_on()  # idempotent: re-sent while the plug reads off
                if not sent:
                    sent, confirm_started = True, self.clock()
                    await self.report(CycleStep.ON, True, f"switched on{why}", started)
            except Exception as err:  # PlugError, or a driver's bug: keep trying
                last = f"switch-on failed: {err}"
            try:
                if await self.plug.is_on():
                    if not sent:  # the command worked, its answer was lost
                        sent, confirm_started = True, self.clock()
                        await self.report(CycleStep.ON, True, f"switched on{why}", started)
                    self.confirmed_on = True
                    await self.report(CycleStep.CONFIRM_ON, True, "plug reads on", confirm_started)
                    return None
                if sent:
                    last = "plug still reads off"
            except Exception as err:  # PlugError, or a driver's bug: keep trying
                last = f"cannot read the plug: {err}"
            if self.clock() >= deadline:
                break
            await self.sleep(self.poll_interval)
        step = CycleStep.CONFIRM_ON if sent else CycleStep.ON
        where = confirm_started if sent else started
        backstop = "; the device timer should switch it on" if self.armed else ""
        detail = f"not on within {self.confirm_timeout:g} s: {last}{backstop}"
        await self.report(step, False, detail, where)
        return step

    async def disarm(self) -> str:
        if not self.armed:
            return ""
        try:
            await self.plug.disarm_timer()
            self.armed = False
            return "; device timer disarmed"
        except PlugError as err:  # harmless: it will only switch on a plug that is on
            return f"; could not disarm the device timer ({err})"

    async def finish(self, started: float) -> CycleOutcome:
        note = await self.disarm()
        await self.report(CycleStep.DONE, True, f"plug on{note}", started)
        return self.outcome()

    async def abort(self, failed: CycleStep) -> CycleOutcome:
        """The cycle failed after the off command: put the plug back on if at all possible."""
        step = await self.switch_on(" (cycle aborted)")
        if step is None:
            await self.disarm()
        return self.outcome(failed, left_off=step is not None)

    async def on_error(self) -> None:
        """An unexpected exception escaped a step: still leave no node off."""
        if self.off_sent and not self.confirmed_on:
            await _shielded(self.switch_on(" (after an unexpected error)"))
        elif self.armed and not self.off_sent:
            await _shielded(self.disarm())

    async def on_cancel(self) -> None:
        """Called with a CancelledError pending: leave no node off and no stray timer."""
        if self.off_sent and not self.confirmed_on:
            await _shielded(self.switch_on(" (cycle cancelled)"))
        elif self.armed and not self.off_sent:
            await _shielded(self.disarm())


async def _shielded(coro: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        pass  # cancelled again: the task carries on; the caller re-raises its own cancel
    except Exception:
        _LOG.exception("switching the plug back on after a cancel failed")


async def power_cycle(
    plug: Plug,
    *,
    off_time: float,
    confirm_timeout: float = 20.0,
    poll_interval: float = 1.0,
    on_step: StepCallback | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    timer_margin: float = 30.0,
    verify: Verify | None = None,
) -> CycleOutcome:
    """Switch ``plug`` off, keep it off ``off_time`` s, switch it on, verifying each step.

    ``verify`` runs after the plug check and before anything is switched; a reason from it
    aborts the cycle with nothing touched."""
    run = _Run(plug, on_step, sleep, clock, confirm_timeout, poll_interval)
    begun = clock()
    try:
        try:
            was_on = await plug.is_on()
        except PlugError as err:
            await run.report(CycleStep.CHECK, False, f"not touching it: {err}", begun)
            return run.outcome(CycleStep.CHECK)
        await run.report(
            CycleStep.CHECK, True, "plug reads on" if was_on else "plug already reads off", begun
        )

        if verify is not None:
            started = clock()
            why = await verify()
            if why is not None:
                await run.report(CycleStep.VERIFY, False, f"not switching: {why}", started)
                return run.outcome(CycleStep.VERIFY)
            await run.report(CycleStep.VERIFY, True, "the node still does not answer", started)

        started = clock()
        if plug.supports_timer:
            delay = off_time + timer_margin
            try:
                run.armed = await plug.arm_on_timer(delay)
                detail = (
                    f"device switches itself on after {delay:g} s"
                    if run.armed
                    else "device has no timer; going on without the backstop"
                )
            except PlugError as err:
                detail = f"could not arm ({err}); going on without the backstop"
            await run.report(CycleStep.ARM_TIMER, run.armed, detail, started)
        else:
            await run.report(
                CycleStep.ARM_TIMER, True, "plug has no device timer; skipped", started
            )

        started = clock()
        run.off_sent = True  # from here on the relay may be off, even if the call fails
        try:
            await plug.turn_off()
        except PlugError as err:
            await run.report(CycleStep.OFF, False, f"switch-off failed: {err}", started)
            return await run.abort(CycleStep.OFF)
        await run.report(CycleStep.OFF, True, "switched off", started)

        started = clock()
        ok, detail = await run.poll_off()
        await run.report(CycleStep.CONFIRM_OFF, ok, detail, started)
        if not ok:
            return await run.abort(CycleStep.CONFIRM_OFF)

        started = clock()
        await sleep(off_time)
        await run.report(CycleStep.HOLD, True, f"held off {clock() - started:.1f} s", started)

        failed = await run.switch_on()
        if failed is not None:
            return run.outcome(failed, left_off=True)
        return await run.finish(begun)
    except asyncio.CancelledError:
        await run.on_cancel()
        raise
    except Exception:
        await run.on_error()
        raise


async def ensure_on(
    plug: Plug,
    *,
    confirm_timeout: float = 20.0,
    poll_interval: float = 1.0,
    on_step: StepCallback | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    hold: float = 0.0,
) -> CycleOutcome:
    """Finish a half-done cycle: make sure the plug is on (and our device timer gone).

    ``hold``: if the plug reads off, keep it off this much longer first (the rest of an
    interrupted HOLD, which the caller computes from the recorded intent).
    """
    run = _Run(plug, on_step, sleep, clock, confirm_timeout, poll_interval)
    run.armed = plug.supports_timer  # a crashed cycle may have left its timer armed
    run.off_sent = True  # treat the plug as ours to bring back, whatever we read
    begun = clock()
    try:
        try:
            on: bool | None = await plug.is_on()
            await run.report(CycleStep.CHECK, True, f"plug reads {'on' if on else 'off'}", begun)
        except PlugError as err:
            on = None
            await run.report(CycleStep.CHECK, False, f"{err}; switching on anyway", begun)
        if on:
            run.confirmed_on = True
            return await run.finish(begun)
        if on is False and hold > 0:
            started = clock()
            await sleep(hold)
            await run.report(
                CycleStep.HOLD, True, f"held off {clock() - started:.1f} s more", started
            )
        failed = await run.switch_on()
        if failed is not None:
            return run.outcome(failed, left_off=True)
        return await run.finish(begun)
    except asyncio.CancelledError:
        await run.on_cancel()
        raise
    except Exception:
        await run.on_error()
        raise
