"""The safety rules that keep the watchdog from making things worse, one table each.

Serving vetoes power; fresh evidence only (blind and plug-unreachable spells restart a
suspicion); every plug is read before acting when several nodes fail; one page while blind;
pages re-stated after a restart so that they always resolve.
"""

from __future__ import annotations

from dataclasses import replace

from test_policy import (
    CFG,
    DOWN,
    ON,
    T0,
    alerts,
    healthy_fleet,
    make_cfg,
    power,
    r,
    ssh_fail,
)

from watchdog.config import Config, parse_config
from watchdog.core.evidence import (
    FleetState,
    observe_endpoint,
    observe_node,
    observe_plug,
    observe_sweep,
    observe_witness,
    reconcile,
)
from watchdog.core.model import (
    AlertAction,
    AlertStatus,
    Condition,
    FailureKind,
    NodeClass,
    ProbeKind,
    ProbeResult,
)
from watchdog.core.policy import evaluate
from watchdog.core.proof import Proof, proof
from watchdog.state.persist import from_persisted, to_persisted
from watchdog.state.store import PersistedState

REFUSED = FailureKind.REFUSED
CALL = ProbeKind.TOOL_CALL


def served(f: FleetState, t: float, ok: bool = True) -> FleetState:
    return observe_endpoint(f, "spark", r(CALL, None if ok else FailureKind.TIMEOUT), t)


# --------------------------------------------------------------------------- serving vetoes power
def test_sshd_refused_while_the_model_serves_is_ssh_down_and_never_powered() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], REFUSED, serving=True)
    d = evaluate(f, T0 + 61, CFG)
    a = d.fleet.node("a")
    assert a.cls is NodeClass.SSH_DOWN and not power(d)
    assert "tool call" in a.reason
    assert alerts(d) == [("a", Condition.SSH_DOWN, AlertStatus.TRIGGER)]
    page = next(x.event for x in d.actions if isinstance(x, AlertAction))
    assert "MaxStartups" in page.todo and "firewall" in page.todo


def test_a_node_turning_suspect_asks_its_cluster_for_a_tool_call_at_once() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1], serving=None)
    d = evaluate(f, T0 + 1, CFG)
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and d.prove == {"spark"}


def test_no_wedge_verdict_while_the_serving_proof_is_due() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], serving=None)
    d = evaluate(f, T0 + 61, CFG)
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and not power(d)
    assert d.prove == {"spark"} and "prove or rule out serving" in d.fleet.node("a").reason


def test_a_tool_call_that_answered_before_the_ssh_failure_proves_nothing() -> None:
    f = served(healthy_fleet(), T0 + 1)
    f = ssh_fail(f, "a", [T0 + 2, T0 + 30, T0 + 62], serving=None)
    assert proof(f.clusters["spark"], CFG.clusters[0], T0 + 2) is Proof.PENDING


def test_when_serving_stops_the_held_ssh_failures_make_it_a_wedge_again() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], REFUSED, serving=True)
    f = evaluate(f, T0 + 61, CFG).fleet
    f = ssh_fail(f, "a", [T0 + 300], REFUSED, serving=None)
    f = served(f, T0 + 301, ok=False)
    d = evaluate(f, T0 + 301, CFG)
    assert d.fleet.node("a").cls is NodeClass.CYCLING and [p.node for p in power(d)] == ["a"]


def test_with_tp2_one_completion_proves_every_member_serving() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], REFUSED, serving=True)
    f = ssh_fail(f, "b", [T0 + 2, T0 + 31, T0 + 62], REFUSED, serving=None)
    f = served(f, T0 + 40)
    d = evaluate(f, T0 + 62, CFG)
    assert {d.fleet.node(n).cls for n in "ab"} == {NodeClass.SSH_DOWN} and not power(d)


def _no_tool_call(endpoint_host: str) -> Config:
    doc = CFG.model_dump(mode="json")
    doc["clusters"][0]["endpoint"]["tool_call"]["enabled"] = False
    doc["clusters"][0]["endpoint"]["base_url"] = f"http://{endpoint_host}:8000"
    for n in doc["clusters"][0]["nodes"]:
        for k in ("username", "password"):
            n["plug"].pop(k, None)
    return parse_config(_yaml(doc), env={})


