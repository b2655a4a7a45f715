"""What a legacy Kasa plug's JSON means: the requests to send and the answers checked, no I/O.

Owns the legacy ("IOT") Kasa API as both Kasa drivers use it: which outlet a configuration
names (:func:`choose_outlet` and its NO_OUTLET messages), a plug's or strip's sysinfo read into
one :class:`Outlet` (a strip's outlets are addressed by their sysinfo ``id``, exactly as the
device reports it, through ``context.child_ids``), the energy meter's answer in watts
(``power`` in W or ``power_mw`` in mW), and the ``count_down`` rule that switches an outlet
back on by itself (:func:`countdown_request`, :func:`countdown_done`). The native XOR driver
(:mod:`.kasa_xor`) uses all of it; the python-kasa one (:mod:`.kasa`, :mod:`.kasa_timer`) the
outlet choice and the ``count_down`` rule.

Every answer is untrusted: a wrong type, a missing key or a non-zero ``err_code`` raises
:class:`BadAnswer` (a PROTOCOL failure), never ``KeyError`` or ``TypeError``; the device's text
in a message is made printable and capped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchdog.core.errors import PlugError, PlugFailure
from watchdog.edge.bounded import printable

Json = dict[str, Any]
GET_SYSINFO: Json = {"system": {"get_sysinfo": {}}}  # the first query, as python-kasa's
TIMER_NAME = "cluster-watchdog"
MODULE_NOT_SUPPORTED = -1  # legacy firmware's answer for a service it does not have


class BadAnswer(ValueError):
    """The device answered, but not what the legacy Kasa API answers."""


@dataclass(frozen=True, slots=True)
class Outlet:
    """The configured outlet as the device's sysinfo describes it."""

    child_id: str | None  # a strip outlet's id; None: a single plug, addressed without context
    is_on: bool
    alias: str
    metered: bool  # the device has an energy meter (sysinfo ``feature`` contains "ENE")


def shown(value: Any) -> str:
    """A device's value, printable and short enough for a message."""
    return printable(repr(value), 200)


def choose_outlet(label: str, outlet: int | str | None, aliases: Sequence[str]) -> int | None:
    """The index of the configured outlet among a strip's ``aliases``; None: the device itself.

    ``aliases`` is empty for a single plug. Raises PlugError NO_OUTLET when the configuration
    and the device disagree (an outlet on a single plug, none or a missing one on a strip)."""
    count = len(aliases)
    if outlet is None:
        if count:
            raise PlugError(
                PlugFailure.NO_OUTLET,
                f"plug {label}: the device is a strip with {count} outlets; set plug.outlet",
            )
        return None
    if not count:
        raise PlugError(
            PlugFailure.NO_OUTLET,
            f"plug {label}: outlet {outlet!r} set, but the device is no strip",
        )
    if isinstance(outlet, int):
        if 0 <= outlet < count:
            return outlet
    else:
        wanted = outlet.lower()
        for index, alias in enumerate(aliases):
            if alias.lower() == wanted:
                return index
    names = printable(", ".join(repr(a) for a in aliases), 200)
    raise PlugError(
        PlugFailure.NO_OUTLET,
        f"plug {label}: no outlet {outlet!r} (outlets 0..{count - 1}: {names})",
    )


def request(service: str, method: str, args: Json, child_id: str | None) -> Json:
    """One call, addressed to a strip outlet when ``child_id`` is given."""
    if child_id is None:
        return {service: {method: args}}
    return {"context": {"child_ids": [child_id]}, service: {method: args}}


def result(answer: Json, service: str, method: str) -> Json:
    """The ``service.method`` part of ``answer``, checked; raises BadAnswer."""
    section = answer.get(service)
    if not isinstance(section, dict):
        raise BadAnswer(f"{service}: answered {shown(section)}")
    if section.get("err_code", 0) != 0:
        raise BadAnswer(f"{service}.{method} refused: {shown(section)}")
    value = section.get(method)
    if not isinstance(value, dict):
        raise BadAnswer(f"{service}.{method} answered {shown(value)}")
    if value.get("err_code", 0) != 0:
        raise BadAnswer(f"{service}.{method} refused: {shown(value)}")
    return value


