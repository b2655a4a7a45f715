"""The power-cycle vocabulary: its steps, what each step reports, and the outcome.

:class:`CycleStep` names the steps of the one procedure (:mod:`watchdog.plugs.cycle`), a
:class:`StepReport` is what one step did and how long it took, and a :class:`CycleOutcome`
says whether the cycle succeeded, where it stopped and whether it left the node off. The
engine records these as the cycle's intent and the incident log keeps them
(docs/design.md, "Power cycle"). Also the injected callables the procedure takes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
