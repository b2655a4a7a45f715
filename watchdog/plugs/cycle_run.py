"""One run of the power-cycle procedure: its state and the steps that undo a half-done cycle.

:class:`CycleRun` keeps what a run has done (steps reported, off sent, on confirmed, device
timer armed) and the moves the procedure in :mod:`watchdog.plugs.cycle` is built from: report
a step, poll until the plug reads off, switch on and confirm (re-sending within
``confirm_timeout``), disarm the device timer, and, after a failure, a cancellation or an
unexpected exception, switch the plug back on so no node is left off. A switch-on that must
outlive a second cancellation runs shielded in the background.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine
from typing import Any

from watchdog.core.errors import PlugError
from watchdog.plugs.base import Plug
from watchdog.plugs.cycle_steps import (
    Clock,
    CycleOutcome,
    CycleStep,
    Sleep,
    StepCallback,
    StepReport,
)

_LOG = logging.getLogger("watchdog.plugs")

_BACKGROUND: set[asyncio.Task[Any]] = set()  # shielded switch-ons outliving their caller


class CycleRun:
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
