"""The jobs: their schedule and what each probe job does (orchestration layer).

Owns the scheduler and what each probe job does with its result: the sshd, ping, plug,
endpoint and witness probes hand it to the fleet keeper; the tick job takes operator
requests, lets the alert channels retry, and runs the time-driven evaluation.

Timing (:mod:`watchdog.engine.periodic`): every periodic job fires at a fixed period from its
own phase — the phases spread evenly over the first interval (at most a minute), so a
thousand nodes do not start at once and no per-fire jitter accumulates. Phases fall on the
scheduler's grid (half a second), so the jobs due together share one wake-up of the loop.
One banner probe per node at a time: a periodic probe that finds one in flight lets it serve
(the confirmations, :mod:`watchdog.engine.bursts`, wait for it instead). One tool call per
cluster at a time. A job that raises is logged and runs again at its next interval; a stop
cancels it quietly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from watchdog.config import Cluster, Node
from watchdog.core.evidence import observe_link, observe_plug, observe_witness
from watchdog.core.model import EventType, ProbeKind, Severity
from watchdog.engine.context import Context
from watchdog.engine.fleet import Fleet
from watchdog.engine.inbox import Inbox
from watchdog.engine.periodic import Periodic, on_grid
from watchdog.engine.power import PowerRunner
from watchdog.engine.suite import ProbeSuite
from watchdog.engine.versions import VersionWatch
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")

_SPREAD_CAP = 60.0  # first runs of long-interval jobs spread over at most this long
_UNLOCKED = asyncio.Lock()  # stands for a node no banner probe has locked yet

Job = Callable[..., Awaitable[None]]


class Jobs:
    """The scheduled probe jobs of one engine, and the jobs run at once outside it."""

    def __init__(
        self,
        ctx: Context,
        suite: ProbeSuite,
        fleet: Fleet,
        power: PowerRunner,
        inbox: Inbox,
    ) -> None:
        self._ctx = ctx
        self._suite = suite
        self._fleet = fleet
        self._power = power
        self._inbox = inbox
        self.timers = Periodic()
        self.versions = VersionWatch()
        self.last_tick = ctx.clock()
        self._tool_calls: set[str] = set()  # clusters whose tool call is under way
        self._now_tasks: set[asyncio.Task[None]] = set()  # proofs and sweeps started at once
        self._ssh_locks: dict[str, asyncio.Lock] = {}
        # Lookups for the jobs, rebuilt with every config (a scan per probe would be O(N)).
        self._by_node: dict[str, tuple[Cluster, Node]] = {}
        self._by_cluster: dict[str, Cluster] = {}

    # ------------------------------------------------------------------ wiring
    def schedule(self) -> None:
        """(Re)build every job for the config in force."""
        cfg = self._ctx.cfg
        now = asyncio.get_running_loop().time()
        self.timers.remove_all()
        self._by_node = {n.name: (c, n) for c, n in cfg.nodes()}
        self._by_cluster = {c.name: c for c in cfg.clusters}
        jobs: dict[str, list[tuple[str, float, Job, tuple[object, ...]]]] = {}

        def add(kind: str, job_id: str, interval: float, func: Job, *a: object) -> None:
            jobs.setdefault(kind, []).append((job_id, interval, func, a))

        for _, node in cfg.nodes():
            if node.ssh.enabled:
                add("ssh", f"ssh:{node.name}", node.ssh.interval, self.job_ssh, node.name)
            if node.ping.enabled:
                add("ping", f"ping:{node.name}", node.ping.interval, self.job_ping, node.name)
            add("plug", f"plug:{node.name}", node.plug.validate_interval, self.job_plug, node.name)
        for cluster in cfg.clusters:
            for kind, interval in self._suite.endpoint_jobs(cluster):
                job_id = f"{kind}:{cluster.name}"
                add(str(kind), job_id, interval, self.job_endpoint, cluster.name, kind)
        if cfg.watchdog.witnesses:
            interval = min(n.ssh.interval for _, n in cfg.nodes())
            add("witness", "witness", interval, self.job_witness)
        # Each kind's jobs start evenly spread over its first interval (at most _SPREAD_CAP):
        # job i of n first fires at i/n of it, then every interval from there, without drift.
        # First fires fall on a common grid, so jobs due together share one loop wake-up.
        base = on_grid(now)
        for group in jobs.values():
            for i, (job_id, interval, func, a) in enumerate(group):
                phase = on_grid(min(interval, _SPREAD_CAP) * i / len(group), up=False)
                self.timers.add(job_id, interval, self.guarded, func, *a, first=base + phase)
        tick = max(0.2, min(1.0, cfg.policy.confirm_interval / 2))
        self.timers.add("tick", tick, self.guarded, self.job_tick, first=base)

    def start(self) -> None:
        self.timers.start()

    def stop(self) -> None:
        """Stop every periodic job, cancel the runs in flight and the jobs started at once."""
        self.timers.stop()
        for task in list(self._now_tasks):
            task.cancel()

    async def guarded(self, func: Job, *args: object) -> None:
        """Run one job: a stop cancels it quietly; a bug is logged and probing goes on."""
        try:
            await func(*args)
        except asyncio.CancelledError:
            if not self._ctx.stopping:
                raise
        except Exception:
            log.exception(
                "job %s%s failed; it runs again at its next interval",
                getattr(func, "__name__", func),
                args,
            )

    def now(self, name: str, func: Job, *args: object) -> None:
        """Run a probe job at once, outside the schedule (guarded like a scheduled one)."""
        task = asyncio.create_task(self.guarded(func, *args), name=name)
        self._now_tasks.add(task)
        task.add_done_callback(self._now_tasks.discard)

    # ------------------------------------------------------------------ lookups
    def node(self, name: str) -> tuple[Cluster, Node] | None:
        return self._by_node.get(name)  # None: removed by a reload while the job was queued

    def ssh_lock(self, name: str) -> asyncio.Lock:
        """The lock that keeps one banner probe per node at a time."""
        return self._ssh_locks.setdefault(name, asyncio.Lock())

    def ssh_busy(self, name: str) -> bool:
        return self._ssh_locks.get(name, _UNLOCKED).locked()

    def calling_tool(self, cluster: str) -> bool:
        """A tool call to ``cluster`` is under way (a proof or the scheduled one)."""
        return cluster in self._tool_calls

    # ------------------------------------------------------------------ probe jobs
    async def job_ssh(self, name: str) -> None:
        if (found := self.node(name)) is None:
            return
        lock = self.ssh_lock(name)
        if lock.locked():
            return  # a confirmation probes this node right now: its result serves
        async with lock:
            started = time.monotonic()
            result = await self._suite.ssh(found[1])
        self._fleet.observed(result, node=name, started=started, budget=found[1].ssh.timeout)

    async def job_ping(self, name: str) -> None:
        if (found := self.node(name)) is not None:
            started = time.monotonic()
            result = await self._suite.ping(found[1])
            self._fleet.observed(result, node=name, started=started, budget=found[1].ping.timeout)

    async def job_plug(self, name: str) -> None:
        await self.read_plug(name)
        self._fleet.evaluate({name})

    async def read_plug(self, name: str) -> None:
        """Read one plug and fold the reading in, stamped with when the read began."""
        plug = self._ctx.plugs.get(name)
        if plug is None or self._power.driving(name):
            return  # never talk to a plug the power procedure is driving
        started = self._ctx.clock()
        reading = await plug.read()
        if name not in self._fleet.state.nodes:
            return  # removed by a reload meanwhile
        if not reading.reachable:
            cluster = self._fleet.state.node(name).cluster
            log_event(
                log,
                EventType.PLUG_PROBLEM,
                f"plug of {name} unusable: {reading.detail}",
                severity=Severity.WARNING,
                node=name,
                cluster=cluster,
                probe=ProbeKind.PLUG,
                failure=reading.failure,
            )
        self._fleet.state = observe_plug(
            self._fleet.state, name, reading, self._ctx.clock(), started
        )

    async def job_endpoint(self, cluster: str, kind: ProbeKind) -> None:
        found = self._by_cluster.get(cluster)
        if found is None:
            return
        if kind is ProbeKind.TOOL_CALL:
            if cluster in self._tool_calls:
                return  # one is under way (a proof or the scheduled one): its answer will do
            self._tool_calls.add(cluster)
        started = time.monotonic()
        try:
            results = await self._suite.endpoint(found, kind)
        finally:
            if kind is ProbeKind.TOOL_CALL:
                self._tool_calls.discard(cluster)
        budget = {
            ProbeKind.HEALTH: found.endpoint.health.timeout,
            ProbeKind.MODELS: found.endpoint.models.timeout,
            ProbeKind.PROGRESS: found.endpoint.progress.timeout,
        }.get(kind, found.endpoint.tool_call.timeout)
        for result in results:
            if (changed := self.versions.note(cluster, result)) is not None:
                log.info(changed)
            self._fleet.observed(
                result, cluster=cluster, evaluate=False, started=started, budget=budget
            )
        self._fleet.evaluate(self._fleet.members_of(cluster))

    async def job_witness(self) -> None:
        results = await asyncio.gather(
            *(self._suite.witness(w) for w in self._ctx.cfg.watchdog.witnesses)
        )
        # One answering reference target proves the watchdog's network works.
        best = next((r for r in results if r.ok), results[0])
        if not best.ok:
            log_event(
                log,
                EventType.PROBE_FAILED,
                f"witness: {best.detail}",
                severity=Severity.WARNING,
                probe=ProbeKind.WITNESS,
                failure=best.failure,
            )
        self._fleet.state = observe_witness(self._fleet.state, best, self._ctx.clock())
        self._fleet.evaluate(())  # a fleet-wide fact: the outlook says what it changes

    async def job_tick(self) -> None:
        now = self.last_tick = self._ctx.clock()
        link = self._suite.link_up()
        if link is not None and link != self._fleet.state.link_up:
            self._fleet.state = observe_link(self._fleet.state, link)
        before = self._fleet.state
        self._inbox.take_requests()
        self._ctx.alerts.tick()
        self._fleet.ticked(now, changed=self._fleet.state is not before)
