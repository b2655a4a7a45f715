"""On-call alerts: channels (webhook, Slack, ntfy, PagerDuty, Alertmanager), dispatch, heartbeat.

The daemon builds channels with :func:`build_channels`, routes events through a
:class:`Dispatcher`, and pings the dead-man :class:`Heartbeat` once per cycle.
"""

from watchdog.alerts.base import Channel, DeliveryError
from watchdog.alerts.dispatch import Dispatcher
from watchdog.alerts.factory import build_channels
from watchdog.alerts.heartbeat import Heartbeat

__all__ = ["Channel", "DeliveryError", "Dispatcher", "Heartbeat", "build_channels"]
