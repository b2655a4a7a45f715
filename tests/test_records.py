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
from fixtures_records import clusters, evidence, fleets, nodes
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core import records
from watchdog.core.evidence import ClusterState, Evidence, FleetState, NodeState

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