def test_with_the_tool_call_disabled_a_worker_is_judged_on_ssh_alone() -> None:
    cfg = _no_tool_call("127.0.0.4")  # the endpoint runs on b; a is a worker
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], serving=None)
    f = observe_endpoint(f, "spark", r(ProbeKind.HEALTH), T0 + 40)
    assert proof(f.clusters["spark"], cfg.clusters[0], T0 + 1, "a") is Proof.UNAVAILABLE
    d = evaluate(f, T0 + 61, cfg)
    assert [p.node for p in power(d)] == ["a"]


def test_with_the_tool_call_disabled_the_endpoint_node_answering_http_is_never_powered() -> None:
    cfg = _no_tool_call("127.0.0.2")  # the endpoint runs on a itself
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], REFUSED, serving=None)
    f = observe_endpoint(f, "spark", r(ProbeKind.HEALTH), T0 + 40)
    d = evaluate(f, T0 + 61, cfg)
    assert d.fleet.node("a").cls is NodeClass.SSH_DOWN and not power(d)
    assert "still answers" in d.fleet.node("a").reason
    # Once /health stops answering too, the held ssh failures make it a wedge again.
    f = observe_endpoint(d.fleet, "spark", r(ProbeKind.HEALTH, FailureKind.TIMEOUT), T0 + 70)
    f = observe_endpoint(f, "spark", r(ProbeKind.MODELS, FailureKind.TIMEOUT), T0 + 70)
    f = ssh_fail(f, "a", [T0 + 71], REFUSED, serving=None)
    assert [p.node for p in power(evaluate(f, T0 + 71, cfg))] == ["a"]


# --------------------------------------------------------------------------- fresh evidence only
def test_a_plug_reading_older_than_the_failure_is_not_enough_to_act() -> None:
    f = healthy_fleet()
    for t in (T0 + 1, T0 + 30, T0 + 61):
        f = observe_node(f, "a", r(ProbeKind.SSH, FailureKind.NO_BANNER), t)
    f = served(f, T0 + 2, ok=False)
    d = evaluate(f, T0 + 61, CFG)  # the only plug reading is from T0, before the failure
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and not power(d)
    assert "reading its plug" in d.fleet.node("a").reason and "a" in d.confirm
    d = evaluate(observe_plug(d.fleet, "a", ON, T0 + 62), T0 + 62, CFG)
    assert [p.node for p in power(d)] == ["a"]


def test_an_ssh_streak_whose_last_probe_is_stale_is_not_acted_on() -> None:
    # Three failures, then no probe result for minutes (the probes stopped coming in): the
    # duration keeps growing, but nothing says the node is still silent now.
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 2, T0 + 3])
    f = observe_plug(f, "a", ON, T0 + 200)
    d = evaluate(f, T0 + 200, CFG)
    assert not power(d) and "stale" in d.fleet.node("a").reason and "a" in d.confirm
    d = evaluate(ssh_fail(d.fleet, "a", [T0 + 201]), T0 + 201, CFG)
    assert [p.node for p in power(d)] == ["a"]


def test_a_plug_unreachable_spell_restarts_the_suspicion_from_zero() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30])
    f = evaluate(observe_plug(f, "a", DOWN, T0 + 31), T0 + 31, CFG).fleet
    f = evaluate(ssh_fail(f, "a", [T0 + 45]), T0 + 45, CFG).fleet
    assert f.node("a").ssh.consecutive == 3 and f.node("a").dark
    d = evaluate(observe_plug(f, "a", ON, T0 + 61), T0 + 61, CFG)  # the plug answers again
    a = d.fleet.node("a")
    assert a.ssh.consecutive == 0 and a.sight_at == T0 + 61 and not power(d)
    # Not judged until probed afresh; then the count starts again at one.
    f = ssh_fail(d.fleet, "a", [T0 + 62], serving=None)
    d = evaluate(f, T0 + 62, CFG)
    assert d.fleet.node("a").ssh.consecutive == 1 and d.fleet.node("a").cls is NodeClass.SUSPECT
    f = ssh_fail(d.fleet, "a", [T0 + 90, T0 + 122])
    assert [p.node for p in power(evaluate(f, T0 + 122, CFG))] == ["a"]


