"""The engine: APScheduler jobs per node and probe feed the pure policy; actions run as tasks.

Orchestration layer. Each probe job observes, then evaluates what the result can change
(:mod:`watchdog.core.incremental`); every decision is applied in one place (``_apply``):
transitions are logged, alerts submitted, power actions started as their own tasks (never
blocking probing), confirmation bursts scheduled, serving proofs (a tool call at once) and
plug sweeps (every plug read at once) started, state persisted when a durable field changed.

Timing: every periodic job fires at a fixed period from its own phase — the phases spread
evenly over the first interval, so a thousand nodes do not start at once and no per-fire
jitter accumulates. One banner probe per node at a time: a periodic probe that finds one in
flight lets it serve; a confirmation waits for it and then runs, it is never dropped. When the
event loop itself falls behind (:mod:`watchdog.engine.overload`), failed probes that lost half their
budget to us are dropped, and the watchdog pages once and judges no node until it keeps up.
A power action records its intent (fsync'd) before the plug is touched; at start-up any
half-done cycle is finished — the plug switched on — before a single probe runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from watchdog.config import Cluster, Config, Node
from watchdog.core.evidence import (
    FleetState,
    observe_endpoint,
    observe_link,
    observe_node,
    observe_plug,
    observe_sweep,
    observe_witness,
    reconcile,
)
from watchdog.core.incremental import Scope, members_index
from watchdog.core.model import (
    AlertAction,
    AlertEvent,
    EventType,
    FailureKind,
    NodeClass,
    PowerAction,
    ProbeKind,
    ProbeResult,
    Severity,
)
from watchdog.core.policy import Decision
from watchdog.engine.overload import LoopMonitor
from watchdog.engine.power import Actions
from watchdog.engine.suite import ProbeSuite
from watchdog.engine.versions import VersionWatch
from watchdog.plugs.base import Plug
from watchdog.plugs.dryrun import DryRunPlug
from watchdog.state.persist import durable_change, from_persisted, to_persisted
from watchdog.state.store import PersistedState, Store
from watchdog.telemetry import metrics
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")

_SPREAD_CAP = 60.0  # first runs of long-interval jobs spread over at most this long
_FULL_EVERY = 30.0  # a full evaluation now and then, behind the incremental ones
_SUMMARY_ODD = 8  # nodes named in the summary line
_WRITE_EVERY = 5.0  # durable changes are written at most this often (intents at once)
_SIGHT_PROBES = 3  # nodes whose sshd is probed before a plug sweep, to prove sight
_UNLOCKED = asyncio.Lock()  # stands for a node no banner probe has locked yet
# Failures that a deadline produced: if our own loop ate half the budget, they are ours.
_DEADLINE = frozenset(
    {FailureKind.TIMEOUT, FailureKind.CONNECT_TIMEOUT, FailureKind.NO_BANNER, FailureKind.NO_REPLY}
)


class AlertSink(Protocol):
    def submit(self, event: AlertEvent) -> None: ...
    def tick(self) -> None: ...


class Engine(Actions):
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
        self.cfg = cfg
        self.suite = suite
        self.plugs = dict(plugs)
        self.alerts = alerts
        self.store = store
        self.state_dir = state_dir
        self.clock = clock
        self.on_event = on_event
        self.versions = VersionWatch()
        self.fleet: FleetState | None = None
        self.persisted = PersistedState()
        self.last_tick = clock()
        self._power_tasks: dict[str, asyncio.Task[None]] = {}
        self._tool_calls: set[str] = set()  # clusters whose tool call is under way
        self._now_tasks: set[asyncio.Task[None]] = set()  # proofs and sweeps started at once
        self._sweeping = False
        self._swept_at = float("-inf")
        self._stopping = False
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        # Incremental evaluation: time-sensitive nodes, cluster members, last fleet outlook.
        self._index: dict[str, tuple[str, ...]] = {}
        self._by_node: dict[str, tuple[Cluster, Node]] = {}
        self._by_cluster: dict[str, Cluster] = {}
        self._scope = Scope(self._index)
        self._last_full = 0.0
        self._unsaved: set[str] | None = None  # records to rebuild; None: all
        self._written_at = 0.0
        self._write_pending = False
        self._write_later: asyncio.TimerHandle | None = None
        # One banner probe per node at a time; confirmations never dropped.
        self._ssh_locks: dict[str, asyncio.Lock] = {}
        self._confirm_timers: dict[str, asyncio.TimerHandle] = {}
        self._confirm_tasks: dict[str, asyncio.Task[None]] = {}
        self._confirm_again: set[str] = set()
        self.monitor = LoopMonitor()
        self.dropped = 0  # failed probe results dropped because our own loop was late
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, loaded: PersistedState) -> None:
        self.persisted = loaded
        self.fleet = from_persisted(loaded, self._members(), self.clock())
        for cluster in self.cfg.clusters:
            if not cluster.endpoint.tool_call.enabled:
                log.warning(
                    "cluster %s: tool_call is disabled, so nothing can prove that it serves: "
                    "sshd alone decides whether a node is wedged (no serving veto)",
                    cluster.name,
                )
        self._index = members_index(self.fleet)
        self._scope.reset(self._index)
        await self._finish_half_done_cycles()
        self._schedule_jobs()
        self._scheduler.start()
        self.monitor.start()
        self._save()

    async def stop(self) -> None:
        """Stop probing; wait for power actions, which never stop between off and on."""
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in list(self._now_tasks):
            task.cancel()
        self.monitor.stop()
        for timer in self._confirm_timers.values():
            timer.cancel()
        for task in self._confirm_tasks.values():
            task.cancel()
        await self._cancel_dry_runs()
        tasks = [t for t in self._power_tasks.values() if not t.done()]
        if tasks:
            log.info("waiting for %d power action(s) to finish before stopping", len(tasks))
            limit = self.cfg.policy.off_time + 3 * self.cfg.policy.plug_confirm_timeout + 30
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for task in pending:
                task.cancel()  # the procedure still switches the plug on when cancelled
            if pending:
                await asyncio.wait(pending, timeout=self.cfg.policy.plug_confirm_timeout + 5)
        self._save()

    async def _cancel_dry_runs(self) -> None:
        """A dry-run "power cycle" switches nothing: stop it now, and forget its intent."""
        dry = {
            node: task
            for node, task in self._power_tasks.items()
            if not task.done() and isinstance(self.plugs.get(node), DryRunPlug)
        }
        for task in dry.values():
            task.cancel()
        if dry:
            await asyncio.wait(dry.values(), timeout=2.0)
        for node in dry:
            self._power_tasks.pop(node, None)
            if node in self.persisted.intents:
                self.persisted = self.store.clear_intent(self._snapshot(), node)

    def reload(self, cfg: Config, plugs: Mapping[str, Plug]) -> None:
        """Adopt a validated new config: keep node histories, reschedule every job."""
        self.cfg = cfg
        self.plugs = {**self.plugs, **plugs}
        assert self.fleet is not None
        # The alert channels may be new: every open page is re-stated at the next evaluation.
        self.fleet = replace(reconcile(self.fleet, self._members(), self.clock()), restate=True)
        self._index = members_index(self.fleet)
        self._scope.reset(self._index)  # the next evaluation is a full one
        self._unsaved = None
        self._scheduler.remove_all_jobs()
        self._schedule_jobs()
        self._save()

    async def reconfigure(self, cfg: Config, plugs: Mapping[str, Plug]) -> None:
        """:meth:`reload`, then close the plug drivers ``plugs`` replace — except one a power
        action still drives: it is dropped, unclosed, when that action is done."""
        old = {name: self.plugs[name] for name in plugs if name in self.plugs}
        self.reload(cfg, plugs)
        for name, plug in old.items():
            if not self.power_in_flight(name):
                with contextlib.suppress(Exception):
                    await plug.close()

    def replace_alerts(self, alerts: AlertSink) -> None:
        """Submit every alert to ``alerts`` from now on (a reload built new channels)."""
        self.alerts = alerts

    def cut_short(self) -> None:
        """A forced stop: cancel every power action now rather than wait for it. A cancelled
        cycle still switches its plug back on before it ends (:mod:`watchdog.plugs.cycle`),
        and its intent stays recorded, so the next start finishes it."""
        for task in self._power_tasks.values():
            task.cancel()

    async def aclose(self) -> None:
        """Close every plug driver (after :meth:`stop`)."""
        for plug in self.plugs.values():
            with contextlib.suppress(Exception):
                await plug.close()

    def ticking(self, within: float) -> bool:
        """The scheduler's tick job ran within the last ``within`` seconds."""
        return self.clock() - self.last_tick < within

    def saw_every_node(self) -> bool:
        """Every node has been probed (sshd, where probed, and its plug) since the start."""
        nodes = {n.name: n for _, n in self.cfg.nodes()}
        return all(
            st.plug_at is not None
            and (st.ssh.last_at is not None or not (n := nodes.get(name)) or not n.ssh.enabled)
            for name, st in self.state.nodes.items()
        )

    def power_in_flight(self, node: str) -> bool:
        task = self._power_tasks.get(node)
        return task is not None and not task.done()

    @property
    def state(self) -> FleetState:
        assert self.fleet is not None
        return self.fleet

    def summary(self) -> str:
        """One line for STATUS= and the demo: '2/2 nodes healthy, 0 cycles in 6h'."""
        nodes = self.state.nodes.values()
        now = self.clock()
        healthy = sum(n.cls is NodeClass.HEALTHY for n in nodes)
        window = self.cfg.policy.cycle_window
        cycles = sum(1 for _, t in self.state.fleet_cycles if now - t < window)
        text = f"{healthy}/{len(nodes)} nodes healthy, {cycles} cycles in {_span(window)}"
        odd = [f"{n.name} {n.cls.value}" for n in nodes if n.cls is not NodeClass.HEALTHY]
        if len(odd) > _SUMMARY_ODD:  # a line for STATUS=, not a report of the whole fleet
            odd[_SUMMARY_ODD:] = [f"{len(odd) - _SUMMARY_ODD} more"]
        return text + (f" ({', '.join(odd)})" if odd else "")

    # ------------------------------------------------------------------ jobs
    def _members(self) -> dict[str, str]:
        return {n.name: c.name for c, n in self.cfg.nodes()}

    def _schedule_jobs(self) -> None:
        now = datetime.now(UTC)
        # Lookups for the jobs, rebuilt with every config (a scan per probe would be O(N)).
        self._by_node = {n.name: (c, n) for c, n in self.cfg.nodes()}
        self._by_cluster = {c.name: c for c in self.cfg.clusters}
        jobs: dict[str, list[tuple[str, float, Callable[..., Awaitable[None]], tuple[object, ...]]]]
        jobs = {}

        def add(
            kind: str,
            job_id: str,
            interval: float,
            func: Callable[..., Awaitable[None]],
            *a: object,
        ) -> None:
            jobs.setdefault(kind, []).append((job_id, interval, func, a))

        for _, node in self.cfg.nodes():
            if node.ssh.enabled:
                add("ssh", f"ssh:{node.name}", node.ssh.interval, self._job_ssh, node.name)
            if node.ping.enabled:
                add("ping", f"ping:{node.name}", node.ping.interval, self._job_ping, node.name)
            add(
                "plug",
                f"plug:{node.name}",
                node.plug.validate_interval,
                self._job_plug,
                node.name,
            )
        for cluster in self.cfg.clusters:
            for kind, interval in self.suite.endpoint_jobs(cluster):
                add(
                    str(kind),
                    f"{kind}:{cluster.name}",
                    interval,
                    self._job_endpoint,
                    cluster.name,
                    kind,
                )
        if self.cfg.watchdog.witnesses:
            interval = min(n.ssh.interval for _, n in self.cfg.nodes())
            add("witness", "witness", interval, self._job_witness)
        # Each kind's jobs start evenly spread over its first interval (at most _SPREAD_CAP):
        # job i of n first fires at i/n of it, then every interval from there, without drift.
        for group in jobs.values():
            for i, (job_id, interval, func, a) in enumerate(group):
                phase = min(interval, _SPREAD_CAP) * i / len(group)
                self._every(job_id, interval, func, *a, first=now + timedelta(seconds=phase))
        tick = max(0.2, min(1.0, self.cfg.policy.confirm_interval / 2))
        self._scheduler.add_job(
            self._guarded,
            "interval",
            args=(self._job_tick,),
            seconds=tick,
            id="tick",
            name="tick",
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )

    async def _guarded(self, func: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run one job: a stop cancels it quietly; a bug is logged and probing goes on."""
        try:
            await func(*args)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            log.exception(
                "job %s%s failed; it runs again at its next interval",
                getattr(func, "__name__", func),
                args,
            )

    def _every(
        self,
        job_id: str,
        interval: float,
        func: Callable[..., Awaitable[None]],
        *args: object,
        first: datetime | None = None,
    ) -> None:
        # No jitter: APScheduler 3 adds it to the previous, already jittered fire time, so
        # the period drifts. Fire times are first + k * interval; the phases do the spreading.
        self._scheduler.add_job(
            self._guarded,
            "interval",
            seconds=interval,
            args=(func, *args),
            id=job_id,
            name=job_id,  # so APScheduler's own warnings say which job
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=first or datetime.now(UTC),
        )

    def _node(self, name: str) -> tuple[Cluster, Node] | None:
        return self._by_node.get(name)  # None: removed by a reload while the job was queued

    async def _job_ssh(self, name: str) -> None:
        if (found := self._node(name)) is None:
            return
        lock = self._ssh_locks.setdefault(name, asyncio.Lock())
        if lock.locked():
            return  # a confirmation probes this node right now: its result serves
        async with lock:
            started = time.monotonic()
            result = await self.suite.ssh(found[1])
        self._observed(result, node=name, started=started, budget=found[1].ssh.timeout)

    async def _job_ping(self, name: str) -> None:
        if (found := self._node(name)) is not None:
            started = time.monotonic()
            result = await self.suite.ping(found[1])
            self._observed(result, node=name, started=started, budget=found[1].ping.timeout)

    async def _job_plug(self, name: str) -> None:
        await self._read_plug(name)
        self._evaluate({name})

    async def _read_plug(self, name: str) -> None:
        """Read one plug and fold the reading in, stamped with when the read began."""
        plug = self.plugs.get(name)
        if plug is None or name in self._power_tasks:
            return  # never talk to a plug the power procedure is driving
        started = self.clock()
        reading = await plug.read()
        if name not in self.state.nodes:
            return  # removed by a reload meanwhile
        if not reading.reachable:
            cluster = self.state.node(name).cluster
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
        self.fleet = observe_plug(self.state, name, reading, self.clock(), started)

    async def _sweep(self) -> None:
        """Two or more nodes fail on ssh at once: blind, or real wedges? A banner from a few
        nodes whose sshd answered before settles it (the watchdog sees; the policy then needs
        each suspect's own fresh plug reading only); else every plug is read at once."""
        started = self.clock()
        try:
            if await self._sight_proven():
                return
            await asyncio.gather(
                *(self._read_plug(name) for name in list(self.state.nodes)),
                return_exceptions=True,
            )
            self.fleet = observe_sweep(self.state, started)
        finally:
            self._sweeping = False
            self._swept_at = self.clock()
        self._evaluate()

    async def _sight_proven(self) -> bool:
        """Probe the sshd of a few nodes that answered last time; True if the policy, given
        their results, no longer asks for a sweep."""
        answered = (
            (st.ssh.ok_at, name)
            for name, st in self.state.nodes.items()
            if not st.ssh.failing
            and st.ssh.ok_at is not None
            and (found := self._node(name)) is not None
            and found[1].ssh.enabled
            and not self._ssh_locks.get(name, _UNLOCKED).locked()
        )
        picks = [name for _, name in heapq.nlargest(_SIGHT_PROBES, answered)]
        if not picks:
            return False
        await asyncio.gather(*(self._job_ssh(name) for name in picks), return_exceptions=True)
        return self._scope.last is not None and not self._scope.last.sweep

    async def _job_endpoint(self, cluster: str, kind: ProbeKind) -> None:
        found = self._by_cluster.get(cluster)
        if found is None:
            return
        if kind is ProbeKind.TOOL_CALL:
            if cluster in self._tool_calls:
                return  # one is under way (a proof or the scheduled one): its answer will do
            self._tool_calls.add(cluster)
        started = time.monotonic()
        try:
            results = await self.suite.endpoint(found, kind)
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
            self._observed(result, cluster=cluster, evaluate=False, started=started, budget=budget)
        self._evaluate(self._index.get(cluster, ()))

    async def _job_witness(self) -> None:
        results = await asyncio.gather(
            *(self.suite.witness(w) for w in self.cfg.watchdog.witnesses)
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
        self.fleet = observe_witness(self.state, best, self.clock())
        self._evaluate(())  # a fleet-wide fact: the outlook says what it changes

    async def _job_confirm(self, name: str) -> None:
        """Confirmation burst: re-probe sshd and re-read the plug before judging."""
        if (found := self._node(name)) is None:
            return
        # Never talk to a plug the power procedure is driving.
        plug = None if name in self._power_tasks else self.plugs.get(name)
        # A silent plug takes python-kasa's retries (~4x its timeout) to give up: the sshd
        # verdict must not wait for it. The power procedure re-reads the plug before acting.
        reading = asyncio.create_task(self._read_plug(name)) if plug else None
        # After a periodic probe still in flight, never instead of the next one.
        async with self._ssh_locks.setdefault(name, asyncio.Lock()):
            started = time.monotonic()
            result = await self.suite.ssh(found[1])
        self._observed(result, node=name, started=started, budget=found[1].ssh.timeout)
        if reading is not None:
            await reading
            self._evaluate({name})

    async def _job_tick(self) -> None:
        now = self.last_tick = self.clock()
        link = self.suite.link_up()
        if link is not None and link != self.state.link_up:
            self.fleet = observe_link(self.state, link)
        before = self.fleet
        self._take_requests()
        self.alerts.tick()
        # Time alone changes only the time-sensitive nodes; an operator request may change
        # anything, and a full evaluation now and then backs the incremental ones.
        if self.fleet is not before:
            self._evaluate()
            self._save(now=True)  # what an operator was told is done is on disk
        elif now - self._last_full >= _FULL_EVERY:
            self._evaluate()
        else:
            self._evaluate(set(self._scope.watch))

    # ------------------------------------------------------------------ decide and act
    def _observed(
        self,
        result: ProbeResult,
        *,
        node: str | None = None,
        cluster: str | None = None,
        evaluate: bool = True,
        started: float | None = None,
        budget: float | None = None,
    ) -> None:
        now = self.clock()
        if (
            result.failure in _DEADLINE
            and started is not None
            and budget is not None
            and self.monitor.lag_since(started) >= budget / 2
        ):
            # Our own event loop ate half the budget: not the target's failure.
            self.dropped += 1
            log.debug("dropped %s %s: the event loop was late", result.target, result.probe)
            return
        metrics.probe_observed(result)
        if not result.ok:
            owner = cluster or (self.state.node(node).cluster if node else None)
            log_event(
                log,
                EventType.PROBE_FAILED,
                f"{result.target} {result.probe}: {result.failure}: {result.detail}",
                severity=Severity.WARNING,
                node=node,
                cluster=owner,
                probe=result.probe,
                failure=result.failure,
                hint=result.hint,
                latency=f"{result.latency:.3f}",
            )
        if node is not None:
            self.fleet = observe_node(self.state, node, result, now)
            if evaluate:
                self._evaluate({node})
        elif cluster is not None:
            self.fleet = observe_endpoint(self.state, cluster, result, now)
            if evaluate:
                self._evaluate(self._index.get(cluster, ()))

    def _evaluate(self, changed: Collection[str] | None = None) -> None:
        """Evaluate what ``changed`` nodes can affect; None (the default): every node."""
        now = self.clock()
        hold = self.monitor.reason()  # overloaded: the policy pages once, judges nothing
        if changed is None:
            self._last_full = now
        decision, only = self._scope.evaluate(self.state, changed, cfg=self.cfg, now=now, hold=hold)
        self._apply(decision, only)

    def _apply(self, decision: Decision, only: Collection[str] | None = None) -> None:
        """Carry out a decision; ``only``: the nodes it evaluated (None: maybe all)."""
        self.fleet = decision.fleet
        self._track(only)
        for t in decision.transitions:
            self._log_transition(t)
        for action in decision.actions:
            if isinstance(action, AlertAction):
                self._alert(action.event)
            elif isinstance(action, PowerAction):
                self._power_tasks[action.node] = asyncio.create_task(
                    self._power(action), name=f"power:{action.node}"
                )
        for name in decision.confirm:
            self._confirm_soon(name)
        for cluster in decision.prove:
            if cluster not in self._tool_calls and not self._stopping:
                self._now(f"prove:{cluster}", self._job_endpoint, cluster, ProbeKind.TOOL_CALL)
        # At most one sweep per confirm interval, so a plug that cannot be read cannot spin it.
        due = self.clock() - self._swept_at >= self.cfg.policy.confirm_interval
        if decision.sweep and due and not self._sweeping and not self._stopping:
            self._sweeping = True
            self._now("sweep", self._sweep)
        self._save()

    def _now(self, name: str, func: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run a probe job at once, outside the schedule (guarded like a scheduled one)."""
        task = asyncio.create_task(self._guarded(func, *args), name=name)
        self._now_tasks.add(task)
        task.add_done_callback(self._now_tasks.discard)

    def _track(self, only: Collection[str] | None) -> None:
        """Keep the records to persist in step with the fleet."""
        if only is None:
            self._unsaved = None
        elif self._unsaved is not None:
            self._unsaved.update(only)

    def _confirm_soon(self, name: str) -> None:
        """Re-probe ``name`` in confirm_interval; one asked for while one runs runs after it."""
        if self._stopping or name in self._confirm_timers:
            return
        if name in self._confirm_tasks:
            self._confirm_again.add(name)
            return
        loop = asyncio.get_running_loop()
        self._confirm_timers[name] = loop.call_later(
            self.cfg.policy.confirm_interval, self._start_confirm, name
        )

    def _start_confirm(self, name: str) -> None:
        self._confirm_timers.pop(name, None)
        if self._stopping:
            return
        task = asyncio.create_task(self._guarded(self._job_confirm, name), name=f"confirm:{name}")
        self._confirm_tasks[name] = task
        task.add_done_callback(lambda _t: self._confirm_done(name))

    def _confirm_done(self, name: str) -> None:
        self._confirm_tasks.pop(name, None)
        if name in self._confirm_again:
            self._confirm_again.discard(name)
            self._confirm_soon(name)

    def _submit_alert(self, event: AlertEvent) -> None:
        self.alerts.submit(event)

    # ------------------------------------------------------------------ persistence
    def _snapshot(self) -> PersistedState:
        return to_persisted(self.state, self.persisted, self._unsaved)

    def _save(self, *, now: bool = False) -> None:
        """Rebuild the records that may have changed; write if a durable field did — at
        once with ``now`` (and when the last write is old enough), else a moment later, so a
        burst of changes is one write."""
        only = self._unsaved
        if only is None or only or self.persisted.fleet_cycles != self.state.fleet_cycles:
            snap = to_persisted(self.state, self.persisted, only)
            if durable_change(self.persisted, snap, only):
                self._write_pending = True
            self.persisted = snap
            self._unsaved = set()
        if not self._write_pending:
            return
        wait = self._written_at + _WRITE_EVERY - time.monotonic()
        if now or wait <= 0 or self._stopping:
            if self._write_later is not None:
                self._write_later.cancel()
                self._write_later = None
            self.store.save(self.persisted)
            self._write_pending = False
            self._written_at = time.monotonic()
        elif self._write_later is None:
            self._write_later = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._write_later = None
        self._save(now=True)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
