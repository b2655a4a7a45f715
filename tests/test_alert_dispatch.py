"""Alert dispatch against real loopback receivers: dedup, re-notify, rate limit, retries,
isolation between channels, and nothing dropped silently. Time for the lifecycle rules is
an injected clock; retries use real (tiny) back-offs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from watchdog import config
from watchdog.alerts import Dispatcher, build_channels
from watchdog.alerts.base import Channel
from watchdog.alerts.dispatch import Delivery, DeliveryReport
from watchdog.core.model import AlertEvent, AlertStatus, Condition, Severity
from watchdog.sim.receiver import AlertReceiver

T0 = 1_700_000_000.0
WEDGED = AlertEvent(
    node="spark-1",
    cluster="main",
    condition=Condition.WEDGED,
    status=AlertStatus.TRIGGER,
    severity=Severity.CRITICAL,
    summary="spark-1 is wedged",
    seen="no sshd banner 3 times",
    done="power cycle scheduled",
    todo="nothing now",
    at=T0,
)
RESOLVED = replace(WEDGED, status=AlertStatus.RESOLVE, severity=Severity.INFO, summary="ok")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Failures:
    """Collects on_delivery_failure reports."""

    calls: list[tuple[str, AlertEvent, str]] = field(default_factory=list)
    outcomes: list[Delivery] = field(default_factory=list)

    def __call__(self, report: DeliveryReport) -> None:
        self.calls.append((report.channel, report.event, report.reason))
        self.outcomes.append(report.outcome)


def webhook(client: httpx.AsyncClient, *receivers: AlertReceiver) -> list[Channel]:
    cfg = config.Alerts.model_validate(
        {
            "channels": [
                {"type": "webhook", "name": f"hook{i}", "url": f"{r.url}/hook"}
                for i, r in enumerate(receivers)
            ]
        }
    )
    return build_channels(cfg, client)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def failures() -> Failures:
    return Failures()


def dispatcher(channels: list[Channel], clock: Clock, failures: Failures, **kw: Any) -> Dispatcher:
    opts: dict[str, Any] = {
        "renotify": 0,
        "rate_limit": 100,
        "rate_window": 3600,
        "retry_max": 0,
        "retry_backoff": 0.01,
    }
    opts.update(kw)
    return Dispatcher(channels, clock=clock, on_delivery_failure=failures, **opts)


async def settle(d: Dispatcher) -> None:
    await d.drain(2.0)


async def until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def statuses(r: AlertReceiver) -> list[tuple[str, str]]:
    return [(x.json["status"], x.json["node"]) for x in r.received]


@pytest.fixture
async def one(
    receiver: AlertReceiver, client: httpx.AsyncClient, clock: Clock, failures: Failures
) -> AsyncIterator[Dispatcher]:
    d = dispatcher(webhook(client, receiver), clock, failures, renotify=600)
    await d.start()
    yield d
    await d.stop(0.5)


async def test_a_repeated_trigger_is_sent_once_and_only_its_stored_event_updated(
    one: Dispatcher, receiver: AlertReceiver
) -> None:
    one.submit(WEDGED)
    one.submit(replace(WEDGED, seen="no sshd banner 4 times", summary="still wedged"))
    await settle(one)
    assert len(receiver.received) == 1
    assert one.open_alerts[WEDGED.dedup_key].seen == "no sshd banner 4 times"


async def test_a_trigger_with_a_new_done_or_severity_is_sent_as_an_update(
    one: Dispatcher, receiver: AlertReceiver
) -> None:
    one.submit(WEDGED)
    one.submit(replace(WEDGED, done="power cycle started"))
    one.submit(replace(WEDGED, done="power cycle started", severity=Severity.ERROR))
    await settle(one)
    assert [(x.json["done"], x.json["severity"]) for x in receiver.received] == [
        ("power cycle scheduled", "critical"),
        ("power cycle started", "critical"),
        ("power cycle started", "error"),
    ]


async def test_an_open_alert_is_renotified_once_the_interval_passed(
    one: Dispatcher, receiver: AlertReceiver, clock: Clock
) -> None:
    one.submit(WEDGED)
    clock.now = T0 + 599
    one.tick()
    await settle(one)
    assert len(receiver.received) == 1
    clock.now = T0 + 600
    one.tick()
    one.tick()  # due once, not twice
    await settle(one)
    assert len(receiver.received) == 2
    assert receiver.received[1].json["summary"] == "Still unresolved after 10m: spark-1 is wedged"
    assert receiver.received[1].json["status"] == "trigger"
    # A duplicate trigger arriving when a re-notification is due goes out as the reminder.
    clock.now = T0 + 600 + 3600
    one.submit(WEDGED)
    await settle(one)
    assert receiver.received[2].json["summary"].startswith("Still unresolved after 1h 10m:")
    one.submit(RESOLVED)
    clock.now += 10_000
    one.tick()
    await settle(one)
    assert [x.json["status"] for x in receiver.received] == [
        "trigger",
        "trigger",
        "trigger",
        "resolve",
    ]


async def test_renotify_zero_never_renotifies(
    receiver: AlertReceiver, client: httpx.AsyncClient, clock: Clock, failures: Failures
) -> None:
    d = dispatcher(webhook(client, receiver), clock, failures, renotify=0)
    await d.start()
    d.submit(WEDGED)
    clock.now += 10 * 86400
    d.tick()
    d.submit(WEDGED)
    await d.stop(1.0)
    assert len(receiver.received) == 1


async def test_a_resolve_for_something_never_paged_is_dropped(
    one: Dispatcher, receiver: AlertReceiver, failures: Failures
) -> None:
    one.submit(RESOLVED)
    one.submit(replace(RESOLVED, node="spark-2"))
    await settle(one)
    await asyncio.sleep(0.05)
    assert receiver.received == []
    assert one.sent == []
    assert failures.calls == []
    assert one.open_alerts == {}


async def test_a_trigger_after_a_resolve_opens_a_new_incident(
    one: Dispatcher, receiver: AlertReceiver
) -> None:
    one.submit(WEDGED)
    one.submit(RESOLVED)
    one.submit(WEDGED)
    await settle(one)
    assert [s for s, _ in statuses(receiver)] == ["trigger", "resolve", "trigger"]
    assert list(one.open_alerts) == [WEDGED.dedup_key]
    assert [(name, e.status) for name, e in one.sent] == [
        ("hook0", "trigger"),
        ("hook0", "resolve"),
        ("hook0", "trigger"),
    ]


async def test_the_rate_limit_holds_back_triggers_but_never_resolves(
    receiver: AlertReceiver,
    client: httpx.AsyncClient,
    clock: Clock,
    failures: Failures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    d = dispatcher(webhook(client, receiver), clock, failures, rate_limit=2, rate_window=60)
    await d.start()
    nodes = ["spark-1", "spark-2", "spark-3"]
    for node in nodes:
        d.submit(replace(WEDGED, node=node))
    for node in nodes:
        clock.now += 1
        d.submit(replace(RESOLVED, node=node))
    clock.now = T0 + 3 + 60  # the window has moved past every earlier send
    d.submit(replace(WEDGED, node="spark-4"))
    await d.stop(1.0)
    assert statuses(receiver) == [
        ("trigger", "spark-1"),
        ("trigger", "spark-2"),
        ("resolve", "spark-1"),
        ("resolve", "spark-2"),
        ("resolve", "spark-3"),
        ("trigger", "spark-4"),
    ]
    assert (
        "alert cluster-watchdog/spark-3/wedged (trigger) to hook0: not sent: rate limited"
        in caplog.text
    )
    [(name, event, reason)] = failures.calls
    assert (name, event.node) == ("hook0", "spark-3")
    assert reason.startswith("rate limited")
    assert failures.outcomes == [Delivery.RATE_LIMITED]


async def test_a_failed_delivery_is_retried_with_exponential_backoff(
    receiver: AlertReceiver,
    client: httpx.AsyncClient,
    clock: Clock,
    failures: Failures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    receiver.fail_next = 2
    d = dispatcher(webhook(client, receiver), clock, failures, retry_max=3, retry_backoff=0.05)
    await d.start()
    d.submit(WEDGED)
    await d.drain(2.0)
    await d.stop()
    arrivals = [x.at for x in receiver.received]
    assert len(arrivals) == 3
    first_gap, second_gap = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
    assert first_gap >= 0.05
    assert second_gap >= 0.1
    assert d.sent == [("hook0", WEDGED)]
    assert [reason for _, _, reason in failures.calls] == [
        'attempt 1 failed: HTTP 500: {"status": "error"}',
        'attempt 2 failed: HTTP 500: {"status": "error"}',
    ]
    assert failures.outcomes == [Delivery.RETRYING, Delivery.RETRYING]
    assert caplog.text.count("failed: HTTP 500") == 2
    assert "retrying in 0.10s" in caplog.text


async def test_a_channel_that_keeps_failing_is_given_up_logged_and_reported(
    receiver: AlertReceiver,
    client: httpx.AsyncClient,
    clock: Clock,
    failures: Failures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    receiver.fail_next = 1000
    d = dispatcher(webhook(client, receiver), clock, failures, retry_max=2)
    await d.start()
    d.submit(WEDGED)
    await d.stop(2.0)
    assert len(receiver.received) == 3
    assert d.sent == []
    assert failures.calls[-1][2] == 'given up: HTTP 500: {"status": "error"} (3 attempts failed)'
    assert failures.outcomes == [Delivery.RETRYING, Delivery.RETRYING, Delivery.GIVEN_UP]
    [give_up] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (
        "alert cluster-watchdog/spark-1/wedged (trigger) to hook0: given up: HTTP 500"
        in give_up.getMessage()
    )


async def test_a_rejected_request_is_not_retried(
    receiver: AlertReceiver, client: httpx.AsyncClient, clock: Clock, failures: Failures
) -> None:
    receiver.fail_next, receiver.fail_status = 1, 400
    d = dispatcher(webhook(client, receiver), clock, failures, retry_max=5)
    await d.start()
    d.submit(WEDGED)
    d.submit(replace(WEDGED, node="spark-2"))
    await d.stop(2.0)
    assert statuses(receiver) == [("trigger", "spark-1"), ("trigger", "spark-2")]
    assert [e.node for _, e in d.sent] == ["spark-2"]
    assert failures.calls[0][2].endswith("(not retryable)")


async def test_a_slow_failing_channel_never_delays_another_channel_or_the_caller(
    client: httpx.AsyncClient, clock: Clock, failures: Failures
) -> None:
    slow, fast = AlertReceiver(), AlertReceiver()
    await slow.start()
    await fast.start()
    slow.delay, slow.fail_next = 0.5, 1000
    d = dispatcher(webhook(client, slow, fast), clock, failures, retry_max=5)
    await d.start()
    began = time.time()
    d.submit(WEDGED)
    d.submit(replace(WEDGED, node="spark-2"))
    assert time.time() - began < 0.05  # submit only queues
    got = await fast.wait_for(2, timeout=1.0)
    assert got[1].at - began < 0.3  # both through while the slow one still holds its first
    assert len(slow.received) == 1
    await until(lambda: len(d.sent) == 2)  # the answer reaches the client just after arrival
    assert [(n, e.node) for n, e in d.sent] == [("hook1", "spark-1"), ("hook1", "spark-2")]
    await d.stop(0.05)
    # What the slow channel never delivered is reported, not silently dropped.
    abandoned = [(n, e.node) for n, e, r in failures.calls if "abandoned at shutdown" in r]
    assert abandoned == [("hook0", "spark-1"), ("hook0", "spark-2")]
    await slow.stop()
    await fast.stop()


class BrokenOnce:
    """A channel with a bug on its first call (not a DeliveryError)."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, event: AlertEvent) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("bug")


