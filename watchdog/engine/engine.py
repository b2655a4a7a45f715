"""The engine: the facade the daemon drives; it composes the parts (orchestration layer).

Each part owns one concern and holds explicit references to the parts it talks to:

- :class:`~watchdog.engine.fleet.Fleet` owns the fleet state and runs observe → evaluate →
  apply (its :class:`~watchdog.engine.saves.Saves` coalesce the writes of durable changes);
- :class:`~watchdog.engine.power.PowerRunner` runs power actions and their intents, and
  finishes half-done cycles at start-up;
- :class:`~watchdog.engine.jobs.Jobs` schedules the periodic jobs and runs the probe jobs;
- :class:`~watchdog.engine.bursts.Bursts` runs what a decision asks for at once:
  confirmation bursts, plug sweeps (after a sight check), serving proofs;
- :class:`~watchdog.engine.inbox.Inbox` takes the operator's requests.

They share one :class:`~watchdog.engine.context.Context` (config, plug drivers, alert sink,
clock, stopping flag), which only this facade changes. When the event loop itself falls
behind (:mod:`watchdog.engine.overload`), failed probes that lost half their budget to us are
dropped, and the watchdog pages once and judges no node until it keeps up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from watchdog.config import Config
from watchdog.core.evidence import FleetState
from watchdog.core.model import NodeClass
from watchdog.engine.bursts import Bursts
from watchdog.engine.context import AlertSink, Context
from watchdog.engine.fleet import Fleet
from watchdog.engine.inbox import Inbox
from watchdog.engine.jobs import Jobs
from watchdog.engine.overload import LoopMonitor
from watchdog.engine.power import PowerRunner
from watchdog.engine.suite import ProbeSuite
from watchdog.plugs.base import Plug
from watchdog.state.store import PersistedState, Store

__all__ = ["AlertSink", "Engine"]

_SUMMARY_ODD = 8  # nodes named in the summary line


class Engine:
    """Runs the probes of one config against the policy; owns the fleet state."""

    def __init__(
        self,
        cfg: Config,
        *,
        suite: ProbeSuite,
        plugs: Mapping[str, Plug],
        alerts: AlertSink,
        store: Store,
        state_dir: Path,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.ctx = Context(cfg, dict(plugs), alerts, state_dir, clock, on_event)
        self.monitor = LoopMonitor()
        self.fleet = Fleet(self.ctx, store, self.monitor)
        self.power = PowerRunner(self.ctx, suite, self.fleet)
        self.inbox = Inbox(self.ctx, self.fleet)
        self.jobs = Jobs(self.ctx, suite, self.fleet, self.power, self.inbox)
        self.bursts = Bursts(self.ctx, suite, self.fleet, self.jobs, self.power)
        self.fleet.wire(self.power, self.bursts)

    # ------------------------------------------------------------------ what the daemon reads
    @property
    def cfg(self) -> Config:
        return self.ctx.cfg

    @property
    def clock(self) -> Callable[[], float]:
        return self.ctx.clock

    @property
    def last_tick(self) -> float:
        return self.jobs.last_tick

    @property
    def state(self) -> FleetState:
        return self.fleet.state

    # ------------------------------------------------------------------ lifecycle
    async def start(self, loaded: PersistedState) -> None:
        self.fleet.start(loaded)
        await self.power.finish_half_done_cycles()
        self.jobs.schedule()
        self.jobs.start()
        self.monitor.start()
        self.fleet.saves.save()

    async def stop(self) -> None:
        """Stop probing; wait for power actions, which never stop between off and on."""
        self.ctx.stopping = True
        self.jobs.stop()
        self.monitor.stop()
        self.bursts.stop()
        await self.power.finish()
        self.fleet.saves.save()

    def reload(self, cfg: Config, plugs: Mapping[str, Plug]) -> None:
        """Adopt a validated new config: keep node histories, reschedule every job."""
        self.ctx.cfg = cfg
        self.ctx.plugs = {**self.ctx.plugs, **plugs}
        self.fleet.reconfigured()
        self.jobs.schedule()
        self.fleet.saves.save()

    async def reconfigure(self, cfg: Config, plugs: Mapping[str, Plug]) -> None:
        """:meth:`reload`, then close the plug drivers ``plugs`` replace — except one a power
        action still drives: it is dropped, unclosed, when that action is done."""
        old = {name: self.ctx.plugs[name] for name in plugs if name in self.ctx.plugs}
        self.reload(cfg, plugs)
        for name, plug in old.items():
            if not self.power_in_flight(name):
                with contextlib.suppress(Exception):
                    await plug.close()

    def replace_alerts(self, alerts: AlertSink) -> None:
        """Submit every alert to ``alerts`` from now on (a reload built new channels)."""
        self.ctx.alerts = alerts

    def cut_short(self) -> None:
        """A forced stop: cancel every power action now rather than wait for it. A cancelled
        cycle still switches its plug back on before it ends (:mod:`watchdog.plugs.cycle`),
        and its intent stays recorded, so the next start finishes it."""
        self.power.cut_short()

    async def aclose(self) -> None:
        """Close every plug driver (after :meth:`stop`)."""
        for plug in self.ctx.plugs.values():
            with contextlib.suppress(Exception):
                await plug.close()

    # ------------------------------------------------------------------ questions
    def ticking(self, within: float) -> bool:
        """The scheduler's tick job ran within the last ``within`` seconds."""
        return self.ctx.clock() - self.jobs.last_tick < within

    def saw_every_node(self) -> bool:
        """Every node has been probed (sshd, where probed, and its plug) since the start."""
        nodes = {n.name: n for _, n in self.ctx.cfg.nodes()}
        return all(
            st.plug_at is not None
            and (st.ssh.last_at is not None or not (n := nodes.get(name)) or not n.ssh.enabled)
            for name, st in self.state.nodes.items()
        )

    def power_in_flight(self, node: str) -> bool:
        return self.power.in_flight(node)

    def summary(self) -> str:
        """One line for STATUS= and the demo: '2/2 nodes healthy, 0 cycles in 6h'."""
        nodes = self.state.nodes.values()
        now = self.ctx.clock()
        healthy = sum(n.cls is NodeClass.HEALTHY for n in nodes)
        window = self.ctx.cfg.policy.cycle_window
        cycles = sum(1 for _, t in self.state.fleet_cycles if now - t < window)
        text = f"{healthy}/{len(nodes)} nodes healthy, {cycles} cycles in {_span(window)}"
        odd = [f"{n.name} {n.cls.value}" for n in nodes if n.cls is not NodeClass.HEALTHY]
        if len(odd) > _SUMMARY_ODD:  # a line for STATUS=, not a report of the whole fleet
            odd[_SUMMARY_ODD:] = [f"{len(odd) - _SUMMARY_ODD} more"]
        return text + (f" ({', '.join(odd)})" if odd else "")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
