"""Dry-run plug: decides and logs everything, never switches (docs/design.md, "Dry run").

Wraps the real plug when there is one, so reads still go to the device and a dry run still
proves the actuator answers; every switching call only logs ``dry run: would …`` (logger
``watchdog.plugs``). A virtual relay state lets the power-cycle procedure run to the end; it
is forgotten as soon as the real relay reads the same again.
"""

from __future__ import annotations

import logging

from watchdog.core.model import PlugReading
from watchdog.plugs.base import Plug

_LOG = logging.getLogger("watchdog.plugs")


class DryRunPlug:
    """A :class:`Plug` that never touches the relay."""

    def __init__(self, inner: Plug | None, label: str) -> None:
        self.inner = inner
        self.label = label
        self._virtual: bool | None = None  # what the relay would be had we switched it

    def __repr__(self) -> str:
        return f"DryRunPlug({self.label!r}, inner={self.inner!r})"

    @property
    def supports_timer(self) -> bool:
        return self.inner.supports_timer if self.inner is not None else True

    async def read(self) -> PlugReading:
        if self.inner is None:
            on = True if self._virtual is None else self._virtual
            return PlugReading(reachable=True, is_on=on, detail="dry run: no device configured")
        reading = await self.inner.read()
        if not reading.reachable or self._virtual is None:
            return reading
        real = reading.is_on
        if real == self._virtual:
            self._virtual = None
            return reading
        return PlugReading(
            reachable=True,
            is_on=self._virtual,
            watts=reading.watts,
            detail=f"dry run: relay really {'on' if real else 'off'}, virtually "
            f"{'on' if self._virtual else 'off'}",
        )

    async def is_on(self) -> bool:
        if self.inner is None:
            return True if self._virtual is None else self._virtual
        real = await self.inner.is_on()  # raises PlugError: a dry run still validates the plug
        if self._virtual is None or self._virtual == real:
            self._virtual = None
            return real
        return self._virtual

    async def turn_off(self) -> None:
        _LOG.warning("dry run: would switch off %s", self.label)
        self._virtual = False

    async def turn_on(self) -> None:
        _LOG.warning("dry run: would switch on %s", self.label)
        self._virtual = True

    async def arm_on_timer(self, delay: float) -> bool:
        if not self.supports_timer:
            return False
        _LOG.warning("dry run: would arm the switch-on timer of %s (%.0f s)", self.label, delay)
        return True

    async def disarm_timer(self) -> None:
        _LOG.info("dry run: would disarm the switch-on timer of %s", self.label)

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()
