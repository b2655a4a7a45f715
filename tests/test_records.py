"""The fast record copy (``watchdog.core.records.replace``) is ``dataclasses.replace``.

For every hot record of the policy, random field changes give a copy equal to what
``dataclasses.replace`` gives, of the same class, never the original; a field the class does
not have is an error, as it is for ``dataclasses.replace``; a class the fast copy cannot
handle (one with ``__post_init__``, not slotted, with a field left out of ``__init__``) is
copied by ``dataclasses.replace`` itself, so nothing it checks is skipped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import records
from watchdog.core.evidence import ClusterState, Evidence, FleetState, NodeState
from watchdog.core.model import (
    ActionKind,
    Blocked,
    Blocker,
    Condition,
    FailureKind,
    NodeClass,
    PlugReading,
    ProbeKind,
)

texts = st.text(max_size=8)
times = st.floats(min_value=0, max_value=2e9, allow_nan=False)
maybe_times = st.none() | times
evidence = st.builds(
    Evidence,
    consecutive=st.integers(0, 10),
    failing_since=maybe_times,
    last_failure=st.none() | st.sampled_from(FailureKind),
    last_detail=texts,
    last_hint=texts,
    last_at=maybe_times,
    last_started=maybe_times,
    ok_at=maybe_times,
)
plugs = st.none() | st.builds(
    PlugReading,
    reachable=st.booleans(),
    is_on=st.none() | st.booleans(),
    watts=st.none() | st.floats(0, 2000),
    failure=st.none() | st.sampled_from(FailureKind),
    detail=texts,
)
conditions = st.frozensets(st.sampled_from(Condition), max_size=3)
nodes = st.builds(
    NodeState,
    name=st.sampled_from(["a", "b"]),
    cluster=st.sampled_from(["c", "d"]),
    cls=st.sampled_from(NodeClass),
    since=times,
    reason=texts,
    blocked=st.none() | st.builds(Blocked, by=st.sampled_from(Blocker), text=texts),
    first_seen=times,
    seen_healthy=st.booleans(),
    ssh=evidence,
    ping=evidence,
    plug=plugs,
    plug_at=maybe_times,
    plug_misses=st.integers(0, 5),
    plug_missing_since=maybe_times,
    dark=st.booleans(),
    sight_at=maybe_times,
    cycles=st.lists(times, max_size=3).map(tuple),
    cycling_since=maybe_times,
    power_kind=st.none() | st.sampled_from(ActionKind),
    power_manual=st.booleans(),
    boot_started_at=maybe_times,
    restore_on=st.booleans(),
    cycle_failed=st.booleans(),
    latched=st.booleans(),
    latched_reason=texts,
    paused=st.booleans(),
    paused_until=maybe_times,
    open_alerts=conditions,
)
clusters = st.builds(
    ClusterState,
    name=st.sampled_from(["c", "d"]),
    probes=st.dictionaries(st.sampled_from(ProbeKind), evidence, max_size=3),
    open_alerts=conditions,
    fresh_from=times,
)
fleets = st.builds(
    FleetState,
    nodes=st.dictionaries(st.sampled_from(["a", "b"]), nodes, max_size=2),
    clusters=st.dictionaries(st.sampled_from(["c", "d"]), clusters, max_size=2),
    witness=evidence,
    link_up=st.none() | st.booleans(),
    fleet_cycles=st.lists(st.tuples(st.sampled_from(["a", "b"]), times), max_size=3).map(tuple),
    blind_alert_open=st.booleans(),
    overload_alert_open=st.booleans(),
    blind_since=maybe_times,
    restate=st.booleans(),
    swept_at=maybe_times,
    banner_at=maybe_times,
)
HOT = {Evidence: evidence, NodeState: nodes, ClusterState: clusters, FleetState: fleets}


@st.composite
def copies(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    """A record and some of another record's field values, as changes."""
    cls = draw(st.sampled_from(list(HOT)))
    base, other = draw(HOT[cls]), draw(HOT[cls])
    names = [f.name for f in dataclasses.fields(cls)]
    changed = draw(st.lists(st.sampled_from(names), unique=True))
    return base, {n: getattr(other, n) for n in changed}


@settings(max_examples=300, deadline=None)
@given(copies())
def test_the_fast_copy_equals_dataclasses_replace_for_random_changes(
    case: tuple[Any, dict[str, Any]],
) -> None:
    base, changes = case
    fast = records.replace(base, **changes)
    slow = dataclasses.replace(base, **changes)
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast is not base
    for f in dataclasses.fields(base):
        assert getattr(fast, f.name) is getattr(slow, f.name)  # the same values, not copies


@pytest.mark.parametrize("cls", list(HOT))
def test_every_hot_record_gets_a_generated_copy_not_the_fallback(cls: type) -> None:
    assert records.copier(cls) is not dataclasses.replace


def test_a_field_the_record_does_not_have_is_an_error_as_with_dataclasses_replace() -> None:
    ev = Evidence()
    with pytest.raises(TypeError):
        dataclasses.replace(ev, consecutiv=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="consecutiv"):
        records.replace(ev, consecutiv=1)  # type: ignore[call-arg]


def test_changes_are_given_by_name_only() -> None:
    with pytest.raises(TypeError):
        records.copier(Evidence)(Evidence(), 1)


def test_the_copy_of_a_frozen_record_stays_frozen() -> None:
    ev = records.replace(Evidence(), consecutive=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.consecutive = 3  # type: ignore[misc]


def test_a_copier_refuses_a_record_of_another_class() -> None:
    with pytest.raises(TypeError, match="not Evidence"):
        records.copier(Evidence)(ClusterState(name="c"))


@dataclass(frozen=True, slots=True)
class _Checked:
    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


@dataclass(frozen=True)
class _Unslotted:
    x: int = 0


@dataclass(frozen=True, slots=True)
class _Derived:
    x: int = 0
    cached: int = field(init=False, default=0)


def test_a_record_with_post_init_is_copied_by_dataclasses_replace_so_its_check_runs() -> None:
    assert records.copier(_Checked) is dataclasses.replace
    with pytest.raises(ValueError, match="low above high"):
        records.replace(_Checked(1, 2), low=3)


def test_records_the_fast_copy_cannot_handle_fall_back_to_dataclasses_replace() -> None:
    assert records.copier(_Unslotted) is dataclasses.replace
    assert records.copier(_Derived) is dataclasses.replace
    assert records.replace(_Unslotted(), x=2) == _Unslotted(2)
    with pytest.raises(ValueError, match="init=False"):
        records.replace(_Derived(), cached=1)  # type: ignore[call-arg]
