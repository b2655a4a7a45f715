"""The scenario catalogue (docs/design.md) end to end: the real daemon, the simulated cluster.

The definitions are shared with ``cluster-watchdog demo`` (``watchdog/sim/scenarios.py``):
each run asserts from the plugs' own records and the alerts as received by the webhook
receiver, never from the daemon's word. S11 and S12 (signals, sd_notify) and the plug
timeout / credentials variants of S10 live in ``test_scenarios_process.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.sim.harness_config import Outcome
from watchdog.sim.scenarios import SCENARIOS, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_scenario_goes_as_the_catalogue_says(name: str, tmp_path: Path) -> None:
    scenario = SCENARIOS[name]
    outcome, problems = await run_scenario(scenario, tmp_path)
    assert problems == [], (
        f"{scenario.ref} {scenario.title}: {problems}\n"
        f"plug records: {outcome.records}\nalerts: {outcome.alerts}"
    )


def test_the_catalogue_covers_every_in_process_scenario_of_the_design() -> None:
    refs = {s.ref for s in SCENARIOS.values()}
    want = {f"S{i}" for i in (*range(1, 11), 13, 14, 15, 16, 17)}
    assert want <= refs


def test_the_checks_can_fail_a_blip_judged_by_the_wedge_expectations() -> None:
    # The checks must be able to fail: what a blip run looks like (no power events, no
    # alerts) judged by the wedge scenario's expectations is reported, not hidden.
    quiet = Outcome(
        records={"spark-1": [], "spark-2": []}, alerts=[], classes={}, latched=set(), elapsed=1.0
    )
    problems = SCENARIOS["wedge"].problems(quiet)
    assert any("power cycles per node" in p for p in problems)
    assert any("alert sequence" in p for p in problems)
    assert SCENARIOS["blip"].problems(quiet) == []
