"""``cluster-watchdog alert-test``: prove every configured channel delivers (orchestration).

Sends one test trigger and its resolve through each channel, directly (no dedup, no rate
limit), and the heartbeat ping; prints one line per channel. Exit 0 only if all delivered.
"""

from __future__ import annotations

import time
from dataclasses import replace

from watchdog.alerts.base import DeliveryError
from watchdog.alerts.factory import build_channels
from watchdog.alerts.heartbeat import Heartbeat
from watchdog.config import Config
from watchdog.core.model import AlertEvent, AlertStatus, Condition, Severity
from watchdog.probes.http import make_client


async def send_test_alerts(cfg: Config) -> bool:
    ok = True
    async with make_client() as client:
        channels = build_channels(cfg.alerts, client)
        if not channels and cfg.alerts.heartbeat is None:
            print("no alert channels configured (alerts.channels) and no heartbeat")
            return False
        now = time.time()
        base = AlertEvent(
            node="alert-test",
            cluster="alert-test",
            condition=Condition.WEDGED,
            status=AlertStatus.TRIGGER,
            severity=Severity.WARNING,
            summary="cluster-watchdog alert test: please ignore",
            seen="nothing: this is a test",
            done="nothing",
            todo="nothing",
            at=now,
        )
        for ch in channels:
            try:
                await ch.send(base)
                # Ended when it is sent, never in the future: a receiver such as Alertmanager
                # ignores a resolve whose end has not passed yet.
                resolve = replace(
                    base, status=AlertStatus.RESOLVE, severity=Severity.INFO, at=time.time()
                )
                await ch.send(resolve)
                print(f"{ch.name}: delivered trigger and resolve")
            except DeliveryError as exc:
                ok = False
                print(f"{ch.name}: FAILED: {exc}")
        hb = cfg.alerts.heartbeat
        if hb is not None:
            delivered = await Heartbeat(hb.url, client, timeout=hb.timeout).ping(ok=True)
            ok = ok and delivered
            print(f"heartbeat: {'pinged' if delivered else 'FAILED'}")
    return ok
