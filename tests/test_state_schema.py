"""The stored state's schema: files written earlier still load, anything off it is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType

import pytest

from watchdog.core.errors import StoreError
from watchdog.state.store import (
    SCHEMA_VERSION,
    CycleIntent,
    IntentStep,
    NodeRecord,
    PersistedState,
    SchemaError,
    Store,
    from_json,
    to_json,
)

# Written by the hand-checked loader's writer (before the schema moved to pydantic): every
# field set, unicode and escapes in the text, a node that is no longer configured.
EARLIER_FILE = Path(__file__).parent / "data" / "state-v1.json"


def earlier_state() -> PersistedState:
    """The value ``EARLIER_FILE`` was written from."""
    full = NodeRecord(
        node_class="given_up",
        since=1700000100.5,
        consecutive_failures=4,
        failing_since=1700000000.25,
        seen_healthy=True,
        cycles=(1699990000.0, 1699995000.5),
        latched=True,
        latched_reason="budget spent: 3 cycles in 6h",
        latched_at=1700000100.5,
        paused=True,
        paused_until=1700086400.0,
        last_failure="no_banner",
        last_detail='TCP accepted, no banner in 5s — ünïcode ✓ "quoted" \\ back',
        last_cycle_at=1699995000.5,
        boot_started_at=1699995090.0,
        open_alerts=("given_up", "wedged"),
    )
    return PersistedState(
        saved_at=1700000123.75,
        nodes={
            "spark-1": full,
            "spark-2": NodeRecord(),
            "spark-3": NodeRecord(node_class="healthy", since=3.0, paused=True, cycles=(-5.0,)),
            "no-longer-configured": NodeRecord(node_class="wedged"),
        },
        intents={
            "spark-1": CycleIntent("spark-1", 1700000050.0, IntentStep.OFF, manual=True),
            "spark-3": CycleIntent("spark-3", 1700000060.0, IntentStep.ON_REQUESTED),
        },
        fleet_cycles=(("spark-1", 1699990000.0), ("spark-1", 1699995000.5)),
        cluster_alerts={"spark": ("endpoint_down",), "other": ("a", "b")},
        fleet_alerts=("blind", "overloaded"),
    )


def test_a_file_written_by_the_earlier_writer_loads_and_is_written_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    store.path.write_bytes(EARLIER_FILE.read_bytes())
    result = store.load()
    assert result.problem is None
    assert result.state == earlier_state()
    store.save(result.state)
    assert store.path.read_bytes() == EARLIER_FILE.read_bytes()


def _with(**changes: object) -> dict[str, object]:
    """A valid state's JSON with the given top-level keys replaced (None: removed)."""
    base = to_json(earlier_state())
    for key, value in changes.items():
        if value is None:
            del base[key]
        else:
            base[key] = value
    return base


def _node(**fields: object) -> dict[str, object]:
    return _with(nodes={"n": {"node_class": "healthy", **fields}})


# Each: a file one step off the schema, and the key path the error must name.
NOT_THE_SCHEMA = {
    "a string for an integer": (_node(consecutive_failures="3"), "nodes.n.consecutive_failures"),
    "a float for an integer": (_node(consecutive_failures=3.0), "nodes.n.consecutive_failures"),
    "true for an integer": (_node(consecutive_failures=True), "nodes.n.consecutive_failures"),
    "1 for a boolean": (_node(seen_healthy=1), "nodes.n.seen_healthy"),
    "true for a number": (_node(since=True), "nodes.n.since"),
    "a string for a number": (_node(since="1.5"), "nodes.n.since"),
    "a number beyond 1e12": (_node(since=1e13), "nodes.n.since"),
    "a time below -1e12 in a list": (_node(cycles=[1.0, -1e13]), "nodes.n.cycles[1]"),
    "an integer beyond 1e12": (_node(consecutive_failures=10**13), "consecutive_failures"),
    "null for a string": (_node(node_class=None), "nodes.n.node_class"),
    "a string for a list": (_node(open_alerts="wedged"), "nodes.n.open_alerts"),
    "an unknown record key": (_node(mood="grumpy"), "nodes.n.mood"),
    "an unknown top-level key": (_with(mood="grumpy"), "mood"),
    "a record that is a list": (_with(nodes={"n": []}), "nodes.n"),
    "a fleet cycle of three items": (_with(fleet_cycles=[["n", 1.0, 2.0]]), "fleet_cycles[0]"),
    "a fleet cycle without its time": (_with(fleet_cycles=[["n"]]), "fleet_cycles[0]"),
    "a number among the alerts": (_with(fleet_alerts=[1]), "fleet_alerts[0]"),
    "a cluster's alerts as a string": (_with(cluster_alerts={"c": "down"}), "cluster_alerts.c"),
    "an intent without its step": (
        _with(intents={"n": {"node": "n", "started_at": 1.0}}),
        "intents.n.step",
    ),
    "an intent filed under another node": (
        _with(intents={"n": {"node": "m", "started_at": 1.0, "step": "off"}}),
        "intents.n.node",
    ),
    "no version": (_with(version=None), "schema version None"),
    "the version as a string": (_with(version="1"), "version"),
}


