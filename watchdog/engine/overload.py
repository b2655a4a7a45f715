"""Whether the watchdog itself keeps up: event-loop lag, measured (orchestration layer).

A probe's deadline is the node's budget. Time the watchdog's own event loop spent elsewhere
while the probe waited is not the node's failure: :class:`LoopMonitor` stamps a timer every
``period`` seconds and records how late it fired. The engine asks :meth:`LoopMonitor.lag_since`
whether a failed probe lost a large part of its budget to us (the result is then dropped), and
:meth:`LoopMonitor.reason` whether the watchdog is overloaded — then it pages once
(``watchdog_overloaded``) and judges no node on failing evidence until it has been calm for
``calm`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class LoopMonitor:
    """Measures how late the event loop runs a periodic timer."""

    def __init__(
        self,
        *,
        period: float = 0.5,
        enter: float = 2.0,
        calm: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period = period
        self.enter = enter  # lag that means "we cannot keep up"
        self.calm = calm  # how long without such lag before it is over
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=int(2 * calm / period) + 4)
        self._due = clock()
        self._handle: asyncio.TimerHandle | None = None
        self._bad_at: float | None = None
        self._worst = 0.0

    def start(self) -> None:
        self._due = self.clock() + self.period
        self._handle = asyncio.get_running_loop().call_later(self.period, self._beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        now = self.clock()
        self._note(now, max(0.0, now - self._due))
        self._due = now + self.period
        self._handle = asyncio.get_running_loop().call_later(self.period, self._beat)

    def _note(self, now: float, lag: float) -> None:
        self._samples.append((now, lag))
        if lag >= self.enter:
            if self._bad_at is None or now - self._bad_at >= self.calm:
                self._worst = 0.0
            self._bad_at = now
            self._worst = max(self._worst, lag)

    def pending(self) -> float:
        """How late the next beat already is (the loop may be busy right now)."""
        return max(0.0, self.clock() - self._due) if self._handle is not None else 0.0

    def lag_since(self, t: float) -> float:
        """The worst lag seen from monotonic time ``t`` until now."""
        worst = self.pending()
        for at, lag in reversed(self._samples):
            if at < t:
                break
            worst = max(worst, lag)
        return worst

    def reason(self) -> str | None:
        """Why the watchdog cannot keep up right now, or None."""
        now = self.clock()
        pending = self.pending()
        if pending >= self.enter:
            self._note(now, pending)
        if self._bad_at is None or now - self._bad_at >= self.calm:
            return None
        return (
            f"the watchdog is overloaded: its event loop ran up to {self._worst:.1f}s late "
            f"(in the last {self.calm:.0f}s)"
        )
