"""The engine's timing rules: one banner probe per node at a time, confirmations never
dropped, periodic jobs spread over their first interval and free of drift."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from watchdog.config import Config, Node, parse_config
from watchdog.core.model import AlertEvent, FailureKind, PlugReading, ProbeKind, ProbeResult
from watchdog.engine.engine import Engine
from watchdog.engine.periodic import GRID
from watchdog.state.store import PersistedState, Store


def make_cfg(nodes: int = 1) -> Config:
    doc = {
        "policy": {"confirm_interval": "100ms"},
        "clusters": [
            {
                "name": "c",
                "endpoint": {"base_url": "http://127.0.0.1:9", "model": "m"},
                "nodes": [
                    {
                        "name": f"n{i}",
                        "host": "127.0.0.1",
                        "ssh": {"interval": "10s", "timeout": "1s"},
                        "plug": {"type": "kasa", "host": f"127.0.3.{i + 1}"},
                    }
                    for i in range(nodes)
                ],
            }
        ],
    }
    return parse_config(yaml.safe_dump(doc), env={})


class SlowSsh:
    """A probe suite whose banner probe takes ``delay`` and records when each one ran."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.runs: list[tuple[float, float]] = []

    async def ssh(self, node: Node) -> ProbeResult:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(self.delay)
        self.runs.append((start, loop.time()))
        return ProbeResult(ProbeKind.SSH, node.name, FailureKind.NO_BANNER, self.delay)

    def endpoint_jobs(self, cluster: object) -> list[tuple[ProbeKind, float]]:
        return []


class OnPlug:
    """A plug that always answers and reads on (the policy judges nodes it can see)."""

    supports_timer = False

    async def read(self) -> PlugReading:
        return PlugReading(reachable=True, is_on=True)

    async def close(self) -> None:
        pass


class Sink:
    def submit(self, event: AlertEvent) -> None:
        pass

    def tick(self) -> None:
        pass


def engine(tmp_path: Path, suite: SlowSsh, nodes: int = 1) -> Engine:
    return Engine(
        make_cfg(nodes),
        suite=suite,  # type: ignore[arg-type]
        plugs={f"n{i}": OnPlug() for i in range(nodes)},  # type: ignore[misc]
        alerts=Sink(),
        store=Store(tmp_path),
        state_dir=tmp_path,
    )


async def started(e: Engine) -> Engine:
    await e.start(PersistedState())
    e.jobs.timers.remove_all()  # the test drives the jobs itself
    return e


async def test_a_confirmation_asked_for_while_one_runs_runs_after_it(tmp_path: Path) -> None:
    suite = SlowSsh(0.3)
    e = await started(engine(tmp_path, suite))
    try:
        await e.jobs.read_plug("n0")  # seen afresh: the policy asks for no confirmation of its own
        e.bursts.confirm_soon("n0")  # runs at 0.1 s, takes 0.3 s
        await asyncio.sleep(0.2)
        e.bursts.confirm_soon("n0")  # asked for while the first one runs
        e.bursts.confirm_soon("n0")  # asked for again: still one more, not two
        await asyncio.sleep(1.2)
        assert len(suite.runs) == 2, suite.runs
        (_, first_end), (second_start, _) = suite.runs
        assert second_start >= first_end  # after it, never beside it
    finally:
        await e.stop()


async def test_one_banner_probe_per_node_at_a_time(tmp_path: Path) -> None:
    suite = SlowSsh(0.3)
    e = await started(engine(tmp_path, suite))
    try:
        periodic = asyncio.create_task(e.jobs.job_ssh("n0"))
        await asyncio.sleep(0.05)
        e.bursts.start_confirm("n0")  # a confirmation while the periodic probe is in flight
        await asyncio.sleep(0.05)
        await e.jobs.job_ssh("n0")  # a periodic one while both are busy: skipped at once
        await periodic
        await asyncio.sleep(0.5)
        assert len(suite.runs) == 2, suite.runs
        (_, first_end), (second_start, _) = suite.runs
        assert second_start >= first_end
    finally:
        await e.stop()


async def test_periodic_jobs_start_spread_over_their_interval_without_jitter(
    tmp_path: Path,
) -> None:
    e = engine(tmp_path, SlowSsh(0.0), nodes=4)
    await e.start(PersistedState())
    try:
        jobs = sorted(
            (j for j in e.jobs.timers.jobs() if j.id.startswith("ssh:")),
            key=lambda j: j.next_at,
        )
        assert len(jobs) == 4
        first = jobs[0].next_at
        offsets = [round(j.next_at - first, 9) for j in jobs]
        assert offsets == [0.0, 2.5, 5.0, 7.5]  # 10 s interval, 4 nodes
        assert {j.interval for j in jobs} == {10.0}
    finally:
        await e.stop()


