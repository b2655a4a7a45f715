"""What every part of the engine reads and a reload or a stop may change (orchestration layer).

One :class:`Context` is shared by the fleet keeper, the power runner, the jobs, the bursts and
the operator inbox: the config and the plug drivers (a reload replaces them), the alert sink
(a reload may build new channels), the clock, the state directory, the narration hook and the
stopping flag. Each part holds a reference to it, so a change is seen by all at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.config import Config
from watchdog.core.model import AlertEvent
from watchdog.plugs.base import Plug


class AlertSink(Protocol):
    def submit(self, event: AlertEvent) -> None: ...
    def tick(self) -> None: ...


@dataclass
class Context:
    """The engine's shared settings; mutated only by :class:`watchdog.engine.engine.Engine`."""

    cfg: Config
    plugs: dict[str, Plug]
    alerts: AlertSink
    state_dir: Path
    clock: Callable[[], float]
    on_event: Callable[[str], None] | None = None
    stopping: bool = False

    def narrate(self, text: str) -> None:
        """Tell the demo's narrator (if any) what happened."""
        if self.on_event is not None:
            self.on_event(text)
