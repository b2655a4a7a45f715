"""Fixed-period jobs on the event loop's own timers: the probes' schedule (orchestration layer).

Owns :class:`Periodic`. A job fires at ``first + k * interval`` (k = 0, 1, 2, …) on the loop's
monotonic clock: no jitter, and no drift, since each fire time is computed from the first one
rather than from the previous fire. Each fire runs the job as a task. At most one run of a job
is in flight: a fire that finds the previous run still going is skipped (counted, and logged
once per job until a run of it starts again), and the job fires again at its next multiple.
Fires the loop was too busy to make on time are not made up for: the next one is the next
multiple of the interval after now, so a stalled loop never releases a burst of runs.

Jobs due at the same instant share one *slot*: one loop timer fires them all, in the order
they were added, every time (so the gaps between two probes of a target do not depend on the
order in which the loop breaks ties). A caller that puts its jobs' first fires on a common
grid (:mod:`watchdog.engine.jobs` does) gets few slots: the loop wakes once per slot rather
than once per job, and does the slot's work with its caches warm. Nothing is polled, so a
thousand jobs cost nothing between their fires. A job's errors are its own to handle (the
engine guards every job, :meth:`watchdog.engine.jobs.Jobs.guarded`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("watchdog.engine")

JobFunc = Callable[..., Coroutine[Any, Any, None]]

# The probe jobs' first fires fall on multiples of this many seconds (:func:`on_grid`), so
# jobs due together share a slot: at a thousand nodes the loop wakes ~50 times a second
# instead of ~600, and each wake-up's work runs with warm caches (benchmarks/README.md,
# "Fleet figures").
GRID = 0.5


def on_grid(t: float, grid: float = GRID, *, up: bool = True) -> float:
    """``t`` rounded to a multiple of ``grid`` (up, or down), to the microsecond."""
    if grid <= 0:
        return t
    steps = math.ceil(t / grid - 1e-9) if up else math.floor(t / grid + 1e-9)
    return round(steps * grid, 6)


def next_count(first: float, interval: float, now: float, k: int) -> int:
    """The least count ``j >= k`` whose fire time ``first + j * interval`` is after ``now``."""
    if first + k * interval > now:
        return k
    j = max(k, math.floor((now - first) / interval))
    while first + j * interval <= now:  # floating point: never a fire time already past
        j += 1
    return j


@dataclass(slots=True, eq=False)
class Job:
    """One periodic job: what it runs, when it fires next, and its run in flight."""

    id: str
    interval: float
    func: JobFunc
    args: tuple[object, ...]
    first: float
    count: int = 0  # the next fire is at first + count * interval
    slot: float | None = None  # the slot it waits in (its next fire time), while armed
    task: asyncio.Task[None] | None = None
    skipped: int = 0
    _warned: bool = field(default=False, repr=False)

    @property
    def next_at(self) -> float:
        """Loop time of the next fire (to the microsecond: jobs due together share a slot)."""
        return round(self.first + self.count * self.interval, 6)


class Periodic:
    """Jobs fired at a fixed period from their own first fire time."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        # Fire time -> its loop timer and its jobs, in firing order.
        self._slots: dict[float, tuple[asyncio.TimerHandle, list[Job]]] = {}
        self._left: dict[str, asyncio.Task[None]] = {}  # runs of removed jobs, by job id
        self.skipped = 0  # fires skipped because the job's previous run was still going
        self.running = False

    def add(self, job_id: str, interval: float, func: JobFunc, *args: object, first: float) -> Job:
        """Schedule ``func(*args)`` every ``interval`` s from loop time ``first`` (replacing a
        job of the same id). Fires only while the runner is started."""
        if not (math.isfinite(interval) and interval > 0 and math.isfinite(first)):
            raise ValueError(f"job {job_id}: interval {interval!r} from {first!r}")
        old = self._jobs.pop(job_id, None)
        self._cancel(old)
        job = Job(job_id, interval, func, args, first)
        # A run of the job this one replaces still counts as its run in flight.
        job.task = old.task if old is not None else self._left.pop(job_id, None)
        self._jobs[job_id] = job
        if self.running:
            self._arm(job)
        return job

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    @property
    def slots(self) -> int:
        """Loop timers armed: one per instant some job is due at."""
        return len(self._slots)

    def start(self) -> None:
        self.running = True
        for job in self._jobs.values():
            if job.slot is None:
                self._arm(job)

    def remove_all(self) -> None:
        """Drop every job; a run in flight finishes on its own (and a job added again under
        the same id waits for it)."""
        self._left = {i: t for i, t in self._left.items() if not t.done()}
        self._disarm_all()
        for job in self._jobs.values():
            if job.task is not None and not job.task.done():
                self._left[job.id] = job.task
        self._jobs.clear()

    def stop(self) -> None:
        """Stop firing and cancel every run in flight."""
        self.running = False
        for task in self._left.values():
            task.cancel()
        self._disarm_all()
        for job in self._jobs.values():
            if job.task is not None:
                job.task.cancel()

    # ------------------------------------------------------------------ internals
    def _arm(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        if not (job.count == 0 and job.first <= loop.time()):  # else: due now, fires at once
            job.count = next_count(job.first, job.interval, loop.time(), job.count)
        self._enter(job, loop)

    def _enter(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        at = job.slot = job.next_at
        slot = self._slots.get(at)
        if slot is None:
            self._slots[at] = (loop.call_at(at, self._fire, at), [job])
        else:
            slot[1].append(job)

    def _disarm_all(self) -> None:
        for timer, jobs in self._slots.values():
            timer.cancel()
            for job in jobs:
                job.slot = None
        self._slots.clear()

    def _cancel(self, job: Job | None) -> None:
        if job is None or job.slot is None:
            return
        at, job.slot = job.slot, None
        timer, jobs = self._slots[at]  # an armed job is in the slot it names
        jobs.remove(job)
        if not jobs:
            del self._slots[at]
            timer.cancel()

    def _fire(self, at: float) -> None:
        loop = asyncio.get_running_loop()
        _, jobs = self._slots.pop(at)
        for job in jobs:
            job.slot = None
            self._run(job, loop)
        now = loop.time()
        for job in jobs:  # in the same order: they keep their places in the next slot
            job.count = next_count(job.first, job.interval, now, job.count + 1)
            self._enter(job, loop)

    def _run(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        if job.task is None or job.task.done():
            job.task = loop.create_task(job.func(*job.args), name=job.id)
            job._warned = False
            return
        job.skipped += 1
        self.skipped += 1
        if not job._warned:
            job._warned = True
            log.warning(
                "job %s skipped: its previous run is still going (it fires again in %gs)",
                job.id,
                job.interval,
            )