def _relay(info: Json, key: str) -> bool:
    state = info.get(key)
    if state not in (0, 1) or isinstance(state, float):  # True and False are 1 and 0
        raise BadAnswer(f"{key} is {shown(state)}, not 0 or 1")
    return bool(state)


def read_outlet(answer: Json, outlet: int | str | None, label: str) -> Outlet:
    """The configured outlet in a ``get_sysinfo`` answer; raises BadAnswer or NO_OUTLET."""
    info = result(answer, "system", "get_sysinfo")
    features = info.get("feature", "")
    if not isinstance(features, str):
        raise BadAnswer(f"feature is {shown(features)}")
    metered = "ENE" in features.split(":")
    children = info.get("children")
    if children is None:
        choose_outlet(label, outlet, ())
        return Outlet(None, _relay(info, "relay_state"), _alias(info), metered)
    if not isinstance(children, list) or not all(isinstance(c, dict) for c in children):
        raise BadAnswer(f"children is {shown(children)}")
    index = choose_outlet(label, outlet, [_alias(c) for c in children])
    child = children[index or 0]
    child_id = child.get("id")
    if not isinstance(child_id, str) or not child_id:
        raise BadAnswer(f"outlet {index} has the id {shown(child_id)}")
    return Outlet(child_id, _relay(child, "state"), _alias(child), metered)


def _alias(info: Json) -> str:
    alias = info.get("alias")
    return "" if alias is None else str(alias)


def realtime_watts(answer: Json) -> float | None:
    """The power draw in an ``emeter.get_realtime`` answer; None when the device has no meter.

    A device without the module answers ``err_code`` -1 (so does a refused reading): None,
    as python-kasa reads it. Newer firmware reports ``power_mw`` (mW), older ``power`` (W).
    """
    meter = answer.get("emeter")
    if isinstance(meter, dict) and meter.get("err_code", 0) != 0:
        return None  # the module is missing
    if not isinstance(meter, dict) or not isinstance(meter.get("get_realtime"), dict):
        raise BadAnswer(f"emeter answered {shown(meter)}")
    realtime = meter["get_realtime"]
    if realtime.get("err_code", 0) != 0:
        return None
    if "power" in realtime:
        key, scale = "power", 1.0
    elif "power_mw" in realtime:
        key, scale = "power_mw", 1000.0
    else:
        return None
    value = realtime[key]
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BadAnswer(f"emeter {key} is {shown(value)}")
    return float(value) / scale


def countdown_request(seconds: int | None, child_id: str | None) -> tuple[Json, tuple[str, ...]]:
    """The query replacing the outlet's count_down rule by ours (``seconds``) or by none,
    and the calls it makes (each must answer ``err_code`` 0)."""
    calls: Json = {"delete_all_rules": {}}
    if seconds is not None:
        calls["add_rule"] = {"enable": 1, "delay": seconds, "act": 1, "name": TIMER_NAME}
    query: Json = {"count_down": calls}
    if child_id is not None:
        query["context"] = {"child_ids": [child_id]}
    return query, tuple(calls)


def countdown_done(answer: Any, calls: Sequence[str], label: str) -> bool:
    """Whether the count_down query worked: False when the device has no such service;
    raises PlugError PROTOCOL for any other refusal or a malformed answer."""
    section = answer.get("count_down", {}) if isinstance(answer, dict) else answer
    if isinstance(section, dict) and section.get("err_code") == MODULE_NOT_SUPPORTED:
        return False
    for call in calls:
        outcome = section.get(call) if isinstance(section, dict) else section
        if not isinstance(outcome, dict) or outcome.get("err_code") != 0:
            raise PlugError(
                PlugFailure.PROTOCOL, f"plug {label}: count_down.{call} answered {shown(outcome)}"
            )
    return True
