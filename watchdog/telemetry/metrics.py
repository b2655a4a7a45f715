"""The metrics hooks: one line where something countable happens, nothing when nobody scrapes.

The engine and the alert dispatcher call :func:`probe_observed`, :func:`power_done`,
:func:`page_sent` and :func:`page_failed` as things happen. Until :func:`enable` is called
they return at once and prometheus_client is never imported (a few MiB the daemon does not
need when ``metrics.listen`` is unset: nothing could read the counts). Once enabled they
count into :mod:`watchdog.telemetry.exposition`, which the metrics endpoint serves; the
daemon enables them before its first probe, the endpoint when it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.core.model import ActionKind, AlertEvent, ProbeResult

_enabled = False


def enable() -> None:
    """Count from now on (imports prometheus_client and registers the counters)."""
    global _enabled
    from watchdog.telemetry import exposition  # noqa: F401 -- the counters exist from here

    _enabled = True


def enabled() -> bool:
    return _enabled


def probe_observed(result: ProbeResult) -> None:
    if _enabled:
        from watchdog.telemetry import exposition

        exposition.probe_observed(result)


def power_done(node: str, kind: ActionKind, ok: bool) -> None:
    if _enabled:
        from watchdog.telemetry import exposition

        exposition.power_done(node, kind, ok)


def page_sent(channel: str, event: AlertEvent) -> None:
    if _enabled:
        from watchdog.telemetry import exposition

        exposition.page_sent(channel, event)


def page_failed(channel: str, event: AlertEvent) -> None:
    if _enabled:
        from watchdog.telemetry import exposition

        exposition.page_failed(channel, event)
