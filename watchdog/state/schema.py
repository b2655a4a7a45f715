"""What ``state.json`` holds: the persisted values and their strict JSON mapping (store adapter).

Values are frozen dataclasses holding plain values (records per node, half-done power
cycles, the fleet budget, open pages); pydantic validates them when a file is read back.
:mod:`watchdog.state.store` keeps them on disk; this module only says what a valid state is.

The schema is strict: no unknown key, no ``"3"`` for 3 nor ``1`` for true, every number
finite and within ``MAX_NUMBER`` (a timestamp or a count beyond 1e12, the year 33658, is
damage, not data); a JSON list stands for a tuple. A :class:`SchemaError` names the key
paths of the first few problems, never the offending values: a file may hold anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    with_config,
)

from watchdog.core.errors import StoreError
from watchdog.edge.bounded import printable

SCHEMA_VERSION = 1
MAX_NUMBER = 1e12


def _this_version(version: int) -> int:
    if version != SCHEMA_VERSION:
        raise ValueError(f"schema version {_short(version)} is not {SCHEMA_VERSION}")
    return version


# The field types a state file may hold. Strict, except that a JSON list stands for a tuple.
Number = Annotated[float, Strict(), Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
Count = Annotated[int, Strict(), Field(ge=-int(MAX_NUMBER), le=int(MAX_NUMBER))]
Text = Annotated[str, Strict()]
Flag = Annotated[bool, Strict()]
Version = Annotated[int, Strict(), AfterValidator(_this_version)]
# No unknown keys; a NaN is written as NaN, so that saving it fails instead of writing null.
_SCHEMA = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class IntentStep(StrEnum):
    """How far a power cycle got; recorded before each step is attempted."""

    OFF_REQUESTED = "off_requested"
    OFF = "off"
    ON_REQUESTED = "on_requested"


@with_config(_SCHEMA)
@dataclass(frozen=True)
class CycleIntent:
    node: Text
    started_at: Number
    step: IntentStep
    manual: Flag = False


@with_config(_SCHEMA)
@dataclass(frozen=True)
class NodeRecord:
    node_class: Text = "unknown"
    since: Number = 0.0
    consecutive_failures: Count = 0
    failing_since: Number | None = None
    seen_healthy: Flag = False
    cycles: tuple[Number, ...] = ()  # unix start times of power cycles (budget survives restarts)
    latched: Flag = False
    latched_reason: Text = ""
    latched_at: Number | None = None
    paused: Flag = False
    paused_until: Number | None = None  # paused with until None = indefinitely
    last_failure: Text = ""
    last_detail: Text = ""
    last_cycle_at: Number | None = None
    boot_started_at: Number | None = None
    open_alerts: tuple[Text, ...] = ()  # alert conditions paged and not yet resolved


@with_config(_SCHEMA)
@dataclass(frozen=True)
class PersistedState:
    version: Version = SCHEMA_VERSION
    saved_at: Number = 0.0
    nodes: Mapping[str, NodeRecord] = field(default_factory=dict)
    intents: Mapping[str, CycleIntent] = field(default_factory=dict)
    fleet_cycles: tuple[tuple[Text, Number], ...] = ()
    # Pages open about a cluster's endpoint, and fleet-level pages (blind, overloaded).
    cluster_alerts: Mapping[str, tuple[Text, ...]] = field(default_factory=dict)
    fleet_alerts: tuple[Text, ...] = ()


class SchemaError(StoreError):
    """The file parsed as JSON but is not a state of the schema this build understands."""


# --- JSON mapping --------------------------------------------------------------------------


def _versioned(data: object) -> object:
    # The dataclass's default would fill a missing version in: a file without one is not ours.
    if isinstance(data, dict) and "version" not in data:
        raise ValueError(f"schema version None is not {SCHEMA_VERSION}")
    return data


def _keyed_by_node(state: PersistedState) -> PersistedState:
    for name, intent in state.intents.items():
        if intent.node != name:
            where = f"intents.{_short(name, repr_=False)}.node"
            raise ValueError(f"{where}: names another node than the key it is filed under")
    return state


_STATE: TypeAdapter[PersistedState] = TypeAdapter(
    Annotated[PersistedState, BeforeValidator(_versioned), AfterValidator(_keyed_by_node)]
)
_MAX_ERRORS = 3
# Pydantic's words where they would speak of Python rather than of the JSON file.
_JSON_WORDS = {
    "dataclass_type": "expected an object",
    "dict_type": "expected an object",
    "tuple_type": "expected a list",
    "missing": "missing key",
    "unexpected_keyword_argument": "unknown key",
}


def to_json(state: PersistedState) -> dict[str, Any]:
    """The JSON-ready form of ``state`` (dicts, lists and scalars only)."""
    tables = (state.nodes, state.intents, state.cluster_alerts)
    if not all(type(table) is dict for table in tables):  # pydantic writes only a dict
        state = dataclasses.replace(
            state,
            nodes=dict(state.nodes),
            intents=dict(state.intents),
            cluster_alerts=dict(state.cluster_alerts),
        )
    return cast(dict[str, Any], _STATE.dump_python(state, mode="json", warnings=False))


def from_json(data: object) -> PersistedState:
    """Strictly rebuild a state; raises :class:`SchemaError` naming the offending keys."""
    try:
        return _STATE.validate_python(data)
    except ValidationError as exc:
        raise SchemaError(_describe(exc)) from None  # the cause would quote the values


def _describe(exc: ValidationError) -> str:
    """The first few problems by key path (a wrong version first), without their values."""
    errors = sorted(
        exc.errors(include_url=False, include_context=False, include_input=False),
        key=lambda e: e["loc"][:1] != ("version",),
    )
    parts = []
    for e in errors[:_MAX_ERRORS]:
        msg = _JSON_WORDS.get(e["type"], e["msg"].removeprefix("Value error, "))
        parts.append(f"{_path(e['loc'])}: {msg}" if e["loc"] else msg)
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return printable("; ".join(parts), 600)


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{_short(part, repr_=False)}"
    return text.removeprefix(".")


def _short(value: object, *, repr_: bool = True) -> str:
    if isinstance(value, int) and abs(value) >= 10**30:
        return "a huge integer"
    text = repr(value) if repr_ else str(value)
    return text if len(text) <= 60 else text[:59] + "…"
