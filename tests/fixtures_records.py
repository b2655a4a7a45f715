"""Hypothesis strategies for the policy's records (Evidence, NodeState, ClusterState,
FleetState): every field drawn, so that a property sees every kind of value a record holds."""

from __future__ import annotations

from hypothesis import strategies as st

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
