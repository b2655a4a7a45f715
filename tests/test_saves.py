"""Saving the fleet state after each decision does only the work a change needs.

A passing probe of a settled node rebuilds no record and writes nothing; a record that changed
only in what is not durable (a failure streak, a reason) is not rebuilt after each result but
is brought up to date with the next write, so what reaches the disk is the whole fleet as it
is then; a durable change is written. ``durable_differs`` (the cheap check) answers as
``durable_change`` of a rebuilt snapshot would, for any fleet and any persisted records.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures_records import conditions, evidence, fleets, nodes, texts
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core.evidence import FleetState, NodeState, initial_fleet
from watchdog.core.model import Condition, NodeClass
from watchdog.engine import saves as saves_module
from watchdog.engine.saves import Saves
from watchdog.state import persist
from watchdog.state.persist import durable_change, durable_differs, to_persisted
from watchdog.state.store import PersistedState, Store

T0 = 1_000_000.0


@st.composite
def fleet_pairs(draw: st.DrawFn) -> tuple[FleetState, FleetState]:
    """A fleet, and the same fleet later: some records changed only in fields that are not
    durable, or a wholly different fleet."""
    before = draw(fleets)
    if draw(st.booleans()):
        return before, draw(fleets)
    nodes = dict(before.nodes)
    for name in draw(st.sets(st.sampled_from(sorted(nodes)))) if nodes else ():
        nodes[name] = replace(nodes[name], ssh=draw(evidence), reason=draw(texts))
    clusters = dict(before.clusters)
    for name in draw(st.sets(st.sampled_from(sorted(clusters)))) if clusters else ():
        clusters[name] = replace(clusters[name], open_alerts=draw(conditions))
    return before, replace(before, nodes=nodes, clusters=clusters)


@settings(max_examples=300, deadline=None)
@given(fleet_pairs(), st.sets(st.sampled_from(["a", "b", "gone"])), st.booleans())
def test_the_cheap_check_answers_as_a_rebuilt_snapshot_would(
    pair: tuple[FleetState, FleetState], only: set[str], from_empty: bool
) -> None:
    before, after = pair
    base = to_persisted(before, PersistedState()) if not from_empty else PersistedState()
    rebuilt = to_persisted(after, base, only)
    assert durable_differs(after, base, only) == durable_change(base, rebuilt, only)


@settings(max_examples=300, deadline=None)
@given(nodes)
def test_the_durable_fields_read_from_a_node_are_those_of_its_record(st: NodeState) -> None:
    record = persist._record(st)
    assert persist._durable_state(st) == persist._durable_of(record)


class _CountedStore(Store):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.writes = 0

    def save(self, state: PersistedState) -> None:
        self.writes += 1
        super().save(state)


class _Keeper:
    """What the engine's fleet keeper gives its saves: the state, and what each decision
    evaluated."""

    def __init__(self, tmp_path: Path) -> None:
        self.fleet = initial_fleet({"a": "c", "b": "c"}, T0)
        self.store = _CountedStore(tmp_path)
        ctx: Any = SimpleNamespace(stopping=False)
        self.saves = Saves(self.store, ctx, lambda: self.fleet)
        self.saves.save(now=True)  # the first save: every record
        self.store.writes = 0

    def decided(self, fleet: FleetState, only: set[str]) -> None:
        self.fleet = fleet
        self.saves.track(only)
        self.saves.save(now=True)

    def node(self, name: str, **changes: Any) -> FleetState:
        return self.fleet.with_node(replace(self.fleet.node(name), **changes))


@pytest.fixture
def keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Keeper:
    k = _Keeper(tmp_path)
    k.rebuilds = []  # type: ignore[attr-defined]

    def counted(fleet: FleetState, base: PersistedState, only: Any = None) -> PersistedState:
        k.rebuilds.append(None if only is None else set(only))  # type: ignore[attr-defined]
        return to_persisted(fleet, base, only)

    monkeypatch.setattr(saves_module, "to_persisted", counted)
    return k


def test_a_decision_that_judged_no_node_rebuilds_no_record_and_writes_nothing(
    keeper: _Keeper,
) -> None:
    before = keeper.saves.persisted
    keeper.decided(keeper.node("a", ssh=replace(keeper.fleet.node("a").ssh, ok_at=T0 + 5)), set())
    assert keeper.rebuilds == []  # type: ignore[attr-defined]
    assert keeper.saves.persisted is before
    assert keeper.store.writes == 0


def test_a_change_in_what_is_not_durable_is_not_rebuilt_nor_written_after_each_result(
    keeper: _Keeper,
) -> None:
    before = keeper.saves.persisted
    for k in range(1, 4):
        ssh = replace(keeper.fleet.node("a").ssh, consecutive=k, failing_since=T0 + 1)
        keeper.decided(keeper.node("a", ssh=ssh, reason=f"sshd silent {k}"), {"a"})
    assert keeper.rebuilds == []  # type: ignore[attr-defined]
    assert keeper.saves.persisted is before
    assert keeper.store.writes == 0


def test_the_next_write_brings_every_lagging_record_up_to_date(keeper: _Keeper) -> None:
    ssh = replace(keeper.fleet.node("a").ssh, consecutive=3, failing_since=T0 + 1)
    keeper.decided(keeper.node("a", ssh=ssh, reason="sshd silent"), {"a"})
    keeper.decided(keeper.node("b", cls=NodeClass.DEGRADED, since=T0 + 9), {"b"})
    assert keeper.store.writes == 1
    on_disk = keeper.store.read()
    assert on_disk == to_persisted(keeper.fleet, PersistedState())
    assert on_disk is not None
    assert on_disk.nodes["a"].consecutive_failures == 3
    assert on_disk.nodes["a"].last_detail == "sshd silent"
    assert on_disk.nodes["b"].node_class == "degraded"


def test_a_power_intent_is_written_with_the_lagging_records_up_to_date(
    keeper: _Keeper,
) -> None:
    from watchdog.state.store import CycleIntent, IntentStep

    ssh = replace(keeper.fleet.node("a").ssh, consecutive=2, failing_since=T0 + 1)
    keeper.decided(keeper.node("a", ssh=ssh), {"a"})
    keeper.saves.record_intent(CycleIntent("a", T0 + 2, IntentStep.OFF_REQUESTED))
    on_disk = keeper.store.read()
    assert on_disk is not None
    assert on_disk.nodes["a"].consecutive_failures == 2
    assert "a" in on_disk.intents


@pytest.mark.parametrize(
    "change",
    [
        {"open_alerts": frozenset({Condition.WEDGED})},
        {"latched": True, "latched_reason": "gave up"},
        {"cycles": (T0 + 3,)},
        {"seen_healthy": True},
    ],
)
def test_a_durable_change_is_written_at_once_when_asked(
    keeper: _Keeper, change: dict[str, Any]
) -> None:
    keeper.decided(keeper.node("a", **change), {"a"})
    assert keeper.store.writes == 1
    assert keeper.store.read() == to_persisted(keeper.fleet, PersistedState())


def test_a_cluster_page_opening_is_a_durable_change_of_its_members_decision(
    keeper: _Keeper,
) -> None:
    cs = replace(keeper.fleet.clusters["c"], open_alerts=frozenset({Condition.DEGRADED}))
    keeper.decided(keeper.fleet.with_cluster(cs), {"a", "b"})
    assert keeper.store.writes == 1
    on_disk = keeper.store.read()
    assert on_disk is not None
    assert on_disk.cluster_alerts == {"c": ("degraded",)}
