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
the alert stays firing until our explicit resolve (``endsAt`` in the past, below), and the
week only bounds a zombie if that resolve were ever lost. Re-notifications push it out again.

Labels must match between trigger and resolve or Alertmanager sees two alerts, so the
resolve reuses the severity and start time this channel sent with the trigger; when an
update changes the severity, the same request ends the alert with the old severity label.

Clock skew: Alertmanager honours a resolve only if its ``endsAt`` is already past *by its own
clock*; an ``endsAt`` still ahead loses to the firing alert's later one, and the alert keeps
firing for the week. So a resolve's ``endsAt`` is our time translated to Alertmanager's
clock (the offset learned from the ``Date`` header of its every answer) minus a margin, and
its ``startsAt`` is lowered to match when needed (``endsAt`` must not precede ``startsAt``;
Alertmanager keeps the earliest ``startsAt`` anyway). When the answer to a resolve shows that
its ``endsAt`` was not yet past there (skew not known yet, or changed), the resolve is sent
again at once, ended a margin before the ``Date`` it just reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from watchdog import config
from watchdog.alerts.base import iso8601, post, render_text, url_secrets
from watchdog.core.model import AlertEvent, AlertStatus, Severity

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

TRIGGER_HOLD = 7 * 24 * 3600.0
# How far in Alertmanager's past a resolve ends: its Date header has whole seconds.
RESOLVE_MARGIN = 2.0


def alertname(event: AlertEvent) -> str:
    """``ClusterWatchdogPoweredOff`` for ``powered_off``."""
    return "ClusterWatchdog" + "".join(p.capitalize() for p in event.condition.value.split("_"))


def alert(
    event: AlertEvent,
    *,
    severity: Severity,
    starts_at: float,
    generator_url: str | None = None,
    ends_at: float | None = None,
) -> dict[str, Any]:
    """One Alertmanager v2 alert object for ``event``; a resolve ends at ``ends_at`` (by
    Alertmanager's clock) when given, else at ``event.at``."""
    resolved = event.status is AlertStatus.RESOLVE
    if resolved:
        ends = event.at if ends_at is None else ends_at
        # Alertmanager rejects endsAt before startsAt; equal is accepted.
        starts_at = min(starts_at, ends)
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
        "endsAt": iso8601(ends if resolved else event.at + TRIGGER_HOLD),
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body


class AlertmanagerChannel:
    """Pushes alerts to one Alertmanager (or anything speaking its v2 API)."""

    def __init__(
        self,
        cfg: config.AlertmanagerChannel,
        client: HttpClient,
        name: str,
        *,
        generator_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._clock = clock
        # Alertmanager's clock minus ours, from the Date header of its last answer.
        self._offset: float | None = None
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
        known = self._open.get(key)
        starts = known[1] if known else event.at
        # endsAt of a resolve in the request, on Alertmanager's clock as far as we know it.
        ends = event.at + (self._offset or 0.0) - RESOLVE_MARGIN
        ending = event.status is AlertStatus.RESOLVE or (
            known is not None and known[0] is not event.severity
        )
        reported = await self._post(self._body(event, known, starts, ends))
        if ending and reported is not None and ends > reported - RESOLVE_MARGIN / 2:
            # Not yet past by Alertmanager's clock: it would keep the alert firing.
            await self._post(self._body(event, known, starts, reported - RESOLVE_MARGIN))
        # Remember only what was delivered: a retried request must be built the same way.
        if event.status is AlertStatus.TRIGGER:
            self._open[key] = (event.severity, starts)
        else:
            self._open.pop(key, None)

    def _body(
        self,
        event: AlertEvent,
        known: tuple[Severity, float] | None,
        starts: float,
        ends: float,
    ) -> list[dict[str, Any]]:
        if event.status is AlertStatus.RESOLVE:
            severity = known[0] if known else event.severity
            return [self._alert(event, severity, starts, ends)]
        body: list[dict[str, Any]] = []
        if known and known[0] is not event.severity:
            # The severity label is part of the alert's identity: end the old one, or it
            # would keep firing next to the new one until its endsAt.
            ended = replace(event, status=AlertStatus.RESOLVE)
            body.append(self._alert(ended, known[0], starts, ends))
        body.append(self._alert(event, event.severity, starts, None))
        return body

    async def _post(self, body: list[dict[str, Any]]) -> float | None:
        """POST ``body``; return Alertmanager's time from the answer's Date (None if absent)."""
        response = await post(
            self._client,
            self.name,
            self._url,
            request_timeout=self._timeout,
            json=body,
            secrets=url_secrets(self._url),
        )
        received = self._clock()
        reported = _date(response.headers.get("date", ""))
        if reported is not None:
            # Date has whole seconds: the offset is known to within one second.
            self._offset = reported + 0.5 - received
        return reported

    def _alert(
        self, event: AlertEvent, severity: Severity, starts: float, ends: float | None
    ) -> dict[str, Any]:
        return alert(
            event,
            severity=severity,
            starts_at=starts,
            generator_url=self._generator_url,
            ends_at=ends,
        )


def _date(value: str) -> float | None:
    """An HTTP Date header as Unix time; None when absent or unreadable."""
    if not value or len(value) > 64:
        return None
    from email.utils import parsedate_to_datetime  # with an answer: httpx loaded email already

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
