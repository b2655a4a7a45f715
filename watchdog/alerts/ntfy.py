"""ntfy channel: POST the message as the body to the topic URL, metadata in headers.

Headers: ``Title`` (one line), ``Priority`` (1–5 from the severity; a resolve is 2 because
good news must not wake anyone), ``Tags`` (an emoji shortcode, the condition and the node),
and ``Authorization: Bearer <token>`` when a token is configured. Non-ASCII header values
are RFC 2047-encoded, which ntfy decodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchdog import config
from watchdog.alerts.base import header_value, post, render_text, title, url_secrets
from watchdog.core.model import AlertEvent, AlertStatus, Severity

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

PRIORITY = {Severity.INFO: 2, Severity.WARNING: 3, Severity.ERROR: 4, Severity.CRITICAL: 5}
RESOLVE_PRIORITY = 2


def headers(event: AlertEvent, token: str | None) -> dict[str, str]:
    """The ntfy publishing headers for ``event``."""
    if event.status is AlertStatus.RESOLVE:
        priority, icon = RESOLVE_PRIORITY, "white_check_mark"
    else:
        priority = PRIORITY[event.severity]
        # StrEnum compares as text, so name the loud severities explicitly.
        loud = event.severity in (Severity.ERROR, Severity.CRITICAL)
        icon = "rotating_light" if loud else "warning"
    out = {
        "Title": header_value(title(event)),
        "Priority": str(priority),
        "Tags": header_value(f"{icon},{event.condition.value},{event.node}"),
    }
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


class NtfyChannel:
    """Publishes to one ntfy topic (``https://ntfy.sh/my-topic``)."""

    def __init__(self, cfg: config.NtfyChannel, client: HttpClient, name: str) -> None:
        self.name = name
        self._url = cfg.url
        self._token = cfg.token
        self._timeout = cfg.timeout
        self._client = client

    def __repr__(self) -> str:
        return f"NtfyChannel(name={self.name!r})"

    async def send(self, event: AlertEvent) -> None:
        token = self._token.get_secret_value() if self._token is not None else None
        await post(
            self._client,
            self.name,
            self._url,
            request_timeout=self._timeout,
            content=render_text(event).encode(),
            headers=headers(event, token),
            secrets=[token or "", *url_secrets(self._url)],
        )
