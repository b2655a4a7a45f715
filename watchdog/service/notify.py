"""sd_notify for systemd ``Type=notify``: readiness, status, reload, stop and watchdog pings
(adapter layer).

Owns the conversation with the service manager over ``$NOTIFY_SOCKET`` and the software
watchdog: :func:`watchdog_loop` sends ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC`` from inside
the asyncio event loop, so a stalled loop stops the pings and systemd restarts the daemon
(scenario S12, docs/design.md, "Scenario catalogue").

The datagrams go out through the ``sdnotify`` package (a dependency kept on purpose), which covers
only the send. What it leaves out is done here: it reads ``NOTIFY_SOCKET`` from the process
environment only (we connect to the address from the mapping we were given, so tests can
point us at their own socket), it ignores ``WATCHDOG_USEC``/``WATCHDOG_PID``, and it encodes
text as latin-1, silently dropping a message with any other character — while systemd
ignores a ``STATUS=`` that is not valid UTF-8 (measured on 252: "not UTF-8 clean, ignoring").
So we hand it UTF-8 bytes spelled as latin-1 code points, and the wire carries UTF-8. All
sends are no-ops without ``NOTIFY_SOCKET``; a failed send is logged once at debug and
otherwise ignored: the manager's absence must never stop the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

import sdnotify

log = logging.getLogger("watchdog.notify")


def _one_line(text: str) -> str:
    """``systemctl status`` shows one line: newlines and runs of blanks become one space."""
    return " ".join(text.split())


def _as_latin1(text: str) -> str:
    """``text``'s UTF-8 bytes as latin-1 code points: sdnotify's latin-1 encoding of this
    yields exactly the UTF-8 bytes systemd requires (lone surrogates become ``?``)."""
    return text.encode("utf-8", "replace").decode("latin-1")


class _Sender(sdnotify.SystemdNotifier):  # type: ignore[misc]  # sdnotify is untyped
    """sdnotify's sender, connected to an address we choose rather than ``os.environ``'s."""

    def __init__(self, address: str) -> None:  # replaces sdnotify's os.environ lookup
        self.debug = True  # raise on failure: we log it, sdnotify would drop it silently
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # Non-blocking: a wedged PID 1 must not freeze our event loop; a lost ping is harmless.
        self.socket.setblocking(False)
        try:
            # "@name" is an abstract socket: the kernel spells it with a leading NUL.
            self.socket.connect("\0" + address[1:] if address.startswith("@") else address)
        except OSError:
            self.socket.close()
            raise


class Notifier:
    """Talks to systemd through ``NOTIFY_SOCKET``; every method is a no-op without it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = env.get("NOTIFY_SOCKET") or None
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._sender: _Sender | None = None
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        """True when a service manager listens (``NOTIFY_SOCKET`` is set)."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, as sd_notify(3)
        advises. None when no watchdog is asked for, or it is meant for another process."""
        try:
            usec = int(self._watchdog_usec or "0")
            if self._watchdog_pid and int(self._watchdog_pid) != os.getpid():
                return None
        except ValueError:
            return None
        return usec / 2_000_000 if usec > 0 else None

    def notify(self, *assignments: str) -> None:
        """Send ``KEY=value`` assignments in one datagram (the primitive behind the rest)."""
        if self._address is None:
            return
        try:
            if self._sender is None:
                self._sender = _Sender(self._address)
            self._sender.notify(_as_latin1("\n".join(assignments)))
        except OSError as exc:
            if self._sender is not None:  # reconnect next time: the socket may come back
                self._sender.socket.close()
                self._sender = None
            if not self._failed_once:
                self._failed_once = True
                log.debug(
                    "sd_notify to %s failed (%s); further failures not logged", self._address, exc
                )

    def ready(self, status: str | None = None) -> None:
        if status is None:
            self.notify("READY=1")
        else:
            self.notify("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> None:
        """One line shown by ``systemctl status`` (any Unicode; sent as UTF-8)."""
        self.notify(f"STATUS={_one_line(text)}")

    def reloading(self) -> None:
        """Begin a reload; follow with :meth:`ready` when it is done (or failed)."""
        # MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253); 252 ignores it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog_ping(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sender is not None:
            self._sender.socket.close()
            self._sender = None


async def watchdog_loop(
    notifier: Notifier, *, is_healthy: Callable[[], bool] = lambda: True
) -> None:
    """Ping systemd's watchdog every ``watchdog_interval`` seconds until cancelled.

    Runs as a task on the daemon's own event loop: if the loop is blocked, this task cannot
    run and the pings stop — which is the point. ``is_healthy`` lets the daemon withhold a
    ping (e.g. when its scheduler has stopped ticking); a health check that raises counts as
    unhealthy. Returns at once when there is no watchdog to feed.
    """
    interval = notifier.watchdog_interval
    if interval is None or not notifier.enabled:
        return
    while True:
        try:
            healthy = is_healthy()
        except Exception:
            log.exception("watchdog health check raised; withholding the ping")
            healthy = False
        if healthy:
            notifier.watchdog_ping()
        await asyncio.sleep(interval)
