"""Durations in the config: ``30s``, ``5m``, ``1h30m``, ``500ms`` or bare seconds.

Owns parsing and formatting (``parse_duration``/``format_duration``), the annotated field types
``Duration`` and ``PositiveDuration``, and the shared rule that a timeout fits its interval.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, Field

from watchdog.config.base import _Problem

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*)+$")
_NUMBER_RE = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The longest duration accepted anywhere: far beyond any sensible interval or pause, far
# below what the scheduler's timedelta/datetime arithmetic can overflow on.
MAX_DURATION = 366 * 86400.0


def parse_duration(value: object) -> float:
    """``30s``, ``5m``, ``1h30m``, ``500ms`` or a bare number of seconds -> seconds."""
    if isinstance(value, bool):  # YAML turns `yes`/`on` into booleans: not a duration
        raise _Problem("expected a duration such as 30s, 5m or 1h30m", _DURATION_FIX)
    if isinstance(value, int) and abs(value) > MAX_DURATION:
        seconds = math.inf  # float() of a huge integer would overflow
    elif isinstance(value, int | float) or (
        isinstance(value, str) and len(value) <= 64 and _NUMBER_RE.match(value)
    ):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64 and _DURATION_RE.match(value):
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART_RE.findall(value))
    else:
        raise _Problem(
            f"expected a duration such as 30s, 5m or 1h30m, got {repr(value)[:40]}",
            _DURATION_FIX,
        )
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise _Problem(
            f"a duration can be at most {format_duration(MAX_DURATION)}",
            "write a duration such as 30s, 5m or 1h30m",
        )
    if seconds < 0:
        raise _Problem("a duration cannot be negative", "write a positive duration such as 30s")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration` for messages: 90 -> ``1m30s``, 0.5 -> ``500ms``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = "", round(seconds, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{int(rest // size)}{unit}"
            rest -= size * int(rest // size)
    if rest or not out:
        out += f"{rest:g}s"
    return out


_DURATION_FIX = "units are ms, s, m, h and d (1h30m); a bare number means seconds"

Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def _timeout_within_interval(timeout: float, interval: float) -> None:
    # A probe whose deadline outlives its period would overlap the next run of itself.
    if timeout > interval:
        raise _Problem(
            f"longer than interval ({format_duration(timeout)} > {format_duration(interval)})",
            "make timeout at most interval",
            key="timeout",
        )
