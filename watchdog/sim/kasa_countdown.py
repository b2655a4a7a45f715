"""The emulated plug's ``count_down`` service: device-side timers that really fire.

Owns the rule table (one rule per outlet, or one per plug), the firmware's answers to
``get_rules``/``add_rule``/``edit_rule``/``delete_rule``/``delete_all_rules``, and the timers
on the running event loop. When a rule fires, the table calls back into the device, which
switches the relay whatever its network side is doing.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.sim.kasa_firmware import (
    _INVALID_ARGUMENT,
    _NO_ENTRY,
    _TABLE_FULL,
    Json,
    _err,
)


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


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class CountdownTable:
    """The rules of one plug or strip; ``fire(outlet, act)`` switches when a rule runs out.

    The request handlers take ``(args, outlets)`` like the device's other methods: ``outlets``
    is the strip's context (None: no context).
    """

    def __init__(self, strip: bool, fire: Callable[[int | None, bool], None]) -> None:
        self._strip = strip
        self._on_fire = fire
        self._rules: list[_Rule] = []

    def snapshot(self) -> list[CountdownRule]:
        now = _now()
        return [
            CountdownRule(r.id, r.name, r.enable, r.delay, r.act, r.outlet, r.remain(now))
            for r in self._rules
        ]

    def cancel_timers(self) -> None:
        """Stop every timer (the emulator is stopping); the rules themselves stay."""
        for rule in self._rules:
            if rule.handle is not None:
                rule.handle.cancel()
                rule.handle = None

    def _rule_outlet(self, outlets: list[int] | None) -> int | None:
        if not self._strip:
            return 0
        return outlets[0] if outlets else None

    def get_rules(self, args: Json, outlets: list[int] | None) -> Json:
        where, now = self._rule_outlet(outlets), _now()
        return {"rule_list": [r.wire(now) for r in self._rules if r.outlet == where]}

    def add_rule(self, args: Json, outlets: list[int] | None) -> Json:
        where = self._rule_outlet(outlets)
        if any(r.outlet == where for r in self._rules):
            return _err(*_TABLE_FULL)
        rule = _Rule(uuid.uuid4().hex.upper(), str(args.get("name", "")), True, 0, True, where)
        if not self._apply_rule_args(rule, args, require=True):
            return _err(*_INVALID_ARGUMENT)
        self._rules.append(rule)
        self._arm(rule)
        return {"id": rule.id}

    def edit_rule(self, args: Json, outlets: list[int] | None) -> Json | None:
        rule = next((r for r in self._rules if r.id == args.get("id")), None)
        if rule is None:
            return _err(*_NO_ENTRY)
        if not self._apply_rule_args(rule, args, require=False):
            return _err(*_INVALID_ARGUMENT)
        self._arm(rule)
        return None

    def delete_rule(self, args: Json, outlets: list[int] | None) -> Json | None:
        rule = next((r for r in self._rules if r.id == args.get("id")), None)
        if rule is None:
            return _err(*_NO_ENTRY)
        self._drop(rule)
        return None

    def delete_all_rules(self, args: Json, outlets: list[int] | None) -> None:
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
        self._on_fire(rule.outlet, rule.act)
