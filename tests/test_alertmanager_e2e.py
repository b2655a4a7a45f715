"""Alerts to a real Alertmanager (Debian's ``prometheus-alertmanager`` on loopback).

Alertmanager honours a resolve only when its ``endsAt`` is already past by *its* clock; these
tests ask its API whether an alert is still firing after ``alert-test``, after a wedge and
recovery of the daemon against the simulated cluster, and after resolves sent from a clock
up to 60 s ahead of or behind it.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchdog import config
from watchdog.alerts.alertmanager import AlertmanagerChannel, alert
from watchdog.alerts.base import iso8601
from watchdog.core.model import AlertEvent, AlertStatus, Condition, Severity
from watchdog.engine.engine import Engine
from watchdog.sim.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
A = "spark-1"


def firing(am: Any, node: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds as active for ``node`` (a resolved alert is not listed)."""
    return [a for a in am.get("/api/v2/alerts") if a["labels"].get("node") == node]


def received(am: Any, status: str) -> float:
    """Alertmanager's own count of alerts received with ``status`` (firing, resolved)."""
    text = httpx.get(f"{am.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("alertmanager_alerts_received_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def am_channel(am: Any, client: httpx.AsyncClient, clock: Any = time.time) -> AlertmanagerChannel:
    cfg = config.AlertmanagerChannel(type="alertmanager", url=am.url)
    return AlertmanagerChannel(cfg, client, "am", clock=clock)


def event(status: AlertStatus, at: float) -> AlertEvent:
    return AlertEvent(
        node="skew-test",
        cluster="main",
        condition=Condition.WEDGED,
        status=status,
        severity=Severity.CRITICAL,
        summary="skew test",
        at=at,
    )


async def test_alert_test_leaves_nothing_firing_in_alertmanager(
    tmp_path: Path, alertmanager: Any
) -> None:
    async with Harness(tmp_path) as h:
        doc = h.config()
        doc["alerts"]["channels"] = [{"type": "alertmanager", "url": alertmanager.url}]
        h.write_config(doc)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "watchdog", "alert-test", "-c", str(h.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alertmanager: delivered trigger and resolve" in done.stdout
    assert received(alertmanager, "firing") >= 1
    assert received(alertmanager, "resolved") >= 1
    assert firing(alertmanager, "alert-test") == []


@pytest.mark.parametrize("skew", [0.0, 30.0], ids=["same-clock", "daemon-30s-ahead"])
async def test_a_wedge_fires_in_alertmanager_and_the_recovery_resolves_it(
    tmp_path: Path, alertmanager: Any, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    # The daemon's engine decides on a clock `skew` seconds ahead of Alertmanager's: every
    # alert it raises, the resolve included, is stamped in Alertmanager's future.
    monkeypatch.setattr(
        "watchdog.service.daemon.Engine",
        functools.partial(Engine, clock=lambda: time.time() + skew),
    )
    async with Harness(tmp_path) as h:
        doc = h.config()
        doc["alerts"]["channels"].append({"type": "alertmanager", "url": alertmanager.url})
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        await h.wait_until(lambda: bool(firing(alertmanager, A)), 30, "the page in Alertmanager")
        [page] = firing(alertmanager, A)
        assert page["labels"]["alertname"] == "ClusterWatchdogWedged"
        assert page["status"]["state"] == "active"
        if skew:
            assert page["startsAt"] > iso8601(time.time() + skew - 15)  # stamped ahead
        await h.wait_until(lambda: h.has_alert(A, "wedged", "resolve"), 40, f"{A} to recover")
        await h.wait_until(
            lambda: firing(alertmanager, A) == [], 5, "Alertmanager to resolve the page"
        )


@pytest.mark.parametrize(
    ("skew", "fresh"),
    [(30.0, True), (30.0, False), (60.0, True), (-60.0, True)],
    ids=["30s-ahead-after-restart", "30s-ahead", "60s-ahead-after-restart", "60s-behind"],
)
async def test_a_resolve_takes_effect_whatever_the_clock_skew(
    alertmanager: Any, skew: float, fresh: bool
) -> None:
    # Our clock runs `skew` seconds off Alertmanager's (the same host's real clock).
    def clock() -> float:
        return time.time() + skew

    async with httpx.AsyncClient() as client:
        channel = am_channel(alertmanager, client, clock)
        await channel.send(event(AlertStatus.TRIGGER, clock()))
        assert [a["status"]["state"] for a in firing(alertmanager, "skew-test")] == ["active"]
        await asyncio.sleep(0.5)
        if fresh:  # a restarted daemon: the trigger's start time and the skew are unknown
            channel = am_channel(alertmanager, client, clock)
        await channel.send(event(AlertStatus.RESOLVE, clock()))
    assert firing(alertmanager, "skew-test") == []


async def test_a_resolve_ending_in_alertmanagers_future_keeps_the_alert_firing(
    alertmanager: Any,
) -> None:
    # The failure the skew handling exists for, shown on the real server: an endsAt 30 s
    # ahead of its clock loses to the trigger's week-long endsAt.
    now = time.time()
    trigger = alert(event(AlertStatus.TRIGGER, now), severity=Severity.CRITICAL, starts_at=now)
    naive = alert(event(AlertStatus.RESOLVE, now + 30), severity=Severity.CRITICAL, starts_at=now)
    assert naive["endsAt"] == iso8601(now + 30)
    async with httpx.AsyncClient() as client:
        for body in ([trigger], [naive]):
            r = await client.post(f"{alertmanager.url}/api/v2/alerts", json=body)
            assert r.status_code == 200, r.text
    [still] = firing(alertmanager, "skew-test")
    assert still["endsAt"] > iso8601(now + 6 * 86400)