def test_a_failure_whose_probe_began_before_sight_returned_does_not_count() -> None:
    f = replace(healthy_fleet(), nodes={**healthy_fleet().nodes})
    f = f.with_node(replace(f.node("a"), sight_at=T0 + 10))
    late = ProbeResult(ProbeKind.SSH, "t", FailureKind.NO_BANNER, 5.0)  # began at T0 + 6
    assert observe_node(f, "a", late, T0 + 11).node("a").ssh.consecutive == 0


def blind_spell(f: FleetState, start: float, end: float) -> FleetState:
    """The witness goes silent, every node fails on ssh meanwhile, then the witness is back."""
    for t in (start, start + 5, start + 10):
        f = observe_witness(f, r(ProbeKind.WITNESS, FailureKind.TIMEOUT), t)
        for n in "ab":
            f = observe_node(f, n, r(ProbeKind.SSH, FailureKind.CONNECT_TIMEOUT), t)
        f = evaluate(f, t, CFG).fleet
    for t in range(int(start) + 15, int(end), 15):
        for n in "ab":
            f = observe_node(f, n, r(ProbeKind.SSH, FailureKind.CONNECT_TIMEOUT), t)
        f = evaluate(f, t, CFG).fleet
    return observe_witness(f, r(ProbeKind.WITNESS), end)


def test_after_a_blind_spell_no_node_is_judged_on_failures_counted_while_blind() -> None:
    f = blind_spell(healthy_fleet(), T0 + 1, T0 + 120)
    d = evaluate(f, T0 + 120, CFG)
    assert not power(d) and d.fleet.blind_since is None
    for n in "ab":
        st = d.fleet.node(n)
        assert st.ssh.consecutive == 0 and st.cls is NodeClass.BLIND  # held, not judged
    # The first fresh probe starts the count at one: suspect, never straight to a cycle.
    f = ssh_fail(d.fleet, "a", [T0 + 121], FailureKind.CONNECT_TIMEOUT, serving=None)
    f = observe_plug(f, "b", ON, T0 + 121)
    f = observe_node(f, "b", r(ProbeKind.SSH), T0 + 121)
    d = evaluate(f, T0 + 121, CFG)
    assert d.fleet.node("a").cls is NodeClass.SUSPECT and not power(d)
    assert d.fleet.node("b").cls is NodeClass.HEALTHY


# --------------------------------------------------------------------------- sweep
def test_two_nodes_failing_read_every_plug_before_anything_is_decided() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    f = observe_node(f, "b", r(ProbeKind.SSH, FailureKind.NO_BANNER), T0 + 2)  # together
    d = evaluate(f, T0 + 61, CFG)  # b's plug was last read at T0: unknown whether we are blind
    assert d.sweep and not power(d) and "reading every plug" in d.fleet.node("a").reason
    assert alerts(d) == []  # no node page before the sweep says whether the watchdog sees
    f = observe_plug(observe_plug(d.fleet, "a", ON, T0 + 62), "b", ON, T0 + 62)
    d = evaluate(f, T0 + 62, CFG)
    assert not d.sweep and [p.node for p in power(d)] == ["a"]


def _three() -> Config:
    doc = CFG.model_dump(mode="json")
    node = dict(doc["clusters"][0]["nodes"][1], name="c", host="127.0.0.6")
    node["plug"] = {"type": "kasa", "host": "127.0.0.7"}
    doc["clusters"][0]["nodes"].append(node)
    for n in doc["clusters"][0]["nodes"]:
        for k in ("username", "password"):
            n["plug"].pop(k, None)
    return parse_config(_yaml(doc), env={})