@pytest.mark.parametrize("case", list(NOT_THE_SCHEMA))
def test_it_refuses_a_state_one_step_off_the_schema_naming_the_key(case: str) -> None:
    data, where = NOT_THE_SCHEMA[case]
    with pytest.raises(SchemaError, match=re.escape(where)):
        from_json(json.loads(json.dumps(data)))


def test_it_accepts_integers_for_times_and_lists_for_tuples() -> None:
    state = from_json(_node(since=5, cycles=[1, 2.5], failing_since=None))
    assert state.nodes["n"].since == 5.0
    assert state.nodes["n"].cycles == (1.0, 2.5)


def test_its_schema_errors_name_keys_but_never_quote_values_and_stay_short() -> None:
    secret = "hunter2-" * 2000
    data = {
        "version": SCHEMA_VERSION,
        "nodes": {"k" * 10_000: {"since": secret, "node_class": secret}},
        "saved_at": secret,
        "fleet_alerts": [secret, 1, 2, 3],
    }
    with pytest.raises(SchemaError) as info:
        from_json(data)
    message = str(info.value)
    assert "hunter2" not in message
    assert "saved_at" in message and "nodes.kkkk" in message
    assert "more" in message  # the rest is counted, not listed
    assert len(message) <= 600
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_wrong_version_is_named_first_among_the_problems() -> None:
    with pytest.raises(SchemaError, match=r"^version: schema version 2 is not 1"):
        from_json({"mood": 1, "version": 2})


def test_it_writes_any_mapping_and_lists_given_for_tuples(tmp_path: Path) -> None:
    state = PersistedState(
        nodes=MappingProxyType({"n": NodeRecord(since=5, cycles=[1.0, 2.0])}),
        intents=MappingProxyType({"n": CycleIntent("n", 1.0, IntentStep.OFF)}),
        cluster_alerts=MappingProxyType({"c": ("endpoint_down",)}),
        fleet_cycles=(("n", 1.0),),
    )
    store = Store(tmp_path)
    store.save(state)
    loaded = store.load().state
    assert loaded.nodes == {"n": NodeRecord(since=5.0, cycles=(1.0, 2.0))}
    assert loaded.intents == dict(state.intents)
    assert loaded.cluster_alerts == {"c": ("endpoint_down",)}


NAN = float("nan")
NOT_WRITABLE = {
    "saved_at": PersistedState(saved_at=NAN),
    "a record's time": PersistedState(nodes={"n": NodeRecord(since=NAN)}),
    "a record's optional time": PersistedState(nodes={"n": NodeRecord(paused_until=-NAN)}),
    "a power cycle": PersistedState(nodes={"n": NodeRecord(cycles=(1.0, float("inf")))}),
    "an intent": PersistedState(intents={"n": CycleIntent("n", NAN, IntentStep.OFF)}),
    "a fleet cycle": PersistedState(fleet_cycles=(("n", float("-inf")),)),
}


@pytest.mark.parametrize("where", list(NOT_WRITABLE))
def test_a_state_holding_a_non_finite_number_is_refused_and_the_file_kept(
    tmp_path: Path, where: str
) -> None:
    store = Store(tmp_path)
    store.save(earlier_state())
    with pytest.raises(StoreError, match="cannot save state"):
        store.save(NOT_WRITABLE[where])
    assert store.load().state == earlier_state()