async def test_periodic_jobs_first_fire_on_the_grid_so_jobs_due_together_share_a_wake_up(
    tmp_path: Path,
) -> None:
    e = engine(tmp_path, SlowSsh(0.0), nodes=7)
    await e.start(PersistedState())
    try:
        jobs = e.jobs.timers.jobs()
        for j in jobs:
            steps = j.next_at / GRID
            assert abs(steps - round(steps)) < 1e-6, (j.id, j.next_at)
        ssh = sorted(j.next_at for j in jobs if j.id.startswith("ssh:"))
        # 10 s over 7 nodes, each phase rounded down to the half second.
        assert [round(t - ssh[0], 6) for t in ssh] == [0.0, 1.0, 2.5, 4.0, 5.5, 7.0, 8.5]
        assert e.jobs.timers.slots < len(jobs)  # the first fires of several kinds coincide
    finally:
        await e.stop()


class ScriptedSsh:
    """A probe suite whose sshd answers for the nodes not in ``silent``, at once."""

    def __init__(self) -> None:
        self.silent: set[str] = set()
        self.probed: list[str] = []

    async def ssh(self, node: Node) -> ProbeResult:
        self.probed.append(node.name)
        failure = FailureKind.NO_BANNER if node.name in self.silent else None
        return ProbeResult(ProbeKind.SSH, node.name, failure, 0.001)

    async def endpoint(self, cluster: object, kind: ProbeKind) -> list[ProbeResult]:
        return []

    def endpoint_jobs(self, cluster: object) -> list[tuple[ProbeKind, float]]:
        return []


class CountingPlug(OnPlug):
    def __init__(self) -> None:
        self.reads = 0

    async def read(self) -> PlugReading:
        self.reads += 1
        return await super().read()


async def _burst(tmp_path: Path, silent: set[str]) -> tuple[ScriptedSsh, dict[str, int]]:
    """Four healthy nodes; then the ``silent`` ones fail on ssh together. Returns the probes
    run and each plug's reads after the burst."""
    suite = ScriptedSsh()
    plugs = {f"n{i}": CountingPlug() for i in range(4)}
    e = Engine(
        make_cfg(4),
        suite=suite,  # type: ignore[arg-type]
        plugs=plugs,  # type: ignore[arg-type]
        alerts=Sink(),
        store=Store(tmp_path),
        state_dir=tmp_path,
    )
    e = await started(e)
    try:
        for name in plugs:
            await e.jobs.read_plug(name)
            await e.jobs.job_ssh(name)
        assert all(st.cls.value == "healthy" for st in e.state.nodes.values())
        before = {n: p.reads for n, p in plugs.items()}
        suite.probed.clear()
        suite.silent = silent
        for name in sorted(silent):
            await e.jobs.job_ssh(name)
        await asyncio.sleep(0.5)  # the sweep (or the sight check) and the confirmations
        return suite, {n: p.reads - before[n] for n, p in plugs.items()}
    finally:
        await e.stop()


async def test_a_banner_from_a_node_that_answered_settles_a_burst_without_reading_every_plug(
    tmp_path: Path,
) -> None:
    suite, reads = await _burst(tmp_path, {"n0", "n1"})
    # The two that answered were probed at once to prove sight; their plugs were not read.
    assert {"n2", "n3"} <= set(suite.probed), suite.probed
    assert reads["n2"] == reads["n3"] == 0, reads
    assert reads["n0"] >= 1 and reads["n1"] >= 1  # each suspect's own plug, by its burst


async def test_when_no_node_answers_a_burst_reads_every_plug(tmp_path: Path) -> None:
    _, reads = await _burst(tmp_path, {"n0", "n1", "n2", "n3"})
    assert all(n >= 1 for n in reads.values()), reads


async def test_a_failure_is_logged_as_a_warning_when_it_is_news_not_at_every_probe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = await started(engine(tmp_path, SlowSsh(0.0)))

    def ssh(failure: FailureKind | None) -> None:
        e.fleet.observed(ProbeResult(ProbeKind.SSH, "n0", failure, 0.01), node="n0")

    try:
        await asyncio.sleep(0.05)  # the probes below began after the watchdog could see
        with caplog.at_level(logging.DEBUG, logger="watchdog.engine"):
            for failure in (
                FailureKind.NO_BANNER,  # news: the first of a streak
                FailureKind.NO_BANNER,  # the same again: debug
                FailureKind.NO_BANNER,
                FailureKind.REFUSED,  # another kind of failure: news
                None,  # passes
                FailureKind.REFUSED,  # a new streak: news
            ):
                ssh(failure)
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and "n0 ssh" in r.getMessage()
        ]
        assert [m.split(":")[1].strip() for m in warned] == ["no_banner", "refused", "refused"]
        again = [
            r for r in caplog.records if r.levelno == logging.DEBUG and "again" in r.getMessage()
        ]
        assert len(again) == 2
    finally:
        await e.stop()
