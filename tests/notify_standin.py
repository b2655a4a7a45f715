"""A stand-in for ``cluster-watchdog run`` under a real systemd.

Used by tests/test_systemd_unit_with_standin.py.

It has the daemon's systemd-facing life cycle, built on the real :mod:`watchdog.service.notify` and
:mod:`watchdog.telemetry.journal`:

- "loads its config" for ``--load-seconds`` (STATUS=loading config), then sends READY=1;
  ``--config bad`` instead exits 78 (EX_CONFIG) like a broken config file;
- logs a STARTED event with structured fields, including what the unit's sandbox allowed
  (``IFACES`` from psutil, ``ICMP`` ping socket, ``STATE_WRITABLE``, ``CREDENTIAL_BYTES`` —
  the size of the ``standin-secret`` credential, never its value);
- feeds the systemd watchdog from its event loop (:func:`watchdog.service.notify.watchdog_loop`);
- SIGHUP: RELOADING=1, a fake reload, READY=1 with ``STATUS=ready ✓ reloads=N`` (non-ASCII
  on purpose: systemd must receive it as UTF-8);
- SIGUSR1: blocks its event loop (``time.sleep``) until killed — a stall, as in scenario S12;
- SIGTERM: STOPPING=1 and exit 0.

Signals rather than a trigger file: with PrivateTmp= and ProtectSystem=strict the unit and the
test share no writable path, while ``systemctl kill -s SIGUSR1`` always reaches the main PID.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

from watchdog.core.model import EventType
from watchdog.service.notify import Notifier, watchdog_loop
from watchdog.telemetry.journal import log_event, setup_logging

log = logging.getLogger("standin")


def sandbox_report() -> dict[str, str]:
    """What the daemon needs from its sandbox, as journal fields (never secret values)."""
    report: dict[str, str] = {"uid": str(os.getuid())}
    try:
        import psutil  # the daemon checks its own link with it

        report["ifaces"] = ",".join(sorted(psutil.net_if_stats()))
        report["ifaddrs"] = ",".join(sorted(psutil.net_if_addrs()))
    except Exception as exc:
        report["ifaces"] = f"error: {exc!r}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP):
            report["icmp"] = "ok"
    except OSError as exc:
        report["icmp"] = f"error: {exc.strerror}"
    state = os.environ.get("STATE_DIRECTORY", "")
    try:
        (Path(state) / "probe").write_text("x")
        report["state_writable"] = "yes"
    except OSError as exc:
        report["state_writable"] = f"no: {exc.strerror}"
    cred = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent")) / "standin-secret"
    report["credential_bytes"] = str(len(cred.read_bytes())) if cred.exists() else "none"
    return report


async def main(args: argparse.Namespace) -> int:
    setup_logging("info")
    notifier = Notifier()
    notifier.status("loading config")
    await asyncio.sleep(args.load_seconds)
    if args.config == "bad":
        log.error("config.yaml: nodes[0].plug.host: field required")
        return 78
    loop = asyncio.get_running_loop()
    reloads = 0
    stop = asyncio.Event()

    async def reload() -> None:
        nonlocal reloads
        notifier.reloading()
        await asyncio.sleep(0.1)
        reloads += 1
        log_event(log, EventType.CONFIG_RELOADED, f"reload {reloads} done")
        notifier.ready(f"ready ✓ reloads={reloads}")

    def stall() -> None:
        log.warning("stalling the event loop on purpose")
        time.sleep(3600)

    reload_tasks: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload())
        reload_tasks.add(task)
        task.add_done_callback(reload_tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.call_soon(stall))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pinger = loop.create_task(watchdog_loop(notifier))
    log_event(
        log,
        EventType.STARTED,
        "stand-in started",
        node="standin",
        cluster="e2e",
        **sandbox_report(),  # type: ignore[arg-type]  # str values; mypy fears severity=
    )
    notifier.ready(f"ready ✓ reloads={reloads}")
    await stop.wait()
    notifier.stopping()
    pinger.cancel()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", choices=["ok", "bad"], default="ok")
    parser.add_argument("--load-seconds", type=float, default=0.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
