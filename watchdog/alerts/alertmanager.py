"""Prometheus Alertmanager API v2 channel: POST ``{url}/api/v2/alerts`` a one-alert list.

Each alert::

    {"labels": {"alertname": "ClusterWatchdog<Condition>", "node", "cluster", "condition",
                "severity"},
     "annotations": {"summary", "description", "seen", "done", "todo"},
     "startsAt": ISO 8601, "endsAt": ISO 8601, "generatorURL": optional}

Alertmanager identifies an alert by its label set and considers it resolved once ``endsAt``
has passed; an alert sent *without* ``endsAt`` is resolved after the server's
``resolve_timeout`` (5 m by default) unless it is sent again — Prometheus re-sends every
evaluation, we do not. So a trigger carries ``endsAt`` one week ahead (:data:`TRIGGER_HOLD`):
the alert stays firing until our explicit resolve (``endsAt`` = the resolve time), and the
week only bounds a zombie if that resolve were ever lost. Re-notifications push it out again.

Labels must match between trigger and resolve or Alertmanager sees two alerts, so the
resolve reuses the severity and start time this channel sent with the trigger; when an
update changes the severity, the same request ends the alert with the old severity label.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from watchdog import config
from watchdog.alerts.base import iso8601, post, render_text, url_secrets
from watchdog.model import AlertEvent, AlertStatus, Severity

TRIGGER_HOLD = 7 * 24 * 3600.0


def alertname(event: AlertEvent) -> str:
    """``ClusterWatchdogPoweredOff`` for ``powered_off``."""
    return "ClusterWatchdog" + "".join(p.capitalize() for p in event.condition.value.split("_"))


def alert(
    event: AlertEvent,
    *,
    severity: Severity,
    starts_at: float,
    generator_url: str | None = None,
) -> dict[str, Any]:
    """One Alertmanager v2 alert object for ``event``."""
    resolved = event.status is AlertStatus.RESOLVE
    body: dict[str, Any] = {
        "labels": {
            "alertname": alertname(event),
            "node": event.node,
            "cluster": event.cluster,
            "condition": event.condition.value,
            "severity": severity.value,
        },
        "annotations": {
            "summary": event.summary,
            "description": render_text(event),
            "seen": event.seen,
            "done": event.done,
            "todo": event.todo,
        },
        "startsAt": iso8601(starts_at),
        # Alertmanager rejects endsAt before startsAt; equal is accepted.
        "endsAt": iso8601(max(event.at, starts_at) if resolved else event.at + TRIGGER_HOLD),
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body


class AlertmanagerChannel:
    """Pushes alerts to one Alertmanager (or anything speaking its v2 API)."""

    def __init__(
        self,
        cfg: config.AlertmanagerChannel,
        client: httpx.AsyncClient,
        name: str,
        *,
        generator_url: str | None = None,
    ) -> None:
        self.name = name
        self._url = cfg.url.rstrip("/") + "/api/v2/alerts"
        self._timeout = cfg.timeout
        self._client = client
        self._generator_url = generator_url
        # dedup_key -> (severity label, startsAt) of the open trigger, for a matching resolve.
        self._open: dict[str, tuple[Severity, float]] = {}

    def __repr__(self) -> str:
        return f"AlertmanagerChannel(name={self.name!r})"

    async def send(self, event: AlertEvent) -> None:
        key = event.dedup_key
        body: list[dict[str, Any]] = []
        known = self._open.get(key)
        if event.status is AlertStatus.TRIGGER:
            starts = known[1] if known else event.at
            if known and known[0] is not event.severity:
                # The severity label is part of the alert's identity: end the old one, or it
                # would keep firing next to the new one until its endsAt.
                ended = replace(event, status=AlertStatus.RESOLVE)
                body.append(self._alert(ended, known[0], starts))
            body.append(self._alert(event, event.severity, starts))
        else:
            severity, starts = known if known else (event.severity, event.at)
            body.append(self._alert(event, severity, starts))
        await post(
            self._client,
            self.name,
            self._url,
            request_timeout=self._timeout,
            json=body,
            secrets=url_secrets(self._url),
        )
        # Remember only what was delivered: a retried request must be built the same way.
        if event.status is AlertStatus.TRIGGER:
            self._open[key] = (event.severity, starts)
        else:
            self._open.pop(key, None)

    def _alert(self, event: AlertEvent, severity: Severity, starts: float) -> dict[str, Any]:
        return alert(event, severity=severity, starts_at=starts, generator_url=self._generator_url)
