"""Coalesced saves of the fleet state (orchestration layer).

Owns the persisted records and when they are written: after each decision the records of the
nodes it touched are checked for a durable change; a durable change is written at once when
asked (what an operator was told is done), when the last write is old enough or when the
engine stops, else a moment later, so a burst of changes is one write. A record that changed
only in what is not durable (a failure streak, a reason) is rebuilt when the next write or
power intent needs it, not after each probe result; a passing probe of a settled node touches
no record at all. Power intents are written (fsync'd) at once, through the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from watchdog.core.evidence import FleetState
from watchdog.engine.context import Context
from watchdog.state.persist import durable_change, durable_differs, to_persisted
from watchdog.state.store import CycleIntent, PersistedState, Store

_WRITE_EVERY = 5.0  # durable changes are written at most this often (intents at once)


class Saves:
    """The persisted state of one engine, kept in step with its fleet state."""

    def __init__(self, store: Store, ctx: Context, state: Callable[[], FleetState]) -> None:
        self.store = store
        self._ctx = ctx
        self._state = state
        self.persisted = PersistedState()
        self._unsaved: set[str] | None = None  # records to check; None: all
        self._lagging: set[str] = set()  # records behind the fleet in fields not durable
        self._written_at = 0.0
        self._write_pending = False
        self._write_later: asyncio.TimerHandle | None = None

    def track(self, only: Collection[str] | None) -> None:
        """Keep the records to persist in step with the fleet: ``only`` the nodes a decision
        evaluated (None: maybe all)."""
        if only is None:
            self._unsaved = None
        elif self._unsaved is not None:
            self._unsaved.update(only)

    def snapshot(self) -> PersistedState:
        only = self._unsaved
        names = None if only is None else {*only, *self._lagging}
        return to_persisted(self._state(), self.persisted, names)

    def record_intent(self, intent: CycleIntent) -> None:
        """Write (and fsync) a power intent before the plug is touched."""
        self.persisted = self.store.record_intent(self.snapshot(), intent)

    def clear_intent(self, node: str) -> None:
        self.persisted = self.store.clear_intent(self.snapshot(), node)

    def save(self, *, now: bool = False) -> None:
        """Rebuild the records whose durable fields changed; write if one did — at once with
        ``now`` (and when the last write is old enough), else a moment later, so a burst of
        changes is one write."""
        state = self._state()
        only = self._unsaved
        if only is None:
            snap = to_persisted(state, self.persisted)
            if durable_change(self.persisted, snap):
                self._write_pending = True
            self.persisted = snap
            self._lagging.clear()
        elif only or self.persisted.fleet_cycles != state.fleet_cycles:
            if durable_differs(state, self.persisted, only):
                self._write_pending = True
                self._rebuild(state, only)
            else:
                self._lagging.update(only)  # rebuilt for the next write
        self._unsaved = set()
        if not self._write_pending:
            return
        wait = self._written_at + _WRITE_EVERY - time.monotonic()
        if now or wait <= 0 or self._ctx.stopping:
            if self._write_later is not None:
                self._write_later.cancel()
                self._write_later = None
            if self._lagging:
                self._rebuild(state, ())
            self.store.save(self.persisted)
            self._write_pending = False
            self._written_at = time.monotonic()
        elif self._write_later is None:
            self._write_later = asyncio.get_running_loop().call_later(wait, self._flush)

    def _rebuild(self, state: FleetState, names: Collection[str]) -> None:
        """Rebuild these records and every lagging one."""
        self.persisted = to_persisted(state, self.persisted, {*names, *self._lagging})
        self._lagging.clear()

    def _flush(self) -> None:
        self._write_later = None
        self.save(now=True)
