"""The power-cycle procedure, against the emulated plug through each real Kasa driver (the
native XOR one and python-kasa).

The emulator's own record is the truth: the off/on events, their causes and the time between
them. Failure paths the emulator cannot stage (a relay that never answers to "on" while the
plug keeps answering) use a small scripted Plug.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from watchdog.config import Plug as PlugConfig
from watchdog.core.errors import PlugError, PlugFailure
from watchdog.core.model import PlugReading
from watchdog.plugs import CycleStep, DryRunPlug, StepReport, ensure_on, power_cycle
from watchdog.plugs.kasa import KasaPlug
from watchdog.plugs.kasa_xor import XorKasaPlug
from watchdog.sim.kasa import KasaEmulator, PlugFault

HS110 = "HS110(EU)_1.0_1.2.5"
HS300 = "HS300(US)_2.0_1.0.12"
FAST = {"confirm_timeout": 0.5, "poll_interval": 0.05}
ALL_STEPS = [
    CycleStep.CHECK,
    CycleStep.ARM_TIMER,
    CycleStep.OFF,
    CycleStep.CONFIRM_OFF,
    CycleStep.HOLD,
    CycleStep.ON,
    CycleStep.CONFIRM_ON,
    CycleStep.DONE,
]


AnyKasa = XorKasaPlug | KasaPlug
Rig = Callable[..., Awaitable[tuple[KasaEmulator, AnyKasa]]]


@pytest.fixture(params=[XorKasaPlug, KasaPlug], ids=["native", "python-kasa"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    driver: type[AnyKasa] = request.param
    emulators: list[KasaEmulator] = []
    plugs: list[AnyKasa] = []

    async def make(fixture: str = HS110, **plug_fields: Any) -> tuple[KasaEmulator, AnyKasa]:
        emu = KasaEmulator(fixture, initial_on=True)
        await emu.start()
        cfg = {"type": "kasa", "host": emu.host, "port": emu.port, "timeout": 1} | plug_fields
        plug = driver(PlugConfig.model_validate(cfg), label="spark-1")
        emulators.append(emu)
        plugs.append(plug)
        return emu, plug

    yield make
    for plug in plugs:
        await plug.close()
    for emu in emulators:
        await emu.stop()


def events(emu: KasaEmulator) -> list[tuple[int, bool, str]]:
    return [(e.outlet, e.on, e.cause) for e in emu.record]


async def test_it_switches_off_holds_and_switches_on_exactly_once(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    seen: list[StepReport] = []

    async def on_step(report: StepReport) -> None:
        seen.append(report)

    outcome = await power_cycle(plug, off_time=0.3, on_step=on_step, **FAST)
    assert outcome.ok and outcome.failed_step is None and not outcome.left_off
    assert [s.step for s in outcome.steps] == ALL_STEPS
    assert all(s.ok for s in outcome.steps)
    assert list(outcome.steps) == seen
    assert events(emu) == [(0, False, "client"), (0, True, "client")]
    assert emu.record[1].at - emu.record[0].at >= 0.3
    assert emu.rules == []  # the backstop timer was armed, then disarmed
    assert any("count_down" in r and "add_rule" in r["count_down"] for r in emu.requests)


async def test_a_node_that_answers_at_the_last_look_is_never_switched(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    looked: list[str] = []

    async def verify() -> str | None:
        looked.append("verify")
        return "sshd answers again"

    outcome = await power_cycle(plug, off_time=0.3, verify=verify, **FAST)
    assert looked == ["verify"]
    assert not outcome.ok and outcome.failed_step is CycleStep.VERIFY
    assert not outcome.touched and not outcome.left_off
    assert [s.step for s in outcome.steps] == [CycleStep.CHECK, CycleStep.VERIFY]
    assert "sshd answers again" in outcome.steps[-1].detail
    assert events(emu) == [] and emu.rules == []  # nothing switched, no timer armed


async def test_a_node_still_silent_at_the_last_look_is_cycled(
    rig: Rig,
) -> None:
    emu, plug = await rig()

    async def verify() -> str | None:
        return None

    outcome = await power_cycle(plug, off_time=0.1, verify=verify, **FAST)
    assert outcome.ok and outcome.steps[1].step is CycleStep.VERIFY and outcome.steps[1].ok
    assert events(emu) == [(0, False, "client"), (0, True, "client")]


async def test_it_cycles_one_strip_outlet_and_leaves_the_others_alone(
    rig: Rig,
) -> None:
    emu, plug = await rig(HS300, outlet="outlet 3")
    outcome = await power_cycle(plug, off_time=0.2, **FAST)
    assert outcome.ok
    assert events(emu) == [(2, False, "client"), (2, True, "client")]
    assert all(emu.is_on(i) for i in range(6))


async def test_an_unreachable_plug_fails_the_check_and_is_never_touched(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    await emu.set_fault(PlugFault.DOWN)
    outcome = await power_cycle(plug, off_time=0.2, **FAST)
    assert not outcome.ok and outcome.failed_step is CycleStep.CHECK and not outcome.left_off
    assert [s.step for s in outcome.steps] == [CycleStep.CHECK]
    await emu.set_fault(PlugFault.NONE)
    assert emu.record == [] and emu.rules == []


async def test_a_relay_that_never_reads_off_fails_confirm_off_and_ends_on(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    loop = asyncio.get_running_loop()

    def stuck(outlet: int, on: bool) -> None:  # a welded relay snaps back at once
        if not on:
            loop.call_soon(emu.set_on, True, outlet, "stuck relay")

    emu.on_change = stuck
    outcome = await power_cycle(plug, off_time=0.2, **FAST)
    assert outcome.failed_step is CycleStep.CONFIRM_OFF and not outcome.left_off
    assert [s.step for s in outcome.steps][-3:] == [
        CycleStep.CONFIRM_OFF,
        CycleStep.ON,
        CycleStep.CONFIRM_ON,
    ]
    assert "still reads on" in outcome.steps[-3].detail
    assert not [s for s in outcome.steps if s.step is CycleStep.HOLD]
    assert events(emu) == [(0, False, "client"), (0, True, "stuck relay")]
    assert emu.is_on() and emu.rules == []


async def test_cancelled_during_hold_it_still_switches_on_before_raising(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    holding = asyncio.Event()

    def on_step(report: StepReport) -> None:
        if report.step is CycleStep.CONFIRM_OFF:
            holding.set()

    task = asyncio.create_task(power_cycle(plug, off_time=30, on_step=on_step, **FAST))
    await asyncio.wait_for(holding.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events(emu) == [(0, False, "client"), (0, True, "client")]
    assert emu.is_on()


async def test_when_switching_on_fails_the_device_timer_brings_the_plug_back(
    rig: Rig,
) -> None:
    emu, plug = await rig()

    async def on_step(report: StepReport) -> None:
        if report.step is CycleStep.CONFIRM_OFF:
            await emu.set_fault(PlugFault.DOWN)  # the plug drops off the network mid-cycle

    outcome = await power_cycle(plug, off_time=0.2, timer_margin=0.8, on_step=on_step, **FAST)
    assert outcome.failed_step is CycleStep.ON and outcome.left_off
    assert "device timer" in outcome.steps[-1].detail
    await asyncio.sleep(1.1 - 0.2 - FAST["confirm_timeout"] + 0.3)
    assert events(emu) == [(0, False, "client"), (0, True, "countdown")]


async def test_ensure_on_switches_an_off_plug_on_and_removes_a_leftover_timer(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    assert await plug.arm_on_timer(600)  # what a crashed cycle leaves behind
    emu.set_on(False, cause="crashed cycle")
    holds: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        holds.append(seconds)

    outcome = await ensure_on(plug, hold=42.0, sleep=fake_sleep, **FAST)
    assert outcome.ok
    assert [s.step for s in outcome.steps] == [
        CycleStep.CHECK,
        CycleStep.HOLD,
        CycleStep.ON,
        CycleStep.CONFIRM_ON,
        CycleStep.DONE,
    ]
    assert holds[0] == 42.0
    assert events(emu) == [(0, False, "crashed cycle"), (0, True, "client")]
    assert emu.rules == []


async def test_ensure_on_leaves_a_plug_that_is_on_alone(
    rig: Rig,
) -> None:
    emu, plug = await rig()
    outcome = await ensure_on(plug, hold=60.0, **FAST)
    assert outcome.ok and [s.step for s in outcome.steps] == [CycleStep.CHECK, CycleStep.DONE]
    assert emu.record == []


async def test_a_dry_run_cycle_completes_without_touching_the_relay(
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu, plug = await rig()
    caplog.set_level(logging.WARNING, logger="watchdog.plugs")
    outcome = await power_cycle(DryRunPlug(plug, "spark-1"), off_time=0.1, **FAST)
    assert outcome.ok and [s.step for s in outcome.steps] == ALL_STEPS
    assert emu.record == [] and emu.rules == []
    assert not [r for r in emu.requests if "count_down" in r or "set_relay_state" in str(r)]
    assert len([r for r in emu.requests if "system" in r]) >= 3  # the reads did happen
    assert "dry run: would switch off spark-1" in caplog.text
    assert "dry run: would switch on spark-1" in caplog.text


class ScriptedPlug:
    """A Plug whose failures are scripted, for paths the emulator cannot stage."""

    def __init__(
        self, *, off_fails: bool = False, on_sticks: bool = False, arm_fails: bool = False
    ) -> None:
        self.label = "scripted"
        self.relay = True
        self.off_fails, self.on_sticks, self.arm_fails = off_fails, on_sticks, arm_fails
        self.calls: list[str] = []

    @property
    def supports_timer(self) -> bool:
        return True

    async def read(self) -> PlugReading:
        return PlugReading(reachable=True, is_on=self.relay)

    async def is_on(self) -> bool:
        return self.relay

    async def turn_off(self) -> None:
        self.calls.append("off")
        if self.off_fails:
            raise PlugError(PlugFailure.TIMEOUT, "plug scripted: switch off failed (timeout)")
        self.relay = False

    async def turn_on(self) -> None:
        self.calls.append("on")
        if not self.on_sticks:
            self.relay = True

    async def arm_on_timer(self, delay: float) -> bool:
        self.calls.append(f"arm {delay:g}")
        if self.arm_fails:
            raise PlugError(PlugFailure.PROTOCOL, "plug scripted: count_down refused")
        return True

    async def disarm_timer(self) -> None:
        self.calls.append("disarm")

    async def close(self) -> None:
        pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_failed_timer_arm_is_reported_but_the_cycle_goes_on() -> None:
    plug, clock = ScriptedPlug(arm_fails=True), FakeTime()
    outcome = await power_cycle(plug, off_time=60, sleep=clock.sleep, clock=clock.clock)
    assert outcome.ok
    arm = outcome.steps[1]
    assert arm.step is CycleStep.ARM_TIMER and not arm.ok and "count_down refused" in arm.detail
    assert plug.calls == ["arm 90", "off", "on"]  # nothing armed, so nothing to disarm
    assert outcome.steps[4].elapsed == 60  # the hold, on the injected clock


async def test_a_switch_off_that_fails_is_reported_and_the_plug_is_kept_on() -> None:
    plug, clock = ScriptedPlug(off_fails=True), FakeTime()
    outcome = await power_cycle(plug, off_time=60, sleep=clock.sleep, clock=clock.clock)
    assert outcome.failed_step is CycleStep.OFF and not outcome.left_off
    assert plug.relay and plug.calls[-1] == "disarm"


async def test_a_plug_that_never_comes_back_on_is_reported_left_off() -> None:
    plug, clock = ScriptedPlug(on_sticks=True), FakeTime()
    outcome = await power_cycle(
        plug, off_time=60, confirm_timeout=20, poll_interval=1, sleep=clock.sleep, clock=clock.clock
    )
    assert outcome.failed_step is CycleStep.CONFIRM_ON and outcome.left_off
    assert plug.calls.count("on") == 21  # re-sent each poll within confirm_timeout
    assert "disarm" not in plug.calls  # the armed timer stays as the backstop


async def test_a_failing_on_step_callback_never_stops_the_cycle() -> None:
    plug, clock = ScriptedPlug(), FakeTime()

    def broken(report: StepReport) -> None:
        raise RuntimeError("journal is gone")

    outcome = await power_cycle(
        plug, off_time=60, on_step=broken, sleep=clock.sleep, clock=clock.clock
    )
    assert outcome.ok and plug.relay is True
