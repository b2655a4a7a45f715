"""Kasa smart-plug emulator speaking the real local protocol, built from recorded device dumps.

Owns one emulated plug or power strip: its relays, energy meter, device-side ``count_down``
rules (which really fire), and fault modes. It serves the legacy protocol that python-kasa's
``XorTransport`` speaks (TCP, 4-byte big-endian length prefix, XOR autokey cipher with key
171) or, when ``credentials`` are given, KLAP v2 over HTTP (:mod:`watchdog.sim.klap`), as newer
firmware does. ``record`` is the plug's own log of every relay change: tests and scenarios
assert on it, never on what the watchdog believes it did.

Answers follow real firmware: a module the model lacks gets ``{"err_code": -1, "err_msg":
"module not support"}`` (python-kasa then drops that module), an unknown method of a known
module gets ``-2 "member not support"``. python-kasa's own ``Countdown`` module asks for
``countdown`` (the firmware's service is ``count_down``) and so is told "module not support",
exactly as a real plug does.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import socket
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from watchdog.sim.klap import KlapServer

_LOG = logging.getLogger("watchdog.sim.kasa")
_LEN = struct.Struct(">I")
_MAX_REQUEST = 64 * 1024  # real firmware has a few KiB of buffer; anything larger is garbage
_STATE_SERVICES = ("system", "time", "schedule", "anti_theft", "count_down", "cnCloud")
_NO_RULES = {"rule_list": [], "version": 2, "enable": 0}
# Canned answers (None: just err_code 0) for what a plug answers without any state we model.
_STATIC: dict[str, dict[str, dict[str, Any] | None]] = {
    "system": {"reboot": None},  # a Kasa reboot keeps the relay state
    "emeter": {
        "get_daystat": {"day_list": []},
        "get_monthstat": {"month_list": []},
        "erase_emeter_stat": None,
    },
    "time": {
        "get_timezone": {"index": 38},  # "UCT" in python-kasa's index table
        "set_time": None,
        "set_timezone": None,
    },
    "schedule": {
        "get_rules": _NO_RULES,
        "get_next_action": {"type": -1},
        "get_daystat": {"day_list": []},
        "get_monthstat": {"month_list": []},
        "delete_all_rules": None,
        "set_overall_enable": None,
    },
    "anti_theft": {
        "get_rules": _NO_RULES,
        "get_next_action": {"type": -1},
        "delete_all_rules": None,
        "set_overall_enable": None,
    },
    "cnCloud": {
        "get_info": {
            "username": "",
            "server": "devs.tplinkcloud.com",
            "binded": 0,
            "cld_connection": 0,
            "illegalType": -1,
            "stopConnect": -1,
            "tcspStatus": -1,
            "fwDlPage": "",
            "tcspInfo": "",
            "fwNotifyType": 0,
        }
    },
}

Json = dict[str, Any]


def _err(code: int, msg: str) -> Json:
    return {"err_code": code, "err_msg": msg}


_MODULE_NOT_SUPPORTED = (-1, "module not support")
_MEMBER_NOT_SUPPORTED = (-2, "member not support")
# The firmware stores one countdown rule per outlet; the code for a second add_rule and for
# bad arguments is not documented, so these are the emulator's choice (clients only check
# err_code != 0).
_INVALID_ARGUMENT = (-3, "invalid argument")
_TABLE_FULL = (-10, "table is full")
_NO_ENTRY = (-14, "entry not exist")


class PlugFault(StrEnum):
    """What is wrong with the emulated plug's network side (its relays keep working)."""

    NONE = "none"
    DOWN = "down"  # listening socket closed: connections are refused
    HANG = "hang"  # accepts and reads requests, never answers
    AUTH = "auth"  # KLAP only: handshakes are answered with a proof no credentials match


@dataclass(frozen=True, slots=True)
class PowerEvent:
    """One relay change, as the plug itself saw it. ``at`` is ``time.monotonic()``."""

    at: float
    outlet: int  # 0 for single plugs
    on: bool
    cause: str  # "client" | "countdown" | whatever a caller of set_on() passes


@dataclass(frozen=True, slots=True)
class CountdownRule:
    """A snapshot of one device-side countdown rule. ``outlet`` None: every outlet."""

    id: str
    name: str
    enable: bool
    delay: int
    act: bool
    outlet: int | None
    remain: int


@dataclass
class _Rule:
    id: str
    name: str
    enable: bool
    delay: int
    act: bool
    outlet: int | None
    deadline: float = 0.0
    handle: asyncio.TimerHandle | None = None

    def remain(self, now: float) -> int:
        return max(0, math.ceil(self.deadline - now)) if self.handle else 0

    def wire(self, now: float) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "enable": int(self.enable),
            "delay": self.delay,
            "act": int(self.act),
            "remain": self.remain(now),
        }


