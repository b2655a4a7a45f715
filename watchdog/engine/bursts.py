"""Bursts: what a decision asks to run at once (orchestration layer).

Owns the confirmation bursts, the plug sweep and the serving proofs. A confirmation re-probes
a node's sshd and re-reads its plug ``confirm_interval`` after it is asked for; one asked for
while one runs runs after it — never dropped, never beside it — and a banner probe already in
flight is waited for, not skipped. A sweep answers "two or more nodes fail on ssh at once:
blind, or real wedges?": first a banner from a few nodes that answered before (the sight
check), and only if that does not settle it every plug read at once; at most one per confirm
interval. A proof is a tool call at once, unless one is under way.
"""

from __future__ import annotations

import asyncio
import heapq
import time

from watchdog.core.evidence import observe_sweep
from watchdog.core.model import ProbeKind
from watchdog.engine.context import Context
from watchdog.engine.fleet import Fleet
from watchdog.engine.jobs import Jobs
from watchdog.engine.power import PowerRunner
from watchdog.engine.suite import ProbeSuite

_SIGHT_PROBES = 3  # nodes whose sshd is probed before a plug sweep, to prove sight


class Bursts:
    """Confirmation bursts, plug sweeps and proofs of one engine."""

    def __init__(
        self, ctx: Context, suite: ProbeSuite, fleet: Fleet, jobs: Jobs, power: PowerRunner
    ) -> None:
        self._ctx = ctx
        self._suite = suite
        self._fleet = fleet
        self._jobs = jobs
        self._power = power
        self._confirm_timers: dict[str, asyncio.TimerHandle] = {}
        self._confirm_tasks: dict[str, asyncio.Task[None]] = {}
        self._confirm_again: set[str] = set()
        self._sweeping = False
        self._swept_at = float("-inf")

    def stop(self) -> None:
        """Cancel every confirmation, pending or running."""
        for timer in self._confirm_timers.values():
            timer.cancel()
        for task in self._confirm_tasks.values():
            task.cancel()

    # ------------------------------------------------------------------ proofs
    def prove(self, cluster: str) -> None:
        """Ask ``cluster``'s endpoint for a tool call at once, unless one is under way."""
        if not self._jobs.calling_tool(cluster) and not self._ctx.stopping:
            self._jobs.now(
                f"prove:{cluster}", self._jobs.job_endpoint, cluster, ProbeKind.TOOL_CALL
            )

    # ------------------------------------------------------------------ confirmations
    def confirm_soon(self, name: str) -> None:
        """Re-probe ``name`` in confirm_interval; one asked for while one runs runs after it."""
        if self._ctx.stopping or name in self._confirm_timers:
            return
        if name in self._confirm_tasks:
            self._confirm_again.add(name)
            return
        loop = asyncio.get_running_loop()
        self._confirm_timers[name] = loop.call_later(
            self._ctx.cfg.policy.confirm_interval, self.start_confirm, name
        )

    def start_confirm(self, name: str) -> None:
        self._confirm_timers.pop(name, None)
        if self._ctx.stopping:
            return
        task = asyncio.create_task(
            self._jobs.guarded(self.job_confirm, name), name=f"confirm:{name}"
        )
        self._confirm_tasks[name] = task
        task.add_done_callback(lambda _t: self._confirm_done(name))

    def _confirm_done(self, name: str) -> None:
        self._confirm_tasks.pop(name, None)
        if name in self._confirm_again:
            self._confirm_again.discard(name)
            self.confirm_soon(name)

    async def job_confirm(self, name: str) -> None:
        """Confirmation burst: re-probe sshd and re-read the plug before judging."""
        if (found := self._jobs.node(name)) is None:
            return
        # Never talk to a plug the power procedure is driving.
        plug = None if self._power.driving(name) else self._ctx.plugs.get(name)
        # A silent plug takes the driver's retries (~4x its timeout) to give up: the sshd
        # verdict must not wait for it. The power procedure re-reads the plug before acting.
        reading = asyncio.create_task(self._jobs.read_plug(name)) if plug else None
        # After a periodic probe still in flight, never instead of the next one.
        async with self._jobs.ssh_lock(name):
            started = time.monotonic()
            result = await self._suite.ssh(found[1])
        self._fleet.observed(result, node=name, started=started, budget=found[1].ssh.timeout)
        if reading is not None:
            await reading
            self._fleet.evaluate({name})

    # ------------------------------------------------------------------ sweeps
    def sweep(self) -> None:
        """Start a plug sweep, unless one runs or ran within the confirm interval (so a
        plug that cannot be read cannot spin it)."""
        due = self._ctx.clock() - self._swept_at >= self._ctx.cfg.policy.confirm_interval
        if due and not self._sweeping and not self._ctx.stopping:
            self._sweeping = True
            self._jobs.now("sweep", self.job_sweep)

    async def job_sweep(self) -> None:
        """Two or more nodes fail on ssh at once: blind, or real wedges? A banner from a few
        nodes whose sshd answered before settles it (the watchdog sees; the policy then needs
        each suspect's own fresh plug reading only); else every plug is read at once."""
        started = self._ctx.clock()
        try:
            if await self.sight_proven():
                return
            await asyncio.gather(
                *(self._jobs.read_plug(name) for name in list(self._fleet.state.nodes)),
                return_exceptions=True,
            )
            self._fleet.state = observe_sweep(self._fleet.state, started)
        finally:
            self._sweeping = False
            self._swept_at = self._ctx.clock()
        self._fleet.evaluate()

    async def sight_proven(self) -> bool:
        """Probe the sshd of a few nodes that answered last time; True if the policy, given
        their results, no longer asks for a sweep."""
        answered = (
            (st.ssh.ok_at, name)
            for name, st in self._fleet.state.nodes.items()
            if not st.ssh.failing
            and st.ssh.ok_at is not None
            and (found := self._jobs.node(name)) is not None
            and found[1].ssh.enabled
            and not self._jobs.ssh_busy(name)
        )
        picks = [name for _, name in heapq.nlargest(_SIGHT_PROBES, answered)]
        if not picks:
            return False
        await asyncio.gather(*(self._jobs.job_ssh(name) for name in picks), return_exceptions=True)
        return not self._fleet.sweep_still_asked()
