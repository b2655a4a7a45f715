"""The Plug interface every power switch driver implements, and its failure vocabulary.

A plug is an actuator the watchdog must trust at 3 a.m.: reading it never raises (the answer
is a :class:`~watchdog.core.model.PlugReading` saying what failed), while switching it raises
:class:`~watchdog.core.errors.PlugError` so a caller cannot mistake a failed switch for a done one.
Drivers translate their library's exceptions into ``PlugError`` at their edge (``from exc``)
and never put credentials into messages.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from watchdog.core.errors import PlugError, PlugFailure
from watchdog.core.model import FailureKind, PlugReading

# What a failed plug operation means for the evidence the policy weighs.
_FAILURE_KIND = {
    PlugFailure.UNREACHABLE: FailureKind.PLUG_UNREACHABLE,
    PlugFailure.TIMEOUT: FailureKind.PLUG_UNREACHABLE,  # did not answer: as good as gone
    PlugFailure.AUTH: FailureKind.PLUG_AUTH,
    PlugFailure.PROTOCOL: FailureKind.PLUG_ERROR,
    PlugFailure.NO_OUTLET: FailureKind.PLUG_ERROR,
    PlugFailure.NOT_CONFIRMED: FailureKind.PLUG_ERROR,
}


def failure_kind(kind: PlugFailure) -> FailureKind:
    """The probe-level failure kind for a plug failure."""
    return _FAILURE_KIND[kind]


def unreachable_reading(err: PlugError) -> PlugReading:
    """The reading of a plug whose read failed with ``err``."""
    return PlugReading(reachable=False, failure=failure_kind(err.kind), detail=str(err))


@runtime_checkable
class Plug(Protocol):
    """One switchable outlet (a single plug, or one outlet of a strip)."""

    label: str

    @property
    def supports_timer(self) -> bool:
        """Whether the device has its own switch-back-on timer (docs/design.md, "Crash safety")."""
        ...

    async def read(self) -> PlugReading:
        """Reachability, relay state and power draw. Never raises."""
        ...

    async def is_on(self) -> bool:
        """The relay state, read from the device now. Raises PlugError."""
        ...

    async def turn_off(self) -> None:
        """Raises PlugError."""
        ...

    async def turn_on(self) -> None:
        """Raises PlugError."""
        ...

    async def arm_on_timer(self, delay: float) -> bool:
        """Have the device switch itself on after ``delay`` s; False when unsupported."""
        ...

    async def disarm_timer(self) -> None:
        """Remove a timer armed by :meth:`arm_on_timer`. Raises PlugError."""
        ...

    async def close(self) -> None:
        """Release connections; the plug may be used again afterwards (it reconnects)."""
        ...
