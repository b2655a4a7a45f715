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
beyond the bounded polls: the plug driver already retries each request.

The steps' vocabulary is :mod:`watchdog.plugs.cycle_steps`; one run's state and its recovery
moves are :mod:`watchdog.plugs.cycle_run`.
"""

from __future__ import annotations

import asyncio
import time

from watchdog.core.errors import PlugError
from watchdog.plugs.base import Plug
from watchdog.plugs.cycle_run import CycleRun
from watchdog.plugs.cycle_steps import Clock, CycleOutcome, CycleStep, Sleep, StepCallback, Verify


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
    run = CycleRun(plug, on_step, sleep, clock, confirm_timeout, poll_interval)
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
    run = CycleRun(plug, on_step, sleep, clock, confirm_timeout, poll_interval)
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