def test_a_sweep_once_done_is_not_asked_for_again_and_lone_failures_ask_for_none() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    f = observe_node(f, "b", r(ProbeKind.SSH, FailureKind.NO_BANNER), T0 + 2)
    assert evaluate(f, T0 + 61, CFG).sweep
    assert not evaluate(observe_sweep(f, T0 + 3), T0 + 61, CFG).sweep
    # Another node's sshd answered a probe begun after the burst: the watchdog sees.
    f3 = reconcile(f, {"a": "spark", "b": "spark", "c": "spark"}, T0)
    assert evaluate(f3, T0 + 61, _three()).sweep  # c's plug was never read: sweep
    f3 = observe_node(f3, "c", r(ProbeKind.SSH), T0 + 4)
    assert not evaluate(f3, T0 + 61, _three()).sweep
    # Two nodes failing minutes apart did not turn suspect together: no sweep.
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    f = observe_node(f, "b", r(ProbeKind.SSH, FailureKind.NO_BANNER), T0 + 61)
    assert not evaluate(f, T0 + 61, CFG).sweep


def test_a_sweep_that_finds_every_plug_dark_makes_the_watchdog_blind() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61])
    f = ssh_fail(f, "b", [T0 + 2, T0 + 31, T0 + 62])
    f = observe_plug(observe_plug(f, "a", DOWN, T0 + 63), "b", DOWN, T0 + 63)
    d = evaluate(f, T0 + 63, make_cfg(witnesses=False))
    assert not power(d) and {d.fleet.node(n).cls for n in "ab"} == {NodeClass.BLIND}
    assert alerts(d) == [("watchdog", Condition.BLIND, AlertStatus.TRIGGER)]


# --------------------------------------------------------------------------- one page while blind
def test_while_blind_only_the_blind_page_moves_and_open_pages_stay_open() -> None:
    cfg = make_cfg(witnesses=False)
    f = observe_plug(healthy_fleet(), "a", DOWN, T0 + 1)
    assert alerts(evaluate(f, T0 + 1, cfg)) == []  # one miss is not yet worth a page
    d = evaluate(observe_plug(f, "a", DOWN, T0 + 61), T0 + 61, cfg)
    assert alerts(d) == [("a", Condition.PLUG, AlertStatus.TRIGGER)]
    f = ssh_fail(d.fleet, "a", [T0 + 2, T0 + 31, T0 + 62])
    f = ssh_fail(f, "b", [T0 + 3, T0 + 32, T0 + 63])
    f = observe_plug(observe_plug(f, "a", DOWN, T0 + 64), "b", DOWN, T0 + 64)
    seen: list[tuple[str, Condition, AlertStatus]] = []
    for t in (T0 + 64, T0 + 70, T0 + 80):
        d = evaluate(f, t, cfg)
        seen += alerts(d)
        f = d.fleet
    assert seen == [("watchdog", Condition.BLIND, AlertStatus.TRIGGER)]
    assert f.node("a").open_alerts == {Condition.PLUG}
    # Sight returns: both plugs answer. Every node waits for fresh probes; the first one
    # probed afresh resolves the blind page; nothing else moves but the plug now answering.
    f = observe_plug(observe_plug(f, "a", ON, T0 + 90), "b", ON, T0 + 90)
    d = evaluate(f, T0 + 90, cfg)
    assert alerts(d) == [] and d.fleet.blind_since is None
    seen = []
    for n in "ab":
        f = observe_node(d.fleet, n, r(ProbeKind.SSH), T0 + 91)
        d = evaluate(observe_plug(f, n, ON, T0 + 91), T0 + 91, cfg)
        seen += alerts(d)
    assert seen == [
        ("watchdog", Condition.BLIND, AlertStatus.RESOLVE),
        ("a", Condition.PLUG, AlertStatus.RESOLVE),
    ]