async def test_a_channel_bug_is_reported_and_its_worker_keeps_going(
    clock: Clock, failures: Failures
) -> None:
    broken = BrokenOnce()
    d = dispatcher([broken], clock, failures, retry_max=3)
    await d.start()
    d.submit(WEDGED)
    d.submit(replace(WEDGED, node="spark-2"))
    await d.stop(1.0)
    assert broken.calls == 2
    assert failures.calls[0][2] == "given up: unexpected RuntimeError (not retryable)"
    assert [e.node for _, e in d.sent] == ["spark-2"]


async def test_submit_never_raises_even_when_the_clock_does(
    failures: Failures, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_clock() -> float:
        raise OSError("clock gone")

    d = Dispatcher(
        [BrokenOnce()],
        renotify=0,
        rate_limit=1,
        rate_window=1,
        retry_max=0,
        retry_backoff=0.01,
        clock=broken_clock,
    )
    d.submit(WEDGED)
    assert "could not be queued (OSError)" in caplog.text


async def test_stop_reports_events_it_could_not_deliver(clock: Clock, failures: Failures) -> None:
    d = dispatcher([BrokenOnce()], clock, failures)
    d.submit(WEDGED)  # never started: nothing can drain the queue
    await d.stop(0.05)
    [(name, event, reason)] = failures.calls
    assert (name, event, reason) == ("broken", WEDGED, "given up: abandoned at shutdown")
    assert failures.outcomes == [Delivery.GIVEN_UP]


async def test_a_restated_page_is_adopted_silently_then_resolved_and_renotified(
    one: Dispatcher, receiver: AlertReceiver, clock: Clock
) -> None:
    # A new process re-states what the persisted state says is open: nothing is sent again,
    # but the page is known, so re-notification works and its resolve goes out.
    one.submit(replace(WEDGED, restated=True))
    one.submit(replace(WEDGED, restated=True))
    await settle(one)
    assert receiver.received == [] and set(one.open_alerts) == {WEDGED.dedup_key}
    clock.now = T0 + 600
    one.tick()
    await settle(one)
    assert receiver.received[-1].json["summary"].startswith("Still unresolved after 10m")
    one.submit(RESOLVED)
    await settle(one)
    assert [x.json["status"] for x in receiver.received] == ["trigger", "resolve"]
    assert one.open_alerts == {}
