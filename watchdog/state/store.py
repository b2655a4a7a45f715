"""Persisted state on disk: ``<state_dir>/state.json``, read back whole or set aside (adapter).

Owns the file: reading it (a regular file, at most ``MAX_STATE_BYTES``, valid JSON of the
schema in :mod:`watchdog.state.schema`), setting a bad one aside, and saving through
:func:`watchdog.state.atomic_file.write_atomic`, so that after a crash (or a ``kill -9``) the file
is either the old or the new version, never a mix. The policy decides, this module only
remembers, so that the cycle budget, latches and pauses survive a daemon restart.
:meth:`Store.record_intent` returns only after the intent is on disk, which is why it is
called *before* the plug is switched off: on start-up the daemon finds the intent and
finishes the cycle.

What is *not* here: locking. Writers are serialised by :func:`watchdog.state.locks.state_lock`
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.core.errors import StoreError
from watchdog.edge.bounded import FileRefused, read_regular_file
from watchdog.state import atomic_file
from watchdog.state.schema import (
    MAX_NUMBER,
    SCHEMA_VERSION,
    CycleIntent,
    IntentStep,
    NodeRecord,
    PersistedState,
    SchemaError,
    from_json,
    to_json,
)

__all__ = [
    "MAX_NUMBER",
    "MAX_STATE_BYTES",
    "SCHEMA_VERSION",
    "STATE_FILE",
    "CycleIntent",
    "IntentStep",
    "LoadResult",
    "NodeRecord",
    "PersistedState",
    "SchemaError",
    "StateUnreadable",
    "Store",
    "from_json",
    "to_json",
]

STATE_FILE = "state.json"
MAX_STATE_BYTES = 16 * 1024 * 1024  # a fleet's state is a few hundred KB at 1000 nodes
_STALE_TMP_AGE = 600.0  # a writer never takes this long; older temp files are crash leftovers


@dataclass(frozen=True)
class LoadResult:
    state: PersistedState
    problem: str | None = None
    moved_to: Path | None = None


class StateUnreadable(StoreError):
    """The state file exists but cannot be read fully and validly; it is left untouched."""


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
