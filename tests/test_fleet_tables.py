"""The fleet's node and cluster tables are persistent maps that compare by content.

Replacing a record gives a new fleet and leaves the earlier one as it was; a table given as a
plain ``dict`` (as a test may build it) is read as it is and becomes a map at its first
update; two fleets are equal exactly when their records are, whichever form their tables
take, as they were when every table was a ``dict``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from fixtures_records import fleets, nodes
from hypothesis import given, settings
from immutables import Map

from watchdog.core.evidence import FleetState, initial_fleet
from watchdog.core.model import NodeClass

T0 = 1_000_000.0


def _as_dicts(f: FleetState) -> FleetState:
    return replace(f, nodes=dict(f.nodes), clusters=dict(f.clusters))


def _as_maps(f: FleetState) -> FleetState:
    return replace(f, nodes=Map(f.nodes), clusters=Map(f.clusters))


def test_a_new_fleet_keeps_its_tables_as_persistent_maps() -> None:
    f = initial_fleet({"a": "c", "b": "c"}, T0)
    assert isinstance(f.nodes, Map)
    assert isinstance(f.clusters, Map)
    g = f.with_node(replace(f.node("a"), cls=NodeClass.HEALTHY))
    assert isinstance(g.nodes, Map)


def test_replacing_a_node_leaves_the_earlier_fleet_as_it_was() -> None:
    f = initial_fleet({"a": "c", "b": "c"}, T0)
    a = f.node("a")
    g = f.with_node(replace(a, cls=NodeClass.WEDGED))
    assert f.node("a") is a
    assert g.node("a").cls is NodeClass.WEDGED
    assert g.node("b") is f.node("b")
    assert f != g


def test_a_dict_table_becomes_a_map_at_its_first_update() -> None:
    f = _as_dicts(initial_fleet({"a": "c", "b": "c"}, T0))
    g = f.with_node(replace(f.node("a"), cls=NodeClass.WEDGED))
    assert isinstance(g.nodes, Map)
    assert dict(g.nodes) == {**f.nodes, "a": g.node("a")}
    h = f.with_nodes({"b": replace(f.node("b"), reason="x")})
    assert isinstance(h.nodes, Map)
    assert h.node("b").reason == "x"
    assert h.node("a") is f.node("a")


def test_updating_a_fleet_with_nothing_or_the_same_record_gives_the_same_fleet() -> None:
    f = initial_fleet({"a": "c"}, T0)
    assert f.with_nodes({}) is f
    assert f.with_node(f.node("a")) is f
    assert f.with_cluster(replace(f.clusters["c"])) is f


@settings(max_examples=200, deadline=None)
@given(fleets, fleets)
def test_fleets_compare_by_content_whichever_form_their_tables_take(
    a: FleetState, b: FleetState
) -> None:
    expected = _as_dicts(a) == _as_dicts(b)  # the dataclass equality of dict tables
    for x in (_as_dicts(a), _as_maps(a)):
        for y in (_as_dicts(b), _as_maps(b)):
            assert (x == y) is expected
            assert (x != y) is not expected
    assert _as_dicts(a) == _as_maps(a)


@settings(max_examples=100, deadline=None)
@given(fleets, nodes)
def test_one_record_changed_makes_fleets_unequal_in_either_form(
    f: FleetState, node: object
) -> None:
    assert isinstance(f, FleetState)
    changed = f.with_node(node)  # type: ignore[arg-type]
    same = f.nodes.get(node.name) == node  # type: ignore[attr-defined]
    assert (changed == f) is same
    assert (_as_dicts(changed) == _as_maps(f)) is same


def test_a_fleet_is_not_hashable_as_before() -> None:
    with pytest.raises(TypeError):
        hash(initial_fleet({"a": "c"}, T0))
