"""Alert channels against a real loopback receiver: exact payloads, errors, secrets, heartbeat.

Every channel is built from config by ``build_channels`` and driven through a real
``Dispatcher`` over one incident: wedged (trigger) -> cycling (``done`` updated) ->
recovered (resolve). Secrets are distinctive strings so a leak anywhere is caught.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from watchdog import config
from watchdog.alerts import DeliveryError, Dispatcher, Heartbeat, build_channels
from watchdog.alerts.base import Channel
from watchdog.core.model import AlertEvent, AlertStatus, Condition, FailureKind, Severity
from watchdog.sim.receiver import AlertReceiver

SLACK_SECRET = "T0SLACK/B0HOOK/SlackSecret9f3a"
PD_KEY = "R0UTINGKEYpdSecret77c1"
NTFY_TOKEN = "tk_ntfySecret19abX"
HB_SECRET = "5e2d-heartbeatSecret-aa90"
SECRETS = (SLACK_SECRET, PD_KEY, NTFY_TOKEN, HB_SECRET, "SlackSecret9f3a")

T0 = 1738289647.25  # 2025-01-31T02:14:07.250Z
WEDGED = AlertEvent(
    node="spark-1",
    cluster="main",
    condition=Condition.WEDGED,
    status=AlertStatus.TRIGGER,
    severity=Severity.CRITICAL,
    summary="spark-1 is wedged: sshd sends no banner",
    seen="sshd accepted TCP but sent no banner 3 times over 75s; plug on, 212 W",
    done="power cycle scheduled",
    todo="nothing now; afterwards read the node's kernel log for the OOM",
    at=T0,
    failure=FailureKind.NO_BANNER,
)
CYCLING = replace(WEDGED, done="power cycle started: plug off, holding 60s", at=T0 + 5)
RECOVERED = replace(
    WEDGED,
    status=AlertStatus.RESOLVE,
    severity=Severity.INFO,
    summary="spark-1 recovered after one power cycle",
    seen="sshd banner back; endpoint serves tool calls",
    done="power-cycled once (plug off 60s, on)",
    todo="find what exhausted memory before it happens again",
    at=T0 + 600,
    failure=None,
)


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


def alerts_cfg(*channels: dict[str, Any]) -> config.Alerts:
    return config.Alerts.model_validate({"channels": list(channels)})


async def run_incident(channel: Channel, receiver: AlertReceiver) -> list[Any]:
    dispatcher = Dispatcher(
        [channel],
        renotify=0,
        rate_limit=10,
        rate_window=60,
        retry_max=0,
        retry_backoff=0.01,
        clock=lambda: T0,
    )
    await dispatcher.start()
    for event in (WEDGED, CYCLING, RECOVERED):
        dispatcher.submit(event)
    await dispatcher.drain(2.0)
    await dispatcher.stop(0.1)
    got = await receiver.wait_for(3)
    assert len(got) == 3
    assert [e.status for _, e in dispatcher.sent] == ["trigger", "trigger", "resolve"]
    return got


async def test_the_webhook_posts_the_documented_json_through_an_incident(
    receiver: AlertReceiver, client: httpx.AsyncClient
) -> None:
    [channel] = build_channels(
        alerts_cfg({"type": "webhook", "url": f"{receiver.url}/hook?x=1"}), client
    )
    trigger, update, resolve = await run_incident(channel, receiver)
    assert (trigger.method, trigger.path) == ("POST", "/hook?x=1")
    assert trigger.headers["Content-Type"] == "application/json"
    assert trigger.json == {
        "version": 1,
        "status": "trigger",
        "dedup_key": "cluster-watchdog/spark-1/wedged",
        "node": "spark-1",
        "cluster": "main",
        "condition": "wedged",
        "severity": "critical",
        "summary": "spark-1 is wedged: sshd sends no banner",
        "seen": WEDGED.seen,
        "done": "power cycle scheduled",
        "todo": WEDGED.todo,
        "failure": "no_banner",
        "at": "2025-01-31T02:14:07.250Z",
    }
    assert update.json["done"] == "power cycle started: plug off, holding 60s"
    assert update.json["at"] == "2025-01-31T02:14:12.250Z"
    assert resolve.json["status"] == "resolve"
    assert resolve.json["failure"] is None
    assert resolve.json["dedup_key"] == trigger.json["dedup_key"]
    assert set(resolve.json) == set(trigger.json)


async def test_slack_gets_text_and_a_mrkdwn_section_with_seen_done_and_todo(
    receiver: AlertReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    url = f"{receiver.url}/services/{SLACK_SECRET}"
    cfg = alerts_cfg({"type": "slack", "url_file": secret_file(tmp_path, "slack", url)})
    [channel] = build_channels(cfg, client)
    assert channel.name == "slack"
    trigger, update, resolve = await run_incident(channel, receiver)
    assert trigger.path == f"/services/{SLACK_SECRET}"
    text = trigger.json["text"]
    assert text.startswith(":rotating_light: *CRITICAL* `spark-1` wedged (cluster `main`)")
    assert f"*Seen:* {WEDGED.seen}" in text
    assert "*Done:* power cycle scheduled" in text
    assert f"*To do:* {WEDGED.todo}" in text
    assert "*Failure:* `no_banner`" in text
    assert trigger.json["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    assert "*Done:* power cycle started: plug off, holding 60s" in update.json["text"]
    assert resolve.json["text"].startswith(":white_check_mark: *RESOLVED* `spark-1` wedged")
    assert "recovered after one power cycle" in resolve.json["text"]


async def test_slack_escapes_mrkdwn_control_characters(
    receiver: AlertReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    cfg = alerts_cfg({"type": "slack", "url_file": secret_file(tmp_path, "s", f"{receiver.url}/s")})
    [channel] = build_channels(cfg, client)
    await channel.send(replace(WEDGED, seen="HTTP 503 <html> & more"))
    [got] = receiver.received
    assert "HTTP 503 &lt;html&gt; &amp; more" in got.json["text"]


async def test_ntfy_posts_the_message_as_body_with_title_priority_tags_and_token(
    receiver: AlertReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    cfg = alerts_cfg(
        {
            "type": "ntfy",
            "name": "phone",
            "url": f"{receiver.url}/watchdog-alerts",
            "token_file": secret_file(tmp_path, "ntfy", NTFY_TOKEN),
        }
    )
    [channel] = build_channels(cfg, client)
    assert channel.name == "phone"
    trigger, update, resolve = await run_incident(channel, receiver)
    assert (trigger.method, trigger.path) == ("POST", "/watchdog-alerts")
    assert trigger.headers["Title"] == "[CRITICAL] spark-1 wedged (cluster main)"
    assert trigger.headers["Priority"] == "5"
    assert trigger.headers["Tags"] == "rotating_light,wedged,spark-1"
    assert trigger.headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
    body = trigger.body.decode()
    assert body.splitlines()[0] == WEDGED.summary
    assert f"Seen: {WEDGED.seen}" in body
    assert "Done: power cycle scheduled" in body
    assert f"To do: {WEDGED.todo}" in body
    assert "Done: power cycle started: plug off, holding 60s" in update.body.decode()
    assert resolve.headers["Title"] == "[RESOLVED] spark-1 wedged (cluster main)"
    assert resolve.headers["Priority"] == "2"
    assert resolve.headers["Tags"].startswith("white_check_mark,")


async def test_ntfy_without_a_token_sends_no_authorization_and_maps_severity(
    receiver: AlertReceiver, client: httpx.AsyncClient
) -> None:
    [channel] = build_channels(alerts_cfg({"type": "ntfy", "url": f"{receiver.url}/t"}), client)
    for severity in (Severity.INFO, Severity.WARNING, Severity.ERROR):
        await channel.send(replace(WEDGED, severity=severity))
    assert [r.headers["Priority"] for r in receiver.received] == ["2", "3", "4"]
    assert all("Authorization" not in r.headers for r in receiver.received)


async def test_pagerduty_keeps_one_dedup_key_across_trigger_update_and_resolve(
    receiver: AlertReceiver, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    cfg = alerts_cfg(
        {
            "type": "pagerduty",
            "routing_key_file": secret_file(tmp_path, "pd", PD_KEY),
            "url": f"{receiver.url}/v2/enqueue",
        }
    )
    [channel] = build_channels(cfg, client)
    trigger, update, resolve = await run_incident(channel, receiver)
    assert trigger.path == "/v2/enqueue"
    assert trigger.json == {
        "routing_key": PD_KEY,
        "event_action": "trigger",
        "dedup_key": "cluster-watchdog/spark-1/wedged",
        "payload": {
            "summary": WEDGED.summary,
            "source": "spark-1",
            "severity": "critical",
            "timestamp": "2025-01-31T02:14:07.250Z",
            "component": "main",
            "group": "cluster-watchdog",
            "class": "wedged",
            "custom_details": {
                "seen": WEDGED.seen,
                "done": "power cycle scheduled",
                "todo": WEDGED.todo,
                "failure": "no_banner",
            },
        },
    }
    assert update.json["event_action"] == "trigger"
    assert update.json["dedup_key"] == trigger.json["dedup_key"]
    assert update.json["payload"]["custom_details"]["done"] == CYCLING.done
    assert resolve.json == {
        "routing_key": PD_KEY,
        "event_action": "resolve",
        "dedup_key": "cluster-watchdog/spark-1/wedged",
    }


async def test_alertmanager_fires_until_the_resolve_sets_ends_at(
    receiver: AlertReceiver, client: httpx.AsyncClient
) -> None:
    [channel] = build_channels(
        alerts_cfg({"type": "alertmanager", "url": f"{receiver.url}/"}), client
    )
    trigger, update, resolve = await run_incident(channel, receiver)
    assert {r.path for r in (trigger, update, resolve)} == {"/api/v2/alerts"}
    [alert] = trigger.json
    assert alert["labels"] == {
        "alertname": "ClusterWatchdogWedged",
        "node": "spark-1",
        "cluster": "main",
        "condition": "wedged",
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == WEDGED.summary
    assert alert["annotations"]["seen"] == WEDGED.seen
    assert alert["annotations"]["done"] == WEDGED.done
    assert alert["annotations"]["todo"] == WEDGED.todo
    assert WEDGED.seen in alert["annotations"]["description"]
    assert alert["startsAt"] == "2025-01-31T02:14:07.250Z"
    # A trigger holds a week ahead: it must not auto-resolve before our explicit resolve.
    assert alert["endsAt"] == "2025-02-07T02:14:07.250Z"
    assert "generatorURL" not in alert
    [updated] = update.json
    assert updated["startsAt"] == alert["startsAt"]
    assert updated["annotations"]["done"] == CYCLING.done
    [resolved] = resolve.json
    # Same label set as the trigger (severity included), or Alertmanager sees another alert.
    assert resolved["labels"] == alert["labels"]
    assert resolved["startsAt"] == alert["startsAt"]
    # Ended a margin in the past on the receiver's clock (learned from its Date header),
    # so an Alertmanager never finds the end still ahead and keeps the alert firing.
    assert _ago(resolved["endsAt"], RECOVERED.at) == pytest.approx(2.0, abs=1.0)


async def test_alertmanager_ends_the_old_alert_when_the_severity_changes(
    receiver: AlertReceiver, client: httpx.AsyncClient
) -> None:
    [channel] = build_channels(alerts_cfg({"type": "alertmanager", "url": receiver.url}), client)
    await channel.send(replace(WEDGED, severity=Severity.WARNING))
    await channel.send(replace(CYCLING, severity=Severity.CRITICAL))
    ended, firing = receiver.received[1].json
    assert ended["labels"]["severity"] == "warning"
    assert _ago(ended["endsAt"], CYCLING.at) == pytest.approx(2.0, abs=1.0)
    assert firing["labels"]["severity"] == "critical"
    assert firing["endsAt"] > firing["startsAt"] == ended["startsAt"]


async def test_channels_are_named_by_name_else_type_and_kept_apart(
    client: httpx.AsyncClient,
) -> None:
    cfg = alerts_cfg(
        {"type": "webhook", "url": "http://127.0.0.1:9/a"},
        {"type": "webhook", "url": "http://127.0.0.1:9/b"},
        {"type": "ntfy", "name": "oncall", "url": "http://127.0.0.1:9/t"},
        {"type": "alertmanager", "url": "http://127.0.0.1:9"},
    )
    channels = build_channels(cfg, client)
    assert [c.name for c in channels] == ["webhook", "webhook-2", "oncall", "alertmanager"]


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (404, False), (429, True), (503, True)]
)
async def test_only_statuses_a_retry_can_fix_are_retryable(
    receiver: AlertReceiver, client: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    [channel] = build_channels(alerts_cfg({"type": "webhook", "url": receiver.url}), client)
    receiver.fail_next, receiver.fail_status = 1, status
    with pytest.raises(DeliveryError) as info:
        await channel.send(WEDGED)
    assert info.value.retryable is retryable
    assert f"HTTP {status}" in str(info.value)


async def test_no_secret_reaches_errors_reprs_or_logs(
    client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One echoing receiver per channel: each answers 400 quoting that channel's own secret
    # back, as some services do; a second set of channels points at a closed port.
    echo = {name: AlertReceiver() for name in ("slack", "pd", "ntfy")}
    for rx, secret in zip(echo.values(), (SLACK_SECRET, PD_KEY, NTFY_TOKEN), strict=True):
        await rx.start()
        rx.fail_next, rx.fail_status = 1000, 400
        rx.fail_body = f"invalid credential {secret!r}"
    dead = AlertReceiver()
    await dead.start()
    dead_url = dead.url
    await dead.stop()  # nothing listens there any more: connection refused
    texts: list[str] = []
    channels: list[Channel] = []
    for slack, pd, ntfy in (
        (echo["slack"].url, echo["pd"].url, echo["ntfy"].url),
        (dead_url, dead_url, dead_url),
    ):
        cfg = alerts_cfg(
            {"type": "slack", "url_file": secret_file(tmp_path, "s", f"{slack}/{SLACK_SECRET}")},
            {
                "type": "pagerduty",
                "routing_key_file": secret_file(tmp_path, "pd", PD_KEY),
                "url": f"{pd}/v2/enqueue",
            },
            {
                "type": "ntfy",
                "url": f"{ntfy}/t",
                "token_file": secret_file(tmp_path, "nt", NTFY_TOKEN),
            },
        )
        texts += [repr(cfg), str(cfg)]
        channels += build_channels(cfg, client)
    caplog.set_level(logging.DEBUG)
    for channel in channels:
        texts.append(repr(channel))
        with pytest.raises(DeliveryError) as info:
            await channel.send(WEDGED)
        texts += [str(info.value), repr(info.value)]
    dispatcher = Dispatcher(
        channels,
        renotify=0,
        rate_limit=10,
        rate_window=60,
        retry_max=1,
        retry_backoff=0.01,
        on_delivery_failure=lambda report: texts.append(f"{report.channel} {report.reason}"),
    )
    await dispatcher.start()
    dispatcher.submit(WEDGED)
    await dispatcher.drain(2.0)
    await dispatcher.stop(0.1)
    hb_cfg = config.Heartbeat.model_validate(
        {"url_file": secret_file(tmp_path, "hb", f"{dead_url}/ping/{HB_SECRET}")}
    )
    heartbeat = Heartbeat(hb_cfg.url, client, timeout=1.0)
    assert await heartbeat.ping() is False
    assert await heartbeat.ping(ok=False) is False
    texts += [repr(heartbeat), repr(hb_cfg)]
    for rx in echo.values():
        await rx.stop()
    # httpx's own INFO log prints every request URL: the daemon's logging setup must keep the
    # "httpx"/"httpcore" loggers at WARNING. Everything the watchdog itself logs is checked.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("watchdog"))
    texts.append(ours)
    assert ours.count("given up") == 6  # every failure was logged, just without secrets
    assert "HTTP 400: invalid credential '***'" in ours
    assert "heartbeat ping (fail) failed: connection failed" in ours
    joined = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in joined


async def test_the_heartbeat_pings_its_url_and_fail_url(
    receiver: AlertReceiver, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    heartbeat = Heartbeat(SecretStr(f"{receiver.url}/ping/{HB_SECRET}/"), client, timeout=1.0)
    assert await heartbeat.ping() is True
    assert await heartbeat.ping(ok=False) is True
    assert [(r.method, r.path) for r in receiver.received] == [
        ("GET", f"/ping/{HB_SECRET}/"),
        ("GET", f"/ping/{HB_SECRET}/fail"),
    ]
    receiver.fail_next = 1
    caplog.set_level(logging.WARNING, logger="watchdog.alerts")
    assert await heartbeat.ping() is False
    assert heartbeat.failures == 1
    assert "heartbeat ping (ok) failed: HTTP 500" in caplog.text
    assert HB_SECRET not in caplog.text
    assert await heartbeat.ping() is True
    assert heartbeat.failures == 0


async def test_the_heartbeat_fail_url_keeps_the_query_string(
    receiver: AlertReceiver, client: httpx.AsyncClient
) -> None:
    heartbeat = Heartbeat(SecretStr(f"{receiver.url}/{HB_SECRET}?rid=7"), client, timeout=1.0)
    assert await heartbeat.ping(ok=False) is True
    assert receiver.received[0].path == f"/{HB_SECRET}/fail?rid=7"


def _ago(stamp: str, at: float) -> float:
    """How many seconds before ``at`` the ISO 8601 ``stamp`` lies."""
    return at - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
