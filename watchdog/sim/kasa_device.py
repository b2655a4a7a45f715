"""The emulated Kasa plug's device side: identity, relays, energy meter and request handling.

Owns what the firmware does with a decrypted request, whatever transport carried it: the
sysinfo built from a recorded dump (with stable, distinct names and ids), the relays and their
``record`` of every change, the emeter's readings from a configurable load, and dispatch to the
``count_down`` rules (:mod:`watchdog.sim.kasa_countdown`). A module the model lacks gets
``{"err_code": -1, "err_msg": "module not support"}`` and an unknown method of a known module
``-2 "member not support"``, as real firmware answers. The network side (XOR and KLAP servers,
fault modes) is :class:`watchdog.sim.kasa.KasaEmulator`, which builds on this class.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.sim.kasa_countdown import CountdownRule, CountdownTable
from watchdog.sim.kasa_firmware import (
    _INVALID_ARGUMENT,
    _MEMBER_NOT_SUPPORTED,
    _MODULE_NOT_SUPPORTED,
    _STATE_SERVICES,
    _STATIC,
    Json,
    _err,
    _scrub_identity,
    _time_now,
    load_fixture,
)

_LOG = logging.getLogger("watchdog.sim.kasa")


@dataclass(frozen=True, slots=True)
class PowerEvent:
    """One relay change, as the plug itself saw it. ``at`` is ``time.monotonic()``."""

    at: float
    outlet: int  # 0 for single plugs
    on: bool
    cause: str  # "client" | "countdown" | whatever a caller of set_on() passes


class KasaDevice:
    """One emulated Kasa plug or strip, without a network side: see :meth:`handle`."""

    def __init__(
        self,
        fixture: str = "HS110(EU)_1.0_1.2.5",
        *,
        on_watts: float = 90.0,
        initial_on: bool | None = None,
        alias: str | None = None,
    ) -> None:
        dump = load_fixture(fixture)
        self.fixture = fixture
        self.on_watts = on_watts
        self.load: dict[int, float] = {}  # per-outlet draw when on; default on_watts
        self.record: list[PowerEvent] = []
        self.requests: deque[Json] = deque(maxlen=1000)  # decrypted requests, oldest first
        self.on_change: Callable[[int, bool], None] | None = None
        self._sysinfo: Json = copy.deepcopy(dump["system"]["get_sysinfo"])
        self._strip = "children" in self._sysinfo
        _scrub_identity(self._sysinfo, fixture, alias)
        count = len(self._sysinfo["children"]) if self._strip else 1
        now = time.monotonic()
        self._on: list[bool] = []
        self._on_since: list[float | None] = []
        for i in range(count):
            on = self._initial(i) if initial_on is None else initial_on
            self._on.append(on)
            self._on_since.append(now - self._initial_on_time(i) if on else None)
        realtime = dump.get("emeter", {}).get("get_realtime", {})
        self._meter = "ENE" in str(self._sysinfo.get("feature", "")) and not realtime.get(
            "err_code"
        )
        self._milli = "power_mw" in realtime or "voltage_mv" in realtime
        self._volts = realtime.get("voltage_mv", 0) / 1000 or realtime.get("voltage", 230.0)
        self._countdown = CountdownTable(self._strip, self._countdown_fired)
        Handler = Callable[[Json, list[int] | None], Json | None]
        self._dynamic: dict[tuple[str, str], Handler] = {
            ("system", "get_sysinfo"): lambda a, o: self._sysinfo_now(),
            ("system", "set_relay_state"): self._set_relay_state,
            ("system", "set_dev_alias"): self._set_alias,
            ("system", "set_led_off"): self._set_led_off,
            ("emeter", "get_realtime"): lambda a, o: self._realtime(o),
            ("time", "get_time"): lambda a, o: _time_now(),
            ("count_down", "get_rules"): self._countdown.get_rules,
            ("count_down", "add_rule"): self._countdown.add_rule,
            ("count_down", "edit_rule"): self._countdown.edit_rule,
            ("count_down", "delete_rule"): self._countdown.delete_rule,
            ("count_down", "delete_all_rules"): self._countdown.delete_all_rules,
        }

    # ------------------------------------------------------------------ identity & state
    def _initial(self, outlet: int) -> bool:
        if self._strip:
            return bool(self._sysinfo["children"][outlet].get("state"))
        return bool(self._sysinfo.get("relay_state"))

    def _initial_on_time(self, outlet: int) -> float:
        src = self._sysinfo["children"][outlet] if self._strip else self._sysinfo
        return float(src.get("on_time", 0))

    @property
    def outlets(self) -> int:
        return len(self._on)

    def child_id(self, outlet: int) -> str:
        return str(self._sysinfo["children"][outlet]["id"])

    def alias(self, outlet: int | None = None) -> str:
        if outlet is None or not self._strip:
            return str(self._sysinfo["alias"])
        return str(self._sysinfo["children"][outlet]["alias"])

    def is_on(self, outlet: int = 0) -> bool:
        return self._on[self._check(outlet)]

    def set_on(self, on: bool, outlet: int = 0, cause: str = "manual") -> None:
        """Flip a relay as a human at the plug would (recorded, and on_change is called)."""
        self._switch(self._check(outlet), on, cause)

    def watts(self, outlet: int = 0) -> float:
        return self.load.get(outlet, self.on_watts) if self._on[self._check(outlet)] else 0.0

    @property
    def rules(self) -> list[CountdownRule]:
        return self._countdown.snapshot()

    def _check(self, outlet: int) -> int:
        if not 0 <= outlet < len(self._on):
            raise IndexError(f"{self.fixture} has no outlet {outlet}")
        return outlet

    def _switch(self, outlet: int, on: bool, cause: str) -> None:
        if self._on[outlet] == on:
            return  # the relay does not move, nothing happens to the load
        self._on[outlet] = on
        self._on_since[outlet] = time.monotonic() if on else None
        self.record.append(PowerEvent(time.monotonic(), outlet, on, cause))
        _LOG.debug("%s outlet %d %s (%s)", self.fixture, outlet, "on" if on else "off", cause)
        if self.on_change is not None:
            try:
                self.on_change(outlet, on)
            except Exception:
                _LOG.exception("on_change callback failed")

    # ------------------------------------------------------------------ the device's API
    def handle(self, request: Any) -> Json:
        """Answer one decrypted request the way the firmware does."""
        if not isinstance(request, dict):
            return _err(*_INVALID_ARGUMENT)
        self.requests.append(copy.deepcopy(request))
        outlets = self._outlets_for(request.get("context"))  # None: no context; False: bad ids
        response: Json = {}
        for service, methods in request.items():
            if service == "context":
                continue
            supported = service in _STATE_SERVICES or (service == "emeter" and self._meter)
            if not supported or not isinstance(methods, dict):
                response[service] = _err(*_MODULE_NOT_SUPPORTED)
                continue
            if outlets is False:
                response[service] = _err(*_INVALID_ARGUMENT)  # unknown child id
                continue
            targets = outlets if isinstance(outlets, list) and outlets else None
            answers: Json = {}
            for method, params in methods.items():
                args = params if isinstance(params, dict) else {}
                answers[method] = self._call(service, method, args, targets)
            response[service] = answers
        return response

    def _outlets_for(self, context: Any) -> list[int] | bool | None:
        if not self._strip or not isinstance(context, dict) or "child_ids" not in context:
            return None
        ids = [c["id"] for c in self._sysinfo["children"]]
        wanted = context["child_ids"]
        if not isinstance(wanted, list) or any(c not in ids for c in wanted):
            return False
        return [ids.index(c) for c in wanted]

    def _call(self, service: str, method: str, args: Json, outlets: list[int] | None) -> Json:
        fn = self._dynamic.get((service, method))
        if fn is None:
            if method not in _STATIC.get(service, {}):
                return _err(*_MEMBER_NOT_SUPPORTED)
            return {**copy.deepcopy(_STATIC[service][method] or {}), "err_code": 0}
        try:
            result = fn(args, outlets)
        except (KeyError, TypeError, ValueError):
            return _err(*_INVALID_ARGUMENT)
        if result is not None and "err_code" in result:
            return result
        return {**(result or {}), "err_code": 0}

    def _sysinfo_now(self) -> Json:
        info = copy.deepcopy(self._sysinfo)
        now = time.monotonic()

        def on_time(i: int) -> int:
            since = self._on_since[i]
            return int(now - since) if since is not None else 0

        if self._strip:
            for i, child in enumerate(info["children"]):
                child["state"] = int(self._on[i])
                child["on_time"] = on_time(i)
        else:
            info["relay_state"] = int(self._on[0])
            if "on_time" in info:
                info["on_time"] = on_time(0)
        info.pop("err_code", None)
        return info

    def _targets(self, outlets: list[int] | None) -> list[int]:
        return outlets if outlets is not None else list(range(len(self._on)))

    def _set_relay_state(self, args: Json, outlets: list[int] | None) -> Json | None:
        state = args["state"]
        if state not in (0, 1) or isinstance(state, bool):
            return _err(*_INVALID_ARGUMENT)
        for i in self._targets(outlets):  # a strip without context switches every outlet
            self._switch(i, bool(state), "client")
        return None

    def _set_alias(self, args: Json, outlets: list[int] | None) -> None:
        alias = str(args["alias"])
        if outlets is None:
            self._sysinfo["alias"] = alias
        for i in outlets or []:
            self._sysinfo["children"][i]["alias"] = alias

    def _set_led_off(self, args: Json, outlets: list[int] | None) -> None:
        self._sysinfo["led_off"] = int(bool(args["off"]))

    def _realtime(self, outlets: list[int] | None) -> Json:
        targets = self._targets(outlets[:1] if outlets else None)
        watts = sum(self.watts(i) for i in targets)
        amps = watts / self._volts if self._volts else 0.0
        if not self._milli:
            return {
                "voltage": self._volts,
                "current": round(amps, 6),
                "power": round(watts, 6),
                "total": 0.0,
            }
        out = {
            "voltage_mv": int(self._volts * 1000),
            "current_ma": int(amps * 1000),
            "power_mw": int(watts * 1000),
            "total_wh": 0,
        }
        if outlets:
            out["slot_id"] = outlets[0]
        return out

    def _countdown_fired(self, outlet: int | None, act: bool) -> None:
        for i in self._targets(None if outlet is None else [outlet]):
            self._switch(i, act, "countdown")
