"""TP-Link Kasa/Tapo driver over python-kasa (>= 0.12); with ``kasa_bounded`` and ``kasa_timer``
the only importer.

Owns one outlet: a single plug, or one outlet of a strip chosen by index (from 0) or alias.
Every python-kasa exception is translated here into :class:`~watchdog.core.errors.PlugError`
(``raise ... from exc``): ``AuthenticationError`` -> AUTH, a timeout anywhere in the cause
chain -> TIMEOUT (python-kasa wraps a timed-out ``turn_off`` in a plain ``KasaException``),
refused / unreachable -> UNREACHABLE, anything else -> PROTOCOL — including a device's
wrong-typed answer that makes python-kasa raise ``KeyError`` or ``TypeError``: malformed remote
data is a plug error, never a crash. Answers are size-capped by :mod:`.kasa_bounded`. Messages
never carry credentials, and text from the device is made printable and capped.

python-kasa retries every request 3 more times itself (worst case about 4 x timeout + 3 s);
that is the one retry loop for plug I/O, so nothing here retries a single request. The
connected device is cached and dropped after any error, so the next call reconnects.

Device-side timer (docs/design.md, "Crash safety"): the rule that switches the relay on by
itself is set by :mod:`.kasa_timer` (legacy ``count_down`` through the raw protocol query,
Tapo's ``add_countdown_rule``); a device without one is remembered and not asked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from kasa import AuthenticationError, Credentials, Device, DeviceConfig, KasaException, Module
from kasa.deviceconfig import DeviceConnectionParameters, DeviceEncryptionType, DeviceFamily
from kasa.exceptions import TimeoutError as KasaTimeoutError
from kasa.iot import IotDevice

from watchdog.config import Plug as PlugConfig
from watchdog.config import PlugEncryption, PlugType
from watchdog.core.errors import ConfigError, PlugError, PlugFailure
from watchdog.core.model import PlugReading
from watchdog.edge.bounded import printable
from watchdog.edge.redact import redact
from watchdog.plugs.base import unreachable_reading
from watchdog.plugs.kasa_bounded import connect as bounded_connect
from watchdog.plugs.kasa_iot import choose_outlet
from watchdog.plugs.kasa_timer import iot_countdown, smart_countdown

T = TypeVar("T")
_Refresh = Literal["none", "state", "all"]


def connection_type(cfg: PlugConfig) -> DeviceConnectionParameters:
    """python-kasa connection parameters for the configured type and encryption."""
    enc = cfg.effective_encryption
    if cfg.type is PlugType.TAPO:
        if enc is PlugEncryption.XOR:
            raise ConfigError("plug.encryption", "Tapo plugs do not speak xor", "use klap or aes")
        family = DeviceFamily.SmartTapoPlug
        kind = DeviceEncryptionType.Klap if enc is PlugEncryption.KLAP else DeviceEncryptionType.Aes
        return DeviceConnectionParameters(family, kind, login_version=2)
    if enc is PlugEncryption.XOR:
        return DeviceConnectionParameters(DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Xor)
    if enc is PlugEncryption.KLAP:  # legacy Kasa API behind KLAP v2 (HS300 1.1.x, KP125 …)
        return DeviceConnectionParameters(
            DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Klap, login_version=2
        )
    return DeviceConnectionParameters(
        DeviceFamily.SmartKasaPlug, DeviceEncryptionType.Aes, login_version=2
    )


def classify(exc: BaseException) -> PlugFailure:
    """How a python-kasa (or socket) failure maps onto :class:`PlugFailure`."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 12:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    if any(isinstance(e, AuthenticationError) for e in chain):
        return PlugFailure.AUTH
    if any(isinstance(e, KasaTimeoutError | TimeoutError) for e in chain):
        return PlugFailure.TIMEOUT
    if any(isinstance(e, OSError) for e in chain):  # refused, no route, DNS (gaierror)
        return PlugFailure.UNREACHABLE
    return PlugFailure.PROTOCOL


