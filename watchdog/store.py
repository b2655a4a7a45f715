"""Persisted state: per-node records, half-done power cycles and the fleet budget (adapter).

Owns ``<state_dir>/state.json``: its schema, its (de)serialisation and crash-safe writing.
Values are frozen dataclasses holding plain values; the policy decides, this module only
remembers, so that the cycle budget, latches and pauses survive a daemon restart (design §3).

Crash safety: :meth:`Store.save` writes a temporary file in the same directory, fsyncs it,
``os.replace``-s it over ``state.json`` and fsyncs the directory, so after a crash (or a
``kill -9``) the file is either the old or the new version, never a mix. :meth:`record_intent`
returns only after the intent is on disk, which is why it is called *before* the plug is
switched off: on start-up the daemon finds the intent and finishes the cycle.

What is *not* here: locking. Writers are serialised by :func:`watchdog.control.state_lock`
(the daemon's saves and the CLI's direct edits); this module never imports that one because
adapters do not import each other.

Decisions:
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
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from watchdog.bounded import FileRefused, read_regular_file
from watchdog.errors import StoreError

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
_TMP_PREFIX = ".state.json."
_TMP_SUFFIX = ".tmp"
# Bounds on what a state file may hold: a fleet's state is a few KB; a timestamp or a count
# beyond 1e12 (the year 33658) is damage, not data.
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_NUMBER = 1e12
_STALE_TMP_AGE = 600.0  # a writer never takes this long; older temp files are crash leftovers


class IntentStep(StrEnum):
    """How far a power cycle got; recorded before each step is attempted."""

    OFF_REQUESTED = "off_requested"
    OFF = "off"
    ON_REQUESTED = "on_requested"


@dataclass(frozen=True)
class CycleIntent:
    node: str
    started_at: float
    step: IntentStep
    manual: bool = False


@dataclass(frozen=True)
class NodeRecord:
    node_class: str = "unknown"
    since: float = 0.0
    consecutive_failures: int = 0
    failing_since: float | None = None
    seen_healthy: bool = False
    cycles: tuple[float, ...] = ()  # unix start times of power cycles (budget survives restarts)
    latched: bool = False
    latched_reason: str = ""
    latched_at: float | None = None
    paused: bool = False
    paused_until: float | None = None  # paused with until None = indefinitely
    last_failure: str = ""
    last_detail: str = ""
    last_cycle_at: float | None = None
    boot_started_at: float | None = None
    open_alerts: tuple[str, ...] = ()  # alert conditions paged and not yet resolved


@dataclass(frozen=True)
class PersistedState:
    version: int = SCHEMA_VERSION
    saved_at: float = 0.0
    nodes: Mapping[str, NodeRecord] = field(default_factory=dict)
    intents: Mapping[str, CycleIntent] = field(default_factory=dict)
    fleet_cycles: tuple[tuple[str, float], ...] = ()
    # Pages open about a cluster's endpoint, and fleet-level pages (blind, overloaded).
    cluster_alerts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fleet_alerts: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadResult:
    state: PersistedState
    problem: str | None = None
    moved_to: Path | None = None


_T = TypeVar("_T", NodeRecord, CycleIntent)


class StateUnreadable(StoreError):
    """The state file exists but cannot be read fully and validly; it is left untouched."""


class SchemaError(StoreError):
    """The file parsed as JSON but is not a state of the schema this build understands."""


# --- JSON mapping --------------------------------------------------------------------------


def to_json(state: PersistedState) -> dict[str, Any]:
    """The JSON-ready form of ``state`` (dicts, lists and scalars only)."""
    return {
        "version": state.version,
        "saved_at": state.saved_at,
        "nodes": {name: _plain(rec) for name, rec in state.nodes.items()},
        "intents": {name: _plain(intent) for name, intent in state.intents.items()},
        "fleet_cycles": [[node, at] for node, at in state.fleet_cycles],
        "cluster_alerts": {name: list(conds) for name, conds in state.cluster_alerts.items()},
        "fleet_alerts": list(state.fleet_alerts),
    }


def _plain(value: NodeRecord | CycleIntent) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, StrEnum) else v
        for k, v in dataclasses.asdict(value).items()
    }


def from_json(data: object) -> PersistedState:
    """Strictly rebuild a state; raises :class:`SchemaError` naming the offending key."""
    top = _obj(
        data,
        "state",
        {
            "version",
            "saved_at",
            "nodes",
            "intents",
            "fleet_cycles",
            "cluster_alerts",
            "fleet_alerts",
        },
    )
    if (version := top.get("version")) != SCHEMA_VERSION:
        raise SchemaError(f"schema version {version!r} is not {SCHEMA_VERSION}")
    nodes = {
        name: _build(NodeRecord, raw, f"nodes.{name}")
        for name, raw in _obj(top.get("nodes", {}), "nodes").items()
    }
    intents = {
        name: _build(CycleIntent, raw, f"intents.{name}")
        for name, raw in _obj(top.get("intents", {}), "intents").items()
    }
    for name, intent in intents.items():
        if intent.node != name:
            raise SchemaError(f"intents.{name}.node: is {intent.node!r}, expected {name!r}")
    fleet = []
    for i, pair in enumerate(_list(top.get("fleet_cycles", []), "fleet_cycles")):
        where = f"fleet_cycles[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise SchemaError(f"{where}: expected [node, time]")
        fleet.append((_str(pair[0], where), _float(pair[1], where)))
    cluster_alerts = {
        name: tuple(_str(c, f"cluster_alerts.{name}") for c in _list(raw, f"cluster_alerts.{name}"))
        for name, raw in _obj(top.get("cluster_alerts", {}), "cluster_alerts").items()
    }
    return PersistedState(
        saved_at=_float(top.get("saved_at", 0.0), "saved_at"),
        nodes=nodes,
        intents=intents,
        fleet_cycles=tuple(fleet),
        cluster_alerts=cluster_alerts,
        fleet_alerts=tuple(
            _str(c, "fleet_alerts") for c in _list(top.get("fleet_alerts", []), "fleet_alerts")
        ),
    )


def _build(cls: type[_T], raw: object, where: str) -> _T:
    parsers = _FIELD_PARSERS[cls]
    obj = _obj(raw, where, set(parsers))
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    if missing := required - set(obj):
        raise SchemaError(f"{where}: missing keys {sorted(missing)}")
    return cls(**{k: parsers[k](v, f"{where}.{k}") for k, v in obj.items()})


def _obj(value: object, where: str, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected an object, got {type(value).__name__}")
    if allowed is not None and (unknown := set(value) - allowed):
        raise SchemaError(f"{where}: unknown keys {sorted(unknown)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{where}: expected a string, got {value!r}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{where}: expected true/false, got {value!r}")
    return value


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{where}: expected an integer, got {_short(value)}")
    if abs(value) > MAX_NUMBER:
        raise SchemaError(f"{where}: {_short(value)} is out of range (at most {MAX_NUMBER:g})")
    return value


def _float(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"{where}: expected a number, got {_short(value)}")
    # Checked before float(): a 400-digit integer would overflow it.
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError(f"{where}: {value!r} is not a finite number")
    if abs(value) > MAX_NUMBER:
        raise SchemaError(f"{where}: {_short(value)} is out of range (at most {MAX_NUMBER:g})")
    return float(value)


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return text if len(text) <= 60 else text[:59] + "…"


def _step(value: object, where: str) -> IntentStep:
    try:
        return IntentStep(_str(value, where))
    except ValueError as exc:
        raise SchemaError(f"{where}: unknown step {value!r}") from exc


# Parsers keyed by field annotation (a string under PEP 563): a field of a new type fails at
# import time here instead of silently escaping validation.
_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "str": _str,
    "bool": _bool,
    "int": _int,
    "float": _float,
    "float | None": lambda v, at: None if v is None else _float(v, at),
    "tuple[float, ...]": lambda v, at: tuple(_float(x, at) for x in _list(v, at)),
    "tuple[str, ...]": lambda v, at: tuple(_str(x, at) for x in _list(v, at)),
    "IntentStep": _step,
}
_FIELD_PARSERS = {
    cls: {f.name: _PARSERS[str(f.type)] for f in dataclasses.fields(cls)}
    for cls in (NodeRecord, CycleIntent)
}


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
        tmp: str | None = None
        try:
            text = json.dumps(to_json(state), indent=2, sort_keys=True, allow_nan=False) + "\n"
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=self.directory)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o600)
                _adopt(out.fileno(), self.directory)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).replace(self.path)
            tmp = None
            _fsync_directory(self.directory)
        except (OSError, ValueError, TypeError) as exc:
            raise StoreError(f"cannot save state to {self.path}: {exc}") from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    Path(tmp).unlink()

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
            _fsync_directory(self.directory)
        except OSError as exc:
            raise StoreError(f"cannot move bad state file {self.path} aside: {exc}") from exc
        return target

    def _remove_stale_temp_files(self) -> None:
        # Only old ones: a young temp file may belong to a writer saving right now.
        cutoff = time.time() - _STALE_TMP_AGE
        with contextlib.suppress(OSError):
            for leftover in self.directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (the directory entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _adopt(fd: int, directory: Path) -> None:
    """Give a file written by root (e.g. the CLI) to the directory's owner.

    Under systemd ``DynamicUser`` the daemon runs as an unprivileged uid; a root-owned 0600
    state file would be unreadable to it and get moved aside, resetting every budget.
    """
    if os.geteuid() != 0:
        return
    st = directory.stat()
    if st.st_uid != 0 or st.st_gid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)
