"""The fixed-period runner: fire times from the first one, one run at a time, no bursts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.engine.periodic import Periodic, next_count


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