class KasaPlug:
    """One Kasa/Tapo outlet, driven through python-kasa."""

    def __init__(self, cfg: PlugConfig, *, label: str) -> None:
        self.label = label
        self._host = cfg.host
        self._port = cfg.port
        self._outlet = cfg.outlet
        self._timeout = max(1, math.ceil(cfg.timeout))  # python-kasa takes whole seconds
        self._connection = connection_type(cfg)
        self._credentials: Credentials | None = None
        self._secrets: tuple[str, ...] = ()
        if cfg.username is not None and cfg.password is not None:
            user, password = cfg.username.get_secret_value(), cfg.password.get_secret_value()
            self._credentials = Credentials(user, password)  # its fields are repr=False
            self._secrets = tuple(s for s in (user, password) if s)
        self._timer_wanted = cfg.device_timer
        self._timer_missing = False  # learnt from the device: it has no countdown service
        self._dev: Device | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port else self._host
        return f"KasaPlug({self.label!r}, {where}, outlet={self._outlet!r})"

    @property
    def supports_timer(self) -> bool:
        return self._timer_wanted and not self._timer_missing

    # ------------------------------------------------------------------ the interface
    async def read(self) -> PlugReading:
        try:
            return await self._run("read", self._read, refresh="all")
        except PlugError as err:
            return unreachable_reading(err)

    async def is_on(self) -> bool:
        async def op(dev: Device) -> bool:
            return bool(self._target(dev).is_on)

        return await self._run("read state", op, refresh="state")

    async def turn_off(self) -> None:
        async def op(dev: Device) -> None:
            await self._target(dev).turn_off()

        await self._run("switch off", op)

    async def turn_on(self) -> None:
        async def op(dev: Device) -> None:
            await self._target(dev).turn_on()

        await self._run("switch on", op)

    async def arm_on_timer(self, delay: float) -> bool:
        if not self.supports_timer:
            return False
        seconds = max(1, math.ceil(delay))

        async def op(dev: Device) -> bool:
            return await self._countdown(dev, seconds)

        return await self._run("arm the switch-on timer", op)

    async def disarm_timer(self) -> None:
        if not self.supports_timer:
            return

        async def op(dev: Device) -> None:
            await self._countdown(dev, None)

        await self._run("disarm the switch-on timer", op)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # ------------------------------------------------------------------ internals
    async def _run(
        self, what: str, op: Callable[[Device], Awaitable[T]], *, refresh: _Refresh = "none"
    ) -> T:
        async with self._lock:
            try:
                return await op(await self._device(refresh))
            except PlugError:
                await self._drop()
                raise
            except Exception as exc:  # python-kasa, the socket, or a malformed answer
                await self._drop()
                kind = classify(exc)
                raise PlugError(
                    kind, f"plug {self.label}: {what} failed ({kind.value}): {self._scrub(exc)}"
                ) from exc

    async def _device(self, refresh: _Refresh) -> Device:
        """The cached device (connecting if need be); ``refresh`` what must be current.

        "state" skips the per-outlet queries of a strip: an outlet's relay state comes with
        the strip's sysinfo, only its energy meter needs its own (one request per outlet).
        """
        if self._dev is None:
            config = DeviceConfig(
                host=self._host,
                port_override=self._port,
                timeout=self._timeout,
                credentials=self._credentials,
                connection_type=self._connection,
            )
            self._dev = await bounded_connect(config)  # runs update(), answers capped
        elif refresh != "none":
            await self._dev.update(update_children=refresh == "all")
        return self._dev

    async def _drop(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            with contextlib.suppress(KasaException, OSError):  # thrown away anyway
                await dev.disconnect()

    def _target(self, dev: Device) -> Device:
        children = dev.children
        index = choose_outlet(self.label, self._outlet, [c.alias or "" for c in children])
        return dev if index is None else children[index]

    async def _read(self, dev: Device) -> PlugReading:
        target = self._target(dev)
        watts: float | None = None
        energy = target.modules.get(Module.Energy)
        if energy is not None and energy.current_consumption is not None:
            watts = float(energy.current_consumption)
        return PlugReading(
            reachable=True,
            is_on=bool(target.is_on),
            watts=watts,
            detail=printable(str(target.alias or self._host), 120),
        )

    async def _countdown(self, dev: Device, seconds: int | None) -> bool:
        """Set our switch-on rule (``seconds``) or clear it (None); False, and not asked for
        again, when the device has no countdown service (:mod:`.kasa_timer`)."""
        target = self._target(dev)
        if isinstance(dev, IotDevice):
            ok = await iot_countdown(dev, target, seconds, self.label)
        else:
            ok = await smart_countdown(target, seconds)
        if not ok:
            self._timer_missing = True
        return ok

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, KasaException | OSError):  # a malformed answer tripped it up
            text = f"malformed answer ({type(exc).__name__}: {text})"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return printable(redact(text), 300)  # redact first, then cut
