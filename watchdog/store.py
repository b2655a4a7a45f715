"""Persisted state: per-node records, half-done power cycles and the fleet budget (adapter).

Owns ``<state_dir>/state.json``: its schema (the dataclasses below, validated by pydantic)
and reading it back. Values are frozen dataclasses holding plain values; the policy decides,
this module only remembers, so that the cycle budget, latches and pauses survive a daemon
restart. Writing is :func:`watchdog.atomic_file.write_atomic`'s: after a crash (or a
``kill -9``) the file is either the old or the new version, never a mix.
:meth:`Store.record_intent` returns only after the intent is on disk, which is why it is
called *before* the plug is switched off: on start-up the daemon finds the intent and
finishes the cycle.

What is *not* here: locking. Writers are serialised by :func:`watchdog.control.state_lock`
(the daemon's saves and the CLI's direct edits); this module never imports that one because
adapters do not import each other.

Decisions:
- The schema is strict: no unknown key, no ``"3"`` for 3 nor ``1`` for true, every number
  finite and within ``MAX_NUMBER``. An error names the key path, never the offending value.
- A corrupt, unreadable or wrong-schema file is moved aside to ``state.json.corrupt-<unix>``
  (kept for a human) and an empty state is returned with ``problem`` set; the caller must
  alert, because budgets and latches were reset.
- Records of nodes that are no longer configured are kept, never pruned here: a config typo
  that drops a node for one reload must not reset its budget or un-latch it. ``status`` can
  show them as unconfigured; an operator ``clear`` removes a latch.
- ``save`` writes the value exactly as given (what you save is what you load);
  ``record_intent``/``clear_intent`` stamp ``saved_at`` with the store's clock because they
  build the new value themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
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

from watchdog import atomic_file
from watchdog.bounded import FileRefused, printable, read_regular_file
from watchdog.errors import StoreError

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
# Bounds on what a state file may hold: a fleet's state is a few KB; a timestamp or a count
# beyond 1e12 (the year 33658) is damage, not data.
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_NUMBER = 1e12
_STALE_TMP_AGE = 600.0  # a writer never takes this long; older temp files are crash leftovers


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


@dataclass(frozen=True)
class LoadResult:
    state: PersistedState
    problem: str | None = None
    moved_to: Path | None = None


class StateUnreadable(StoreError):
    """The state file exists but cannot be read fully and validly; it is left untouched."""


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
            raise ValueError(f"{where}: is {_short(intent.node)}, expected {_short(name)}")
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


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a valid number")


# --- the store -----------------------------------------------------------------------------


class Store:
    """``state.json`` in one directory; every write is atomic and fsync'd."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self._clock = clock
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create state directory {self.directory}: {exc}") from exc

    def read(self) -> PersistedState | None:
        """The state on disk, fully and validly read; ``None`` if there is none yet.

        Raises :class:`StateUnreadable` (the file is left as it is) for a file that is not a
        regular file, is over ``MAX_STATE_BYTES``, is not JSON or does not match the schema
        (non-finite or out-of-range numbers included). The CLI's offline edits use this and
        refuse; only :meth:`load` (the daemon) moves such a file aside.
        """
        if not self.directory.is_dir():
            raise StoreError(f"state directory {self.directory} is missing or not a directory")
        try:
            if not self.path.exists() and not self.path.is_symlink():
                return None
        except OSError as exc:
            raise StoreError(f"cannot use state directory {self.directory}: {exc}") from exc
        try:
            raw = read_regular_file(self.path, MAX_STATE_BYTES)
            return from_json(json.loads(raw.decode("utf-8"), parse_constant=_no_constants))
        except SchemaError as exc:
            why = f"it does not match this version's schema ({exc})"
        except FileNotFoundError:
            return None  # removed since we looked
        except FileRefused as exc:
            why = str(exc)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # ValueError covers json.JSONDecodeError and integers over Python's digit limit.
            why = f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"
        raise StateUnreadable(f"state file {self.path} is unreadable: {why}")

    def load(self) -> LoadResult:
        """Read the state; a bad file is moved aside and reported, never raised."""
        if self.directory.is_dir():
            self._remove_stale_temp_files()
        try:
            state = self.read()
        except StateUnreadable as exc:
            problem = str(exc)
        else:
            return LoadResult(state or PersistedState())
        moved = self._move_aside()
        problem = (
            f"{problem}; moved aside to {moved}. Starting with an empty "
            "state: power-cycle budgets, latches and pauses were reset."
        )
        return LoadResult(PersistedState(), problem=problem, moved_to=moved)

    def save(self, state: PersistedState) -> None:
        """Atomically replace ``state.json`` with ``state`` (file mode 0600)."""
        try:
            text = json.dumps(to_json(state), indent=2, sort_keys=True, allow_nan=False) + "\n"
            atomic_file.write_atomic(self.path, text.encode("utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot save state to {self.path}: {exc}") from exc

    def record_intent(self, state: PersistedState, intent: CycleIntent) -> PersistedState:
        """``state`` plus ``intent``, already on disk when this returns."""
        new = dataclasses.replace(
            state, saved_at=self._clock(), intents={**state.intents, intent.node: intent}
        )
        self.save(new)
        return new

    def clear_intent(self, state: PersistedState, node: str) -> PersistedState:
        """``state`` without ``node``'s intent, already on disk when this returns."""
        intents = {name: i for name, i in state.intents.items() if name != node}
        new = dataclasses.replace(state, saved_at=self._clock(), intents=intents)
        self.save(new)
        return new

    def _move_aside(self) -> Path:
        stamp = int(self._clock())
        target = self.directory / f"{STATE_FILE}.corrupt-{stamp}"
        n = 0
        while target.exists() or target.is_symlink():
            n += 1
            target = self.directory / f"{STATE_FILE}.corrupt-{stamp}-{n}"
        try:
            self.path.rename(target)
            atomic_file.fsync_directory(self.directory)
        except OSError as exc:
            raise StoreError(f"cannot move bad state file {self.path} aside: {exc}") from exc
        return target

    def _remove_stale_temp_files(self) -> None:
        # Only old ones: a young temp file may belong to a writer saving right now.
        cutoff = time.time() - _STALE_TMP_AGE
        with contextlib.suppress(OSError):
            pattern = f"{atomic_file.temp_prefix(self.path)}*{atomic_file.TMP_SUFFIX}"
            for leftover in self.directory.glob(pattern):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()