# --------------------------------------------------------------------------- pages always resolve
def test_open_pages_are_restated_after_a_restart_and_resolved_once_the_fault_is_gone() -> None:
    f = healthy_fleet()
    for t in (T0 + 1, T0 + 30, T0 + 61):
        f = observe_endpoint(f, "spark", r(CALL, FailureKind.AUTH), t)
    d = evaluate(f, T0 + 61, CFG)
    assert ("spark", Condition.MISCONFIGURED, AlertStatus.TRIGGER) in alerts(d)
    saved = to_persisted(d.fleet, PersistedState())
    assert saved.cluster_alerts == {"spark": ("misconfigured",)}
    # A new process; the key was fixed meanwhile.
    f = from_persisted(saved, {"a": "spark", "b": "spark"}, T0 + 500)
    d = evaluate(f, T0 + 500, CFG)
    restated = [x.event for x in d.actions if isinstance(x, AlertAction)]
    assert [(e.node, e.condition, e.restated) for e in restated] == [
        ("spark", Condition.MISCONFIGURED, True)
    ]
    f = d.fleet
    for n in "ab":
        f = observe_plug(observe_node(f, n, r(ProbeKind.SSH), T0 + 501), n, ON, T0 + 501)
    d = evaluate(f, T0 + 501, CFG)
    assert alerts(d) == []  # the endpoint has not answered since the restart: held
    for p in (ProbeKind.HEALTH, ProbeKind.MODELS, CALL):
        f = observe_endpoint(d.fleet, "spark", r(p), T0 + 502)
        d = evaluate(f, T0 + 502, CFG)
        f = d.fleet
    assert ("spark", Condition.MISCONFIGURED, AlertStatus.RESOLVE) in alerts(d)


def test_a_fault_that_persists_across_a_restart_is_not_paged_twice() -> None:
    f = ssh_fail(healthy_fleet(), "a", [T0 + 1, T0 + 30, T0 + 61], REFUSED, serving=True)
    d = evaluate(f, T0 + 61, CFG)
    assert alerts(d) == [("a", Condition.SSH_DOWN, AlertStatus.TRIGGER)]
    f = from_persisted(
        to_persisted(d.fleet, PersistedState()), {"a": "spark", "b": "spark"}, T0 + 500
    )
    d = evaluate(f, T0 + 500, CFG)
    assert [
        (e.event.condition, e.event.restated) for e in d.actions if isinstance(e, AlertAction)
    ] == [(Condition.SSH_DOWN, True)]
    # The new process probes afresh, evaluating after every result as the engine does.
    f, seen = d.fleet, []
    steps = [(n, T0 + 501) for n in "ab"] + [("a", T0 + 530), ("a", T0 + 561)]
    for p in (ProbeKind.HEALTH, ProbeKind.MODELS):
        f = observe_endpoint(f, "spark", r(p), T0 + 501)
    for node, t in steps:
        if node == "a":
            f = ssh_fail(f, "a", [t], REFUSED, serving=True)
        else:
            f = observe_plug(observe_node(f, "b", r(ProbeKind.SSH), t), "b", ON, t)
        d = evaluate(f, t, CFG)
        seen += alerts(d)
        f = d.fleet
    assert f.node("a").cls is NodeClass.SSH_DOWN and seen == []


def _yaml(doc: object) -> str:
    import yaml

    return yaml.safe_dump(doc)


def test_a_blind_page_open_at_a_restart_resolves_only_once_a_node_was_probed_afresh() -> None:
    f = from_persisted(
        PersistedState(fleet_alerts=("blind",)), {"a": "spark", "b": "spark"}, T0 + 500
    )
    d = evaluate(f, T0 + 500, CFG)
    assert [(a.event.condition, a.event.restated) for a in d.actions] == [(Condition.BLIND, True)]
    assert alerts(evaluate(d.fleet, T0 + 501, CFG)) == []  # nothing seen yet: the page stays
    f = observe_plug(observe_node(d.fleet, "a", r(ProbeKind.SSH), T0 + 502), "a", ON, T0 + 502)
    assert alerts(evaluate(f, T0 + 502, CFG)) == [
        ("watchdog", Condition.BLIND, AlertStatus.RESOLVE)
    ]
