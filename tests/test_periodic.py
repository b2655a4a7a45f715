"""The fixed-period runner: fire times from the first one, one run at a time, no bursts."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.engine.periodic import GRID, JobFunc, Periodic, next_count, on_grid


class Slow:
    """A job that counts its runs and does not finish until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        await self.release.wait()


@given(
    first=st.floats(-1e6, 1e6),
    interval=st.floats(1e-3, 1e5),
    now=st.floats(-1e6, 2e6),
    k=st.integers(0, 10**6),
)
def test_the_next_fire_is_a_multiple_of_the_interval_after_now_and_never_goes_back(
    first: float, interval: float, now: float, k: int
) -> None:
    j = next_count(first, interval, now, k)
    assert j >= k
    assert first + j * interval > now
    if j > k:  # it skipped fires only because they were past
        assert first + (j - 1) * interval <= now


@given(t=st.floats(-1e7, 1e7), grid=st.sampled_from([GRID, 0.25, 1.0, 0.1]), up=st.booleans())
def test_a_time_put_on_the_grid_is_the_nearest_multiple_on_its_side(
    t: float, grid: float, up: bool
) -> None:
    g = on_grid(t, grid, up=up)
    steps = g / grid
    assert abs(steps - round(steps)) < 1e-6  # a multiple of the grid
    if up:
        assert t - 1e-6 <= g < t + grid + 1e-6
    else:
        assert t - grid - 1e-6 < g <= t + 1e-6


def recorder(log: list[str], name: str) -> JobFunc:
    """A job that notes its name in ``log`` each time it runs."""

    async def run() -> None:
        log.append(name)

    return run


async def test_jobs_due_together_share_one_timer_and_fire_in_the_same_order_every_time() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    job = functools.partial(recorder, order)
    timers = Periodic()
    first = loop.time() + 0.02
    names = [f"j{i}" for i in range(6)]
    for name in names:
        timers.add(name, 0.05, job(name), first=first)
    timers.add("other", 0.05, job("other"), first=first + 0.025)
    timers.start()
    assert timers.slots == 2  # six jobs due at one instant, one due at another
    await asyncio.sleep(0.23)
    timers.stop()
    rounds = [order[i : i + 7] for i in range(0, len(order) - 6, 7)]
    assert len(rounds) >= 3
    for r in rounds:  # the same order in every round: the gaps between fires stay even
        assert r == [*names, "other"], order
    assert timers.slots == 0  # stopped: no timer left


async def test_a_removed_job_leaves_its_slot_and_an_empty_slot_its_timer() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    job = functools.partial(recorder, ran)
    timers = Periodic()
    timers.add("a", 0.05, job("a"), first=loop.time() + 0.03)
    timers.add("b", 0.05, job("b"), first=loop.time() + 0.03)
    timers.start()
    timers.add("a", 0.05, job("a2"), first=loop.time() + 0.5)  # replaces "a": a slot of its own
    assert timers.slots == 2
    await asyncio.sleep(0.06)
    timers.stop()
    assert "a" not in ran and "b" in ran


async def test_a_job_fires_at_first_plus_whole_intervals_without_drift() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []

    async def job() -> None:
        fired.append(loop.time())

    timers = Periodic()
    first = loop.time() + 0.05
    timers.add("j", 0.05, job, first=first)
    timers.start()
    await asyncio.sleep(0.6)
    timers.stop()
    assert len(fired) >= 5
    # Each fire is at (or just after) first + k * interval: the lag of one fire never
    # carries into the next.
    for t in fired:
        k = round((t - first) / 0.05)
        assert 0 <= t - (first + k * 0.05) < 0.04, (t, first, k)
    assert sorted({round((t - first) / 0.05) for t in fired}) == list(range(len(fired)))


async def test_a_fire_that_finds_its_previous_run_going_is_skipped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    slow = Slow()
    timers = Periodic()
    job = timers.add("slow", 0.02, slow, first=loop.time())
    timers.start()
    with caplog.at_level(logging.WARNING, logger="watchdog.engine"):
        await asyncio.sleep(0.2)
    assert slow.runs == 1  # one run in flight, never two
    assert job.skipped >= 3 and timers.skipped == job.skipped
    assert len([r for r in caplog.records if "slow skipped" in r.getMessage()]) == 1
    slow.release.set()
    await asyncio.sleep(0.1)
    assert slow.runs >= 2  # fires again once its run is over
    timers.stop()


async def test_a_stalled_loop_gets_one_fire_afterwards_not_a_burst() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []

    async def job() -> None:
        fired.append(loop.time())

    timers = Periodic()
    timers.add("j", 0.01, job, first=loop.time())
    timers.start()
    await asyncio.sleep(0.005)
    import time

    time.sleep(0.2)  # the loop is blocked over 20 fire times
    await asyncio.sleep(0.015)
    timers.stop()
    assert len(fired) <= 4, fired


async def test_stop_cancels_the_runs_in_flight_and_nothing_fires_after_it() -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    fired = 0

    async def forever() -> None:
        nonlocal fired
        fired += 1
        started.set()
        await asyncio.sleep(3600)

    timers = Periodic()
    job = timers.add("f", 0.01, forever, first=loop.time())
    timers.start()
    await started.wait()
    timers.stop()
    await asyncio.sleep(0.05)
    assert job.task is not None and job.task.cancelled()
    assert fired == 1


async def test_a_job_added_again_after_remove_all_waits_for_its_run_in_flight() -> None:
    loop = asyncio.get_running_loop()
    slow = Slow()
    timers = Periodic()
    timers.add("slow", 0.02, slow, first=loop.time())
    timers.start()
    await asyncio.sleep(0.01)
    timers.remove_all()  # a reload: the jobs are rebuilt, the run goes on
    timers.add("slow", 0.02, slow, first=loop.time())
    await asyncio.sleep(0.1)
    assert slow.runs == 1
    slow.release.set()
    await asyncio.sleep(0.05)
    assert slow.runs >= 2
    timers.stop()


@pytest.mark.parametrize("interval", [0.0, -1.0, float("inf"), float("nan")])
def test_an_interval_that_cannot_be_kept_is_refused(interval: float) -> None:
    async def job() -> None:
        pass

    with pytest.raises(ValueError, match="job j"):
        Periodic().add("j", interval, job, first=0.0)
