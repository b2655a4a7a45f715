"""Generic JSON webhook channel: one documented JSON object per event.

Every event is POSTed (``Content-Type: application/json``) as this object, version 1::

    {
      "version": 1,                          # payload schema version; bumped on breaking change
      "status": "trigger" | "resolve",
      "dedup_key": "cluster-watchdog/spark-1/wedged",   # stable per (node, condition)
      "node": "spark-1",
      "cluster": "main",
      "condition": "wedged",                 # wedged, degraded, misconfigured, powered_off,
                                             # blind, given_up, plug, cycle_failed
      "severity": "critical",                # info, warning, error, critical
      "summary": "spark-1 is wedged: sshd sends no banner",
      "seen": "what the watchdog observed",
      "done": "what the watchdog did about it",
      "todo": "what a human should do",
      "failure": "no_banner" | null,         # the probe failure kind, when there is one
      "at": "2025-01-31T02:14:07.250Z"       # ISO 8601, UTC: when the event was observed
    }

A trigger for the same ``dedup_key`` may arrive again (an update when ``done`` or the
severity changed, or a reminder while unresolved); a ``resolve`` closes the incident. Any 2xx
answer counts as delivered; 408/425/429 and 5xx are retried, other statuses are not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watchdog import config
from watchdog.alerts.base import iso8601, post, url_secrets
from watchdog.core.model import AlertEvent

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

PAYLOAD_VERSION = 1


def payload(event: AlertEvent) -> dict[str, Any]:
    """The version-1 JSON object documented above."""
    return {
        "version": PAYLOAD_VERSION,
        "status": event.status.value,
        "dedup_key": event.dedup_key,
        "node": event.node,
        "cluster": event.cluster,
        "condition": event.condition.value,
        "severity": event.severity.value,
        "summary": event.summary,
        "seen": event.seen,
        "done": event.done,
        "todo": event.todo,
        "failure": event.failure.value if event.failure is not None else None,
        "at": iso8601(event.at),
    }


class WebhookChannel:
    """POSTs :func:`payload` to a URL (which may embed a token: never logged)."""

    def __init__(self, cfg: config.WebhookChannel, client: HttpClient, name: str) -> None:
        self.name = name
        self._url = cfg.url
        self._timeout = cfg.timeout
        self._client = client

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r})"

    async def send(self, event: AlertEvent) -> None:
        await post(
            self._client,
            self.name,
            self._url,
            request_timeout=self._timeout,
            json=payload(event),
            secrets=url_secrets(self._url),
        )
