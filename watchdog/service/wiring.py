"""What the daemon builds from a config, and what a reload changes (entry layer).

Concrete adapters are chosen here and in :mod:`watchdog.service.daemon`, nowhere else: plug drivers
(all of them dry-run ones under ``--dry-run``), the alert dispatcher and its channels, the
dead-man heartbeat. A reload swaps only what changed: the plug drivers whose config changed,
the dispatcher when an ``alerts`` key did; :func:`config_diff` names the changed keys.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.alerts.dispatch import Delivery, DeliveryReport, Dispatcher
from watchdog.alerts.factory import build_channels
from watchdog.alerts.heartbeat import Heartbeat
from watchdog.config import Config, load_config
from watchdog.core.model import AlertEvent, AlertStatus, Condition, EventType, Severity
from watchdog.plugs.base import Plug
from watchdog.plugs.factory import make_plug
from watchdog.state import history
from watchdog.telemetry.journal import log_event

if TYPE_CHECKING:
    from watchdog.alerts.client import HttpClient

# The daemon's logger: these lines are the daemon's own, wherever the code lives.
log = logging.getLogger("watchdog.daemon")


def load(path: Path, *, dry_run: bool = False) -> Config:
    """Load and validate; ``--dry-run`` forces every plug to the dry-run driver."""
    cfg = load_config(path)
    if dry_run and not cfg.watchdog.dry_run:
        cfg = cfg.model_copy(update={"watchdog": cfg.watchdog.model_copy(update={"dry_run": True})})
    return cfg


def build_plugs(cfg: Config) -> dict[str, Plug]:
    return {
        n.name: make_plug(n.plug, label=n.name, dry_run=cfg.watchdog.dry_run)
        for _, n in cfg.nodes()
    }


def changed_plugs(old: Config, new: Config) -> dict[str, Plug]:
    """Fresh drivers for every node whose plug config changed — all of them when dry run was
    switched on or off, so a reload into dry run really stops every plug from switching."""
    before = {n.name: n.plug for _, n in old.nodes()}
    flipped = old.watchdog.dry_run != new.watchdog.dry_run
    return {
        n.name: make_plug(n.plug, label=n.name, dry_run=new.watchdog.dry_run)
        for _, n in new.nodes()
        if flipped or before.get(n.name) != n.plug
    }


def build_dispatcher(cfg: Config, client: HttpClient, state_dir: Path) -> Dispatcher:
    """The dispatcher of ``cfg``'s alert channels: each delivered page goes into the history,
    each failed step into the journal."""
    a = cfg.alerts
    return Dispatcher(
        build_channels(a, client),
        renotify=a.renotify,
        rate_limit=a.rate_limit,
        rate_window=a.rate_window,
        retry_max=a.retry_max,
        retry_backoff=a.retry_backoff,
        on_delivery_failure=delivery_failed,
        on_delivered=functools.partial(_page_delivered, state_dir),
    )


def delivery_failed(report: DeliveryReport) -> None:
    log_event(
        log,
        EventType.ALERT_FAILED,
        f"alert delivery via {report.channel} failed: {report.reason}",
        # A retried or rate-limited attempt is a warning; a delivery given up on, an error.
        severity=Severity.ERROR if report.outcome is Delivery.GIVEN_UP else Severity.WARNING,
        node=report.event.node,
        action="alert_failed",
        channel=report.channel,
    )


async def heartbeat(cfg: Config, client: HttpClient, *, is_healthy: Callable[[], bool]) -> None:
    """Ping the dead-man heartbeat (if one is configured) while the daemon is healthy."""
    hb_cfg = cfg.alerts.heartbeat
    if hb_cfg is None:
        return
    hb = Heartbeat(hb_cfg.url, client, timeout=hb_cfg.timeout)
    while True:
        if is_healthy():
            await hb.ping(ok=True)
        await asyncio.sleep(hb_cfg.interval)


def _page_delivered(state_dir: Path, channel: str, event: AlertEvent) -> None:
    history.page_delivered(state_dir, channel, event, time.time())


def config_diff(old: Config, new: Config) -> list[str]:
    """Dotted paths whose values differ (secrets compare by value, print as their path only)."""
    out: list[str] = []
    _diff(old.model_dump(), new.model_dump(), "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
    elif _plain(a) != _plain(b):
        out.append(path)


def _plain(v: Any) -> Any:
    return v.get_secret_value() if hasattr(v, "get_secret_value") else v


def state_reset_event(problem: str, now: float) -> AlertEvent:
    """The page sent when the state file was unusable: budgets and latches were reset."""
    return AlertEvent(
        node="cluster-watchdog",
        cluster="watchdog",
        condition=Condition.STATE_RESET,
        status=AlertStatus.TRIGGER,
        severity=Severity.CRITICAL,
        summary="cluster-watchdog started with an empty state: its state file was unusable",
        seen=problem,
        done="set the file aside and started with no latches, pauses or cycle budget used",
        todo="inspect the file set aside; re-pause or re-latch nodes as needed",
        at=now,
    )