def load_fixture(fixture: str) -> Json:
    """A recorded dump by name (shipped in ``watchdog/sim/fixtures``) or by path."""
    if fixture.endswith(".json") and Path(fixture).is_file():
        text = Path(fixture).read_text(encoding="utf-8")
    else:
        text = (resources.files("watchdog.sim") / "fixtures" / f"{fixture}.json").read_text(
            encoding="utf-8"
        )
    data: Json = json.loads(text)
    return data


def xor_encrypt(plain: bytes) -> bytes:
    key, out = 171, bytearray(_LEN.pack(len(plain)))
    for byte in plain:
        key ^= byte
        out.append(key)
    return bytes(out)


def xor_decrypt(cipher: bytes) -> bytes:
    key, out = 171, bytearray()
    for byte in cipher:
        out.append(key ^ byte)
        key = byte
    return bytes(out)


class KasaEmulator:
    """One emulated Kasa plug or strip on ``host:port`` (port 0: pick a free one at start)."""

    def __init__(
        self,
        fixture: str = "HS110(EU)_1.0_1.2.5",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_watts: float = 90.0,
        credentials: tuple[str, str] | None = None,
        initial_on: bool | None = None,
        alias: str | None = None,
    ) -> None:
        dump = load_fixture(fixture)
        self.fixture = fixture
        self.host = host
        self.port = port
        self.on_watts = on_watts
        self.load: dict[int, float] = {}  # per-outlet draw when on; default on_watts
        self.record: list[PowerEvent] = []
        self.requests: deque[Json] = deque(maxlen=1000)  # decrypted requests, oldest first
        self.on_change: Callable[[int, bool], None] | None = None
        self._fault = PlugFault.NONE
        self._sysinfo: Json = copy.deepcopy(dump["system"]["get_sysinfo"])
        self._strip = "children" in self._sysinfo
        self._prepare_identity(alias)
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
        self._rules: list[_Rule] = []
        Handler = Callable[[Json, list[int] | None], Json | None]
        self._dynamic: dict[tuple[str, str], Handler] = {
            ("system", "get_sysinfo"): lambda a, o: self._sysinfo_now(),
            ("system", "set_relay_state"): self._set_relay_state,
            ("system", "set_dev_alias"): self._set_alias,
            ("system", "set_led_off"): self._set_led_off,
            ("emeter", "get_realtime"): lambda a, o: self._realtime(o),
            ("time", "get_time"): lambda a, o: self._time(),
            ("count_down", "get_rules"): self._cd_get,
            ("count_down", "add_rule"): self._cd_add,
            ("count_down", "edit_rule"): self._cd_edit,
            ("count_down", "delete_rule"): self._cd_delete,
            ("count_down", "delete_all_rules"): self._cd_delete_all,
        }
        self._klap = (
            KlapServer(self.handle, credentials, lambda: self._fault) if credentials else None
        )
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._relisten: asyncio.Task[None] | None = None
        self._started = False

    def __repr__(self) -> str:  # never shows credentials
        return f"KasaEmulator({self.fixture!r}, {self.host}:{self.port}, fault={self._fault})"

    # ------------------------------------------------------------------ identity & state
    def _prepare_identity(self, alias: str | None) -> None:
        """Dumps are scrubbed: give the device and outlets stable, distinct names and ids."""
        info = self._sysinfo
        model = str(info.get("model", "plug")).split("(")[0]
        if alias or "MASKED" in str(info.get("alias", "")):
            info["alias"] = alias or f"{model} emulator"
        if set(str(info.get("deviceId", "0"))) <= {"0"}:
            info["deviceId"] = uuid.uuid5(uuid.NAMESPACE_URL, self.fixture).hex.upper() + "00000000"
        for i, child in enumerate(info.get("children", [])):
            # Real strips name children <deviceId><two-digit index>.
            child["id"] = f"{info['deviceId']}{i:02d}"
            if "MASKED" in str(child.get("alias", "")) or not child.get("alias"):
                child["alias"] = f"outlet {i + 1}"

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
        now = self._now()
        return [
            CountdownRule(r.id, r.name, r.enable, r.delay, r.act, r.outlet, r.remain(now))
            for r in self._rules
        ]

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

    @staticmethod
    def _now() -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

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

    @staticmethod
    def _time() -> Json:
        now = datetime.now(UTC)
        return {
            "year": now.year,
            "month": now.month,
            "mday": now.day,
            "hour": now.hour,
            "min": now.minute,
            "sec": now.second,
        }

    # ------------------------------------------------------------------ count_down
    def _rule_outlet(self, outlets: list[int] | None) -> int | None:
        if not self._strip:
            return 0
        return outlets[0] if outlets else None

    def _cd_get(self, args: Json, outlets: list[int] | None) -> Json:
        where, now = self._rule_outlet(outlets), self._now()
        return {"rule_list": [r.wire(now) for r in self._rules if r.outlet == where]}

    def _cd_add(self, args: Json, outlets: list[int] | None) -> Json:
        where = self._rule_outlet(outlets)
        if any(r.outlet == where for r in self._rules):
            return _err(*_TABLE_FULL)
        rule = _Rule(uuid.uuid4().hex.upper(), str(args.get("name", "")), True, 0, True, where)
        if not self._apply_rule_args(rule, args, require=True):
            return _err(*_INVALID_ARGUMENT)
        self._rules.append(rule)
        self._arm(rule)
        return {"id": rule.id}

    def _cd_edit(self, args: Json, outlets: list[int] | None) -> Json | None:
        rule = next((r for r in self._rules if r.id == args.get("id")), None)
        if rule is None:
            return _err(*_NO_ENTRY)
        if not self._apply_rule_args(rule, args, require=False):
            return _err(*_INVALID_ARGUMENT)
        self._arm(rule)
        return None

    def _cd_delete(self, args: Json, outlets: list[int] | None) -> Json | None:
        rule = next((r for r in self._rules if r.id == args.get("id")), None)
        if rule is None:
            return _err(*_NO_ENTRY)
        self._drop(rule)
        return None

    def _cd_delete_all(self, args: Json, outlets: list[int] | None) -> None:
        where = self._rule_outlet(outlets)
        for rule in [r for r in self._rules if r.outlet == where]:
            self._drop(rule)

    @staticmethod
    def _apply_rule_args(rule: _Rule, args: Json, *, require: bool) -> bool:
        if require and not {"delay", "act"} <= args.keys():
            return False
        delay, act, enable = (
            args.get("delay", rule.delay),
            args.get("act", int(rule.act)),
            args.get("enable", int(rule.enable)),
        )
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 86400:
            return False
        if act not in (0, 1) or enable not in (0, 1):
            return False
        rule.delay, rule.act, rule.enable = delay, bool(act), bool(enable)
        rule.name = str(args.get("name", rule.name))
        return True

    def _arm(self, rule: _Rule) -> None:
        if rule.handle is not None:
            rule.handle.cancel()
            rule.handle = None
        if rule.enable:
            loop = asyncio.get_running_loop()
            rule.deadline = loop.time() + rule.delay
            rule.handle = loop.call_later(rule.delay, self._fire, rule)

    def _drop(self, rule: _Rule) -> None:
        if rule.handle is not None:
            rule.handle.cancel()
        self._rules.remove(rule)

    def _fire(self, rule: _Rule) -> None:
        # The relay logic runs on the plug itself: it fires whatever the network is doing.
        rule.handle, rule.enable = None, False
        for i in self._targets(None if rule.outlet is None else [rule.outlet]):
            self._switch(i, rule.act, "countdown")

    # ------------------------------------------------------------------ network side
    @property
    def fault(self) -> PlugFault:
        return self._fault

    @fault.setter
    def fault(self, value: PlugFault) -> None:
        old, self._fault = self._fault, PlugFault(value)
        if not self._started:
            return
        if self._fault is PlugFault.DOWN and old is not PlugFault.DOWN:
            self._close_listener()
        elif old is PlugFault.DOWN and self._fault is not PlugFault.DOWN:
            # Bind now, so connections from here on queue instead of being refused.
            self._relisten = asyncio.get_running_loop().create_task(self._serve(self._bind()))

    async def set_fault(self, value: PlugFault) -> None:
        self.fault = value
        if self._relisten is not None:
            await self._relisten
            self._relisten = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._klap is not None:
            await self._klap.setup()
        sock = self._bind()
        if self._fault is PlugFault.DOWN:
            sock.close()  # the port is known; nothing listens until the fault clears
            return
        await self._serve(sock)

    async def stop(self) -> None:
        self._started = False
        if self._relisten is not None:
            with contextlib.suppress(Exception):
                await self._relisten
        self._close_listener()
        if self._handlers:  # their sockets are closed: let them see EOF and finish
            await asyncio.wait(list(self._handlers), timeout=1.0)
        for rule in self._rules:
            if rule.handle is not None:
                rule.handle.cancel()
                rule.handle = None
        if self._klap is not None:
            await self._klap.cleanup()

    async def __aenter__(self) -> KasaEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(32)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        if self._klap is not None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._klap.factory, sock=sock)
        else:
            self._server = await asyncio.start_server(self._serve_xor, sock=sock)

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket now: connects are refused
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        if self._klap is not None:
            self._klap.drop_connections()

    async def _serve_xor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                if length > _MAX_REQUEST:
                    break
                payload = await reader.readexactly(length)
                if self._fault is PlugFault.HANG:
                    continue  # read it, never answer
                try:
                    request = json.loads(xor_decrypt(payload))
                except ValueError:
                    break  # firmware drops the connection on garbage
                answer = json.dumps(self.handle(request), separators=(",", ":"))
                writer.write(xor_encrypt(answer.encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            _LOG.exception("emulated plug failed on a request")
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()
