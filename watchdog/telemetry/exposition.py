"""Prometheus metrics: what the watchdog counts as it runs, and what it reads at scrape time.

Imported only when the metrics endpoint is on (``metrics.listen``): the hooks in
:mod:`watchdog.telemetry.metrics` count into this module once it is enabled.

Two halves. Events (probe durations and failures, power actions, pages) are counted as they
happen through :func:`probe_observed`, :func:`power_done`, :func:`page_sent` and
:func:`page_failed`, into the process-wide :data:`EVENTS` registry. Everything else — node
classes, failure streaks, budgets, blindness, tool-call freshness, the scheduler's last
tick — is read from the engine's current state when scraped, by :class:`FleetCollector`, so
it cannot drift from what the daemon believes.

Conventions: the ``cluster_watchdog_`` prefix, base units (seconds) in the names, ``_total``
on counters, and labels taken only from closed sets (enums) or the config (node, cluster and
channel names) — never from remote text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from watchdog import __version__
from watchdog.config import Config
from watchdog.core.evidence import FleetState
from watchdog.core.model import (
    ActionKind,
    AlertEvent,
    AlertStatus,
    Condition,
    NodeClass,
    ProbeKind,
    ProbeResult,
)

PREFIX = "cluster_watchdog"

# No ``*_created`` series: they double every counter's series and no rule here needs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

EVENTS = CollectorRegistry(auto_describe=True)

PROBE_SECONDS = Histogram(
    f"{PREFIX}_probe_duration_seconds",
    "How long one probe took, by probe kind.",
    ["probe"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=EVENTS,
)
PROBE_FAILURES = Counter(
    f"{PREFIX}_probe_failures",
    "Failed probes, by probe kind and failure kind.",
    ["probe", "failure"],
    registry=EVENTS,
)
POWER_ACTIONS = Counter(
    f"{PREFIX}_power_actions",
    "Power actions carried out, by node, kind (power_cycle, power_on) and outcome (ok, failed).",
    ["node", "kind", "outcome"],
    registry=EVENTS,
)
PAGES_SENT = Counter(
    f"{PREFIX}_pages_sent",
    "Alerts delivered, by channel, condition and status (trigger, resolve).",
    ["channel", "condition", "status"],
    registry=EVENTS,
)
PAGES_FAILED = Counter(
    f"{PREFIX}_pages_failed",
    "Alerts not delivered (given up or rate limited), by channel, condition and status.",
    ["channel", "condition", "status"],
    registry=EVENTS,
)
POWER_KINDS = (ActionKind.POWER_CYCLE, ActionKind.POWER_ON)
OUTCOMES = ("ok", "failed")


# --------------------------------------------------------------------------- hooks
def probe_observed(result: ProbeResult) -> None:
    PROBE_SECONDS.labels(result.probe.value).observe(max(0.0, result.latency))
    if result.failure is not None:
        PROBE_FAILURES.labels(result.probe.value, result.failure.value).inc()


def power_done(node: str, kind: ActionKind, ok: bool) -> None:
    POWER_ACTIONS.labels(node, kind.value, OUTCOMES[0] if ok else OUTCOMES[1]).inc()


def page_sent(channel: str, event: AlertEvent) -> None:
    PAGES_SENT.labels(channel, event.condition.value, event.status.value).inc()


def page_failed(channel: str, event: AlertEvent) -> None:
    PAGES_FAILED.labels(channel, event.condition.value, event.status.value).inc()


def prime(cfg: Config, channels: list[str]) -> None:
    """Create every configured series at zero, so a rate or increase sees its first event."""
    for _, node in cfg.nodes():
        for kind in POWER_KINDS:
            for outcome in OUTCOMES:
                POWER_ACTIONS.labels(node.name, kind.value, outcome)
    for channel in channels:
        for condition in Condition:
            for status in AlertStatus:
                PAGES_SENT.labels(channel, condition.value, status.value)
                PAGES_FAILED.labels(channel, condition.value, status.value)
    for probe in ProbeKind:
        PROBE_SECONDS.labels(probe.value)


# --------------------------------------------------------------------------- scrape-time state
class EngineView(Protocol):
    """What :class:`FleetCollector` reads from the engine (``watchdog.engine.engine.Engine``)."""

    @property
    def cfg(self) -> Config: ...
    @property
    def last_tick(self) -> float: ...
    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def state(self) -> FleetState: ...


class FleetCollector(Collector):
    """Gauges read from the engine's state and config each time Prometheus scrapes."""

    def __init__(self, engine: EngineView, loop_lag: Callable[[], float]) -> None:
        self._engine = engine
        self._loop_lag = loop_lag

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        cfg, fleet, now = engine.cfg, engine.state, engine.clock()
        p = cfg.policy

        info = InfoMetricFamily(f"{PREFIX}_build", "The watchdog's version.")
        info.add_metric([], {"version": __version__})
        yield info

        cls = GaugeMetricFamily(
            f"{PREFIX}_node_class",
            "1 for the class the node is in now, 0 for every other class.",
            labels=["cluster", "node", "class"],
        )
        streak = GaugeMetricFamily(
            f"{PREFIX}_consecutive_failures",
            "Consecutive failures of a node's probe (ssh, ping).",
            labels=["cluster", "node", "probe"],
        )
        budget = GaugeMetricFamily(
            f"{PREFIX}_power_cycles_remaining",
            "Power cycles the node may still get within policy.cycle_window.",
            labels=["cluster", "node"],
        )
        latched = GaugeMetricFamily(
            f"{PREFIX}_node_latched",
            "1 while the watchdog has given up on the node (until an operator clears it).",
            labels=["cluster", "node"],
        )
        for name in sorted(fleet.nodes):
            st = fleet.nodes[name]
            for c in NodeClass:
                cls.add_metric([st.cluster, name, c.value], 1.0 if st.cls is c else 0.0)
            streak.add_metric([st.cluster, name, ProbeKind.SSH.value], st.ssh.consecutive)
            streak.add_metric([st.cluster, name, ProbeKind.PING.value], st.ping.consecutive)
            recent = sum(1 for t in st.cycles if now - t < p.cycle_window)
            budget.add_metric([st.cluster, name], max(0, p.max_cycles - recent))
            latched.add_metric([st.cluster, name], 1.0 if st.latched else 0.0)
        yield from (cls, streak, budget, latched)

        endpoint = GaugeMetricFamily(
            f"{PREFIX}_endpoint_consecutive_failures",
            "Consecutive failures of a cluster's endpoint probe.",
            labels=["cluster", "probe"],
        )
        tool_ok = GaugeMetricFamily(
            f"{PREFIX}_last_tool_call_success_timestamp_seconds",
            "Unix time of the cluster's last successful tool call (0: none since start).",
            labels=["cluster"],
        )
        for cname in sorted(fleet.clusters):
            cs = fleet.clusters[cname]
            for probe in ProbeKind:
                if probe.is_endpoint:
                    endpoint.add_metric([cname, probe.value], cs.evidence(probe).consecutive)
            ok_at = cs.evidence(ProbeKind.TOOL_CALL).ok_at
            tool_ok.add_metric([cname], ok_at or 0.0)
        yield from (endpoint, tool_ok)

        blind = any(st.cls is NodeClass.BLIND for st in fleet.nodes.values())
        yield GaugeMetricFamily(
            f"{PREFIX}_blind",
            "1 while the watchdog cannot see the cluster and takes no action.",
            value=1.0 if blind else 0.0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_witness_consecutive_failures",
            "Consecutive failures of the reference targets (witnesses).",
            value=fleet.witness.consecutive,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_scheduler_last_tick_timestamp_seconds",
            "Unix time of the scheduler's last tick.",
            value=engine.last_tick,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_event_loop_lag_seconds",
            "How late the event loop last ran a timer (the scheduler loop's lag).",
            value=self._loop_lag(),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_scrape_timestamp_seconds",
            "Unix time of this scrape by the watchdog's clock (compare with time()).",
            value=time.time(),
        )
