"""Slack-compatible incoming-webhook channel (also Mattermost, Rocket.Chat, Discord's /slack).

Payload: ``{"text": ..., "blocks": [{"type": "section", "text": {"type": "mrkdwn", ...}}]}``.
``text`` is the notification fallback; the section carries the same message formatted.
The webhook URL is itself the credential: it is held as a SecretStr and never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watchdog import config
from watchdog.alerts.base import post, url_secrets
from watchdog.core.model import AlertEvent, AlertStatus, Severity

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

_ICON = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.ERROR: ":rotating_light:",
    Severity.CRITICAL: ":rotating_light:",
}
RESOLVED_ICON = ":white_check_mark:"


def _escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(event: AlertEvent) -> dict[str, Any]:
    """The incoming-webhook JSON for ``event``."""
    if event.status is AlertStatus.RESOLVE:
        head = f"{RESOLVED_ICON} *RESOLVED*"
    else:
        head = f"{_ICON[event.severity]} *{event.severity.value.upper()}*"
    head += (
        f" `{_escape(event.node)}` {_escape(event.condition.value)}"
        f" (cluster `{_escape(event.cluster)}`): {_escape(event.summary)}"
    )
    lines = [head]
    for label, value in (("Seen", event.seen), ("Done", event.done), ("To do", event.todo)):
        if value:
            lines.append(f"*{label}:* {_escape(value)}")
    if event.failure is not None:
        lines.append(f"*Failure:* `{event.failure.value}`")
    text = "\n".join(lines)
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


class SlackChannel:
    """POSTs :func:`payload` to a Slack-compatible incoming webhook."""

    def __init__(self, cfg: config.SlackChannel, client: HttpClient, name: str) -> None:
        self.name = name
        self._url = cfg.url
        self._timeout = cfg.timeout
        self._client = client

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r})"

    async def send(self, event: AlertEvent) -> None:
        url = self._url.get_secret_value()
        await post(
            self._client,
            self.name,
            url,
            request_timeout=self._timeout,
            json=payload(event),
            secrets=url_secrets(url),
        )
