"""Native driver for legacy Kasa plugs and strips (XOR on TCP 9999), without python-kasa.

Owns one outlet of a plug that speaks the legacy protocol without encryption keys (HS100,
HS110, HS300, KP115, KP303 …): a single plug, or one outlet of a strip chosen by index (from
0) or alias. It does what :class:`watchdog.plugs.kasa.KasaPlug` does for such a plug, with the
same messages, at a fraction of the memory (python-kasa imports every device family, aiohttp
and cryptography) and of the CPU per read:

* every operation goes over the plug's one connection (:class:`~.kasa_wire.XorLink`: kept
  open, bounds, the one retry loop), asks ``system.get_sysinfo`` first as python-kasa does,
  then only what it needs:
  ``emeter.get_realtime`` for a read of a metered outlet, ``system.set_relay_state`` to switch,
  the ``count_down`` rule for the device-side timer; a strip outlet is addressed with
  ``context.child_ids`` (:mod:`.kasa_iot`). Once a read has shown a single plug with a meter,
  its reads ask sysinfo and meter in one request, as python-kasa's updates do;
* failures become :class:`~watchdog.core.errors.PlugError` here: the wire's kind (TIMEOUT,
  UNREACHABLE, PROTOCOL), PROTOCOL for a wrong-typed answer or a non-zero ``err_code`` (never a
  crash), NO_OUTLET when configuration and device disagree. XOR plugs have no credentials, so
  nothing secret can reach a message; the device's text in one is printable and capped.

Device-side timer (docs/design.md, "Crash safety"): a device without the ``count_down``
service answers ``err_code`` -1; that is remembered and the timer is not asked for again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from watchdog.config import Plug as PlugConfig
from watchdog.core.errors import PlugError, PlugFailure
from watchdog.core.model import PlugReading
from watchdog.edge.bounded import printable
from watchdog.edge.redact import redact
from watchdog.plugs.base import unreachable_reading
from watchdog.plugs.kasa_iot import (
    GET_SYSINFO,
    BadAnswer,
    Json,
    Outlet,
    countdown_done,
    countdown_request,
    read_outlet,
    realtime_watts,
    request,
    result,
)
from watchdog.plugs.kasa_wire import DEFAULT_PORT, WireError, XorLink

T = TypeVar("T")
Operation = Callable[[XorLink, Outlet], Awaitable[T]]
# A metered single plug's read in one request, as python-kasa's updates after its first.
_SYSINFO_AND_METER: Json = GET_SYSINFO | request("emeter", "get_realtime", {}, None)


class XorKasaPlug:
    """One outlet of a legacy (XOR) Kasa plug or strip, driven natively."""

    def __init__(self, cfg: PlugConfig, *, label: str) -> None:
        self.label = label
        self._host = cfg.host
        self._port = cfg.port or DEFAULT_PORT
        self._outlet = cfg.outlet
        self._timeout = cfg.timeout
        self._timer_wanted = cfg.device_timer
        self._timer_missing = False  # learnt from the device: it has no count_down service
        self._single_meter = False  # learnt from the last sysinfo: a single plug with a meter
        self._first: Json = {}  # the last operation's first answer
        self._link = XorLink(self._host, self._port, self._timeout)
        self._lock = asyncio.Lock()  # one operation at a time on the one connection

    def __repr__(self) -> str:
        return f"XorKasaPlug({self.label!r}, {self._host}:{self._port}, outlet={self._outlet!r})"

    @property
    def supports_timer(self) -> bool:
        return self._timer_wanted and not self._timer_missing

    # ------------------------------------------------------------------ the interface
    async def read(self) -> PlugReading:
        first = _SYSINFO_AND_METER if self._single_meter else GET_SYSINFO
        try:
            return await self._run("read", self._read, first)
        except PlugError as err:
            return unreachable_reading(err)

    async def is_on(self) -> bool:
        async def op(session: XorLink, outlet: Outlet) -> bool:
            return outlet.is_on

        return await self._run("read state", op)

    async def turn_off(self) -> None:
        await self._run("switch off", self._switch(False))

    async def turn_on(self) -> None:
        await self._run("switch on", self._switch(True))

    async def arm_on_timer(self, delay: float) -> bool:
        if not self.supports_timer:
            return False
        return await self._run("arm the switch-on timer", self._countdown(max(1, math.ceil(delay))))

    async def disarm_timer(self) -> None:
        if self.supports_timer:
            await self._run("disarm the switch-on timer", self._countdown(None))

    async def close(self) -> None:
        async with self._lock:
            self._link.close()

    # ------------------------------------------------------------------ internals
    async def _run(self, what: str, op: Operation[T], first: Json = GET_SYSINFO) -> T:
        """``op`` on the configured outlet, read from the answer to ``first`` (a sysinfo query)."""
        async with self._lock:
            try:
                self._first = await self._link.query(first)
                outlet = read_outlet(self._first, self._outlet, self.label)
                self._single_meter = outlet.metered and outlet.child_id is None
                return await op(self._link, outlet)
            except BaseException as exc:  # cancelled, too: an answer may still be on its way
                self._link.close(abort=True)  # so the next operation starts on a new connection
                if isinstance(exc, PlugError) or not isinstance(exc, Exception):
                    raise
                raise self._translate(what, exc) from exc

    def _translate(self, what: str, exc: Exception) -> PlugError:
        if isinstance(exc, WireError):
            return self._failed(what, exc.kind, str(exc))
        if isinstance(exc, BadAnswer):
            return self._failed(what, PlugFailure.PROTOCOL, f"malformed answer: {exc}")
        # A malformed answer the checks did not foresee: still a plug error, never a crash.
        reason = f"malformed answer ({type(exc).__name__}: {exc})"
        return self._failed(what, PlugFailure.PROTOCOL, reason)

    def _failed(self, what: str, kind: PlugFailure, reason: str) -> PlugError:
        text = printable(redact(reason), 300)  # redact first, then cut
        return PlugError(kind, f"plug {self.label}: {what} failed ({kind.value}): {text}")

    async def _read(self, session: XorLink, outlet: Outlet) -> PlugReading:
        watts: float | None = None
        if outlet.metered:
            answer = self._first
            if outlet.child_id is not None or "emeter" not in answer:
                answer = await session.query(request("emeter", "get_realtime", {}, outlet.child_id))
            watts = realtime_watts(answer)
        return PlugReading(
            reachable=True,
            is_on=outlet.is_on,
            watts=watts,
            detail=printable(outlet.alias or self._host, 120),
        )

    def _switch(self, on: bool) -> Operation[None]:
        async def op(session: XorLink, outlet: Outlet) -> None:
            ask = request("system", "set_relay_state", {"state": int(on)}, outlet.child_id)
            result(await session.query(ask), "system", "set_relay_state")

        return op

    def _countdown(self, seconds: int | None) -> Operation[bool]:
        """Set our switch-on rule (``seconds``) or clear it (None); False, and not asked for
        again, when the device has no count_down service."""

        async def op(session: XorLink, outlet: Outlet) -> bool:
            query, calls = countdown_request(seconds, outlet.child_id)
            done = countdown_done(await session.query(query), calls, self.label)
            if not done:
                self._timer_missing = True
            return done

        return op
