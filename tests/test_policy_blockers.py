"""What holds a power action back is a typed "blocked by" on the verdict and the node, and the
class-to-condition bridge is an explicit table: no logic reads a reason's words."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from test_policy import (
    CFG,
    ON,
    T0,
    finished,
    healthy_fleet,
    make_cfg,
    power,
    r,
    ssh_fail,
    wedge,
)

from watchdog.core.evidence import observe_node, observe_plug, observe_witness
from watchdog.core.model import (
    AlertAction,
    AlertEvent,
    AlertStatus,
    Blocker,
    Condition,
    FailureKind,
    NodeClass,
    PlugReading,
    ProbeKind,
)
from watchdog.core.paging import CLASS_CONDITION
from watchdog.core.policy import Decision, evaluate

REFUSED_CREDENTIALS = PlugReading(
    reachable=False, failure=FailureKind.PLUG_AUTH, detail="credentials refused"
)


def _wedged_page(d: Decision, node: str) -> AlertEvent:
    [event] = [
        a.event
        for a in d.actions
        if isinstance(a, AlertAction)
        and a.event.node == node
        and a.event.condition is Condition.WEDGED
        and a.event.status is AlertStatus.TRIGGER
    ]
    return event


def _witness_silent() -> tuple[Decision, str]:
    f = observe_witness(healthy_fleet(), r(ProbeKind.WITNESS, FailureKind.TIMEOUT), T0 + 50)
    return wedge(f), "a"


def _plug_refuses_credentials() -> tuple[Decision, str]:
    return wedge(observe_plug(healthy_fleet(), "a", REFUSED_CREDENTIALS, T0 + 1)), "a"


BACKOFF_CFG = make_cfg(backoff="20m", boot_timeout="1m", serve_timeout="2m")


def _in_back_off() -> tuple[Decision, str]:
    f = finished(wedge(healthy_fleet(), cfg=BACKOFF_CFG).fleet, "a", T0 + 100)
    return evaluate(ssh_fail(f, "a", [T0 + 200]), T0 + 200, BACKOFF_CFG), "a"


def _another_in_flight() -> tuple[Decision, str]:
    f = ssh_fail(healthy_fleet(), "b", [T0 + 1, T0 + 30, T0 + 61])
    f = ssh_fail(f, "a", [T0 + 2, T0 + 31, T0 + 62])
    return evaluate(f, T0 + 62, CFG), "a"


def _fleet_cap() -> tuple[Decision, str]:
    cfg = make_cfg(fleet_max_cycles=1)
    f = finished(wedge(healthy_fleet(), cfg=cfg).fleet, "a", T0 + 100)
    f = ssh_fail(f, "b", [T0 + 101, T0 + 130, T0 + 170])
    return evaluate(f, T0 + 170, cfg), "b"


def _sweep_due() -> tuple[Decision, str]:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    # b fails together with a, and its plug was last read before: is the watchdog blind?
    f = observe_node(f, "b", r(ProbeKind.SSH, FailureKind.NO_BANNER), T0 + 2)
    return evaluate(f, T0 + 61, CFG), "a"


@pytest.mark.parametrize(
    ("situation", "blocker", "words"),
    [
        (_witness_silent, Blocker.WITNESS, "cannot act: a witness is not answering"),
        (_plug_refuses_credentials, Blocker.PLUG, "cannot act: plug unusable"),
        (_in_back_off, Blocker.BACKOFF, "back-off: next power cycle allowed in 1062s"),
        (_another_in_flight, Blocker.IN_FLIGHT, "waiting: another power action is in flight"),
        (_fleet_cap, Blocker.FLEET_CAP, "fleet cap: 1 cycles within 3600s"),
        (
            _sweep_due,
            Blocker.SWEEP,
            "waiting: reading every plug first (two or more nodes fail on ssh)",
        ),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_held_back_power_action_names_its_blocker_and_the_reason_says_it_in_words(
    situation: Callable[[], tuple[Decision, str]], blocker: Blocker, words: str
) -> None:
    d, node = situation()
    st = d.fleet.node(node)
    assert node not in [p.node for p in power(d)]
    assert st.blocked is not None and st.blocked.by is blocker
    assert st.blocked.text == words
    assert st.reason.endswith(f"; {words}")


@pytest.mark.parametrize(
    "situation", [_plug_refuses_credentials, _in_back_off, _another_in_flight, _fleet_cap]
)
def test_the_wedged_page_says_what_holds_the_cycle_back(
    situation: Callable[[], tuple[Decision, str]],
) -> None:
    d, node = situation()
    st = d.fleet.node(node)
    assert st.cls is NodeClass.WEDGED and st.blocked is not None
    page = _wedged_page(d, node)
    assert page.done == st.blocked.text
    assert page.seen == st.reason


def test_a_wedge_nothing_holds_back_has_no_blocker_and_its_page_says_a_cycle_is_pending() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    f = observe_plug(f, "a", REFUSED_CREDENTIALS, T0 + 61)
    d = evaluate(f, T0 + 61, CFG)
    assert d.fleet.node("a").blocked is not None  # the plug refuses: held back
    f = observe_plug(d.fleet, "a", ON, T0 + 62)
    d = evaluate(ssh_fail(f, "a", [T0 + 62]), T0 + 62, CFG)
    # The plug answers again: the cycle starts, and nothing is said to hold it back any more.
    assert [p.node for p in power(d)] == ["a"]
    assert d.fleet.node("a").cls is NodeClass.CYCLING
    assert d.fleet.node("a").blocked is None


def test_a_node_held_until_it_is_probed_afresh_keeps_its_blocker_with_its_reason() -> None:
    d, _ = _in_back_off()
    before = d.fleet.node("a")
    assert before.blocked is not None
    # Sight of the node returned just now: it is not judged again before a fresh probe.
    f = d.fleet.with_node(replace(before, sight_at=T0 + 201))
    d = evaluate(f, T0 + 202, BACKOFF_CFG)
    after = d.fleet.node("a")
    assert not power(d)
    assert (after.cls, after.reason, after.blocked) == (before.cls, before.reason, before.blocked)


def test_every_class_paged_as_itself_pages_the_condition_the_table_names() -> None:
    # A bridge between the two enums by their names would break silently on a rename.
    assert set(CLASS_CONDITION) <= set(NodeClass)
    assert len(set(CLASS_CONDITION.values())) == len(CLASS_CONDITION)  # one class each
    off = PlugReading(reachable=True, is_on=False)
    d = evaluate(observe_plug(healthy_fleet(), "a", off, T0 + 1), T0 + 1, CFG)
    assert d.fleet.node("a").cls is NodeClass.POWERED_OFF
    pages = {(a.event.node, a.event.condition) for a in d.actions if isinstance(a, AlertAction)}
    assert ("a", CLASS_CONDITION[NodeClass.POWERED_OFF]) in pages
