"""PagerDuty Events API v2 channel.

Trigger::

    {"routing_key": ..., "event_action": "trigger", "dedup_key": "cluster-watchdog/spark-1/wedged",
     "payload": {"summary", "source": node, "severity": critical|error|warning|info,
                 "timestamp": ISO 8601, "component": cluster, "group": "cluster-watchdog",
                 "class": condition, "custom_details": {"seen", "done", "todo", "failure"}}}

Resolve needs only ``routing_key``, ``event_action: "resolve"`` and ``dedup_key``. The
dedup key is stable per (node, condition), so a re-sent trigger lands in the same incident.
PagerDuty answers 202; a 400 means the event or routing key is invalid and is not retried,
429 and 5xx are. The routing key is a secret: held as SecretStr, scrubbed from error bodies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watchdog import config
from watchdog.alerts.base import iso8601, post
from watchdog.core.model import AlertEvent, AlertStatus

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

# PagerDuty rejects summaries longer than this.
_SUMMARY_MAX = 1024
GROUP = "cluster-watchdog"


def payload(event: AlertEvent, routing_key: str) -> dict[str, Any]:
    """The Events v2 request body for ``event``."""
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event.status.value,
        "dedup_key": event.dedup_key,
    }
    if event.status is AlertStatus.RESOLVE:
        return body
    body["payload"] = {
        "summary": event.summary[:_SUMMARY_MAX] or f"{event.node} {event.condition.value}",
        "source": event.node,
        # Our Severity values are PagerDuty's own four.
        "severity": event.severity.value,
        "timestamp": iso8601(event.at),
        "component": event.cluster,
        "group": GROUP,
        "class": event.condition.value,
        "custom_details": {
            "seen": event.seen,
            "done": event.done,
            "todo": event.todo,
            "failure": event.failure.value if event.failure is not None else None,
        },
    }
    return body


class PagerDutyChannel:
    """Sends events to one PagerDuty service integration (routing key)."""

    def __init__(self, cfg: config.PagerDutyChannel, client: HttpClient, name: str) -> None:
        self.name = name
        self._key = cfg.routing_key
        self._url = cfg.url
        self._timeout = cfg.timeout
        self._client = client

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r})"

    async def send(self, event: AlertEvent) -> None:
        key = self._key.get_secret_value()
        await post(
            self._client,
            self.name,
            self._url,
            request_timeout=self._timeout,
            json=payload(event, key),
            secrets=(key,),
        )
