"""Builds the configured alert channels (config models -> channel objects).

Each channel is named after ``cfg.name``, else its type; duplicates get ``-2``, ``-3``…
so log lines and ``Dispatcher.sent`` tell them apart without ever showing a URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchdog import config
from watchdog.alerts.alertmanager import AlertmanagerChannel
from watchdog.alerts.base import Channel
from watchdog.alerts.ntfy import NtfyChannel
from watchdog.alerts.pagerduty import PagerDutyChannel
from watchdog.alerts.slack import SlackChannel
from watchdog.alerts.webhook import WebhookChannel

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient


def build_channels(cfg: config.Alerts, client: HttpClient) -> list[Channel]:
    """One channel object per configured channel, in configuration order."""
    channels: list[Channel] = []
    used: set[str] = set()
    for ch in cfg.channels:
        name = base = ch.name or ch.type
        n = 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        if isinstance(ch, config.WebhookChannel):
            channels.append(WebhookChannel(ch, client, name))
        elif isinstance(ch, config.SlackChannel):
            channels.append(SlackChannel(ch, client, name))
        elif isinstance(ch, config.NtfyChannel):
            channels.append(NtfyChannel(ch, client, name))
        elif isinstance(ch, config.PagerDutyChannel):
            channels.append(PagerDutyChannel(ch, client, name))
        else:
            channels.append(AlertmanagerChannel(ch, client, name))
    return channels
