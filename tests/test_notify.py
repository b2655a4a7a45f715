"""watchdog.service.notify against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchdog.service.notify import Notifier, watchdog_loop


class NotifySocket:
    """A bound SOCK_DGRAM socket recording (arrival time, text) of every datagram."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET spells it ("@name" = abstract)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)
            self.received.append((time.monotonic(), data.decode("utf-8")))

    def messages(self, settle: float = 0.1) -> list[str]:
        time.sleep(settle)  # let the receiver thread drain the queue
        return [text for _, text in self.received]

    def raw(self, settle: float = 0.1) -> list[bytes]:
        time.sleep(settle)
        return list(self.datagrams)

    def pings(self) -> list[float]:
        return [at for at, text in self.received if text == "WATCHDOG=1"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path can be long.
    with tempfile.TemporaryDirectory(prefix="cwn-") as d:
        sock = NotifySocket(str(Path(d) / "notify"))
        yield sock
        sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket(f"@cluster-watchdog-test-{os.getpid()}-{time.monotonic_ns()}")
    yield sock
    sock.close()


def test_it_sends_ready_status_reloading_and_stopping(notify_socket: NotifySocket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    assert n.enabled
    n.ready("config loaded, 2 nodes")
    n.status("2/2 nodes healthy, 0 cycles in 6h")
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    n.ready()
    n.stopping()
    msgs = notify_socket.messages()
    assert msgs[0] == "READY=1\nSTATUS=config loaded, 2 nodes"
    assert msgs[1] == "STATUS=2/2 nodes healthy, 0 cycles in 6h"
    reload_lines = msgs[2].split("\n")
    assert reload_lines[0] == "RELOADING=1"
    key, _, usec = reload_lines[1].partition("=")
    assert key == "MONOTONIC_USEC" and 0 <= int(usec) - before < 5_000_000
    assert msgs[3:] == ["READY=1", "STOPPING=1"]


def test_it_speaks_to_an_abstract_notify_socket(abstract_socket: NotifySocket) -> None:
    n = Notifier({"NOTIFY_SOCKET": abstract_socket.address})
    n.ready()
    n.watchdog_ping()
    assert abstract_socket.messages() == ["READY=1", "WATCHDOG=1"]


def test_status_is_one_line_of_utf8_whatever_the_characters(notify_socket: NotifySocket) -> None:
    # systemd ignores a STATUS= that is not UTF-8; sdnotify alone would send latin-1 bytes
    # ("café") or drop the message ("→").
    n = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    n.status("café: spark-1 → wedged\nsecond line\t ok")
    [raw] = notify_socket.raw()
    assert raw == "STATUS=café: spark-1 → wedged second line ok".encode()


def test_it_reads_the_notify_socket_from_the_process_environment_by_default(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = Notifier()
    n.ready()
    assert n.watchdog_interval == 2.0
    assert notify_socket.messages() == ["READY=1"]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled
    n.ready("x")
    n.status("y")
    n.reloading()
    n.stopping()
    n.watchdog_ping()
    started = time.monotonic()
    asyncio.run(watchdog_loop(n))  # no manager to feed: returns at once
    assert time.monotonic() - started < 0.1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "bogus"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec_and_only_for_our_pid(
    env: dict[str, str], expected: float | None
) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent", **env}).watchdog_interval == expected


async def test_the_watchdog_loop_pings_at_half_the_interval(notify_socket: NotifySocket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "200000"})
    task = asyncio.create_task(watchdog_loop(n))
    await asyncio.sleep(0.55)
    task.cancel()
    pings = notify_socket.pings()
    # At 0, .1, .2, .3, .4, .5 s; a full-interval pinger would manage 3. Loose upper bounds:
    # a loaded CI machine may oversleep.
    assert 4 <= len(pings) <= 7, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.07 < g < 0.3 for g in gaps), gaps


async def test_a_blocked_event_loop_stops_the_pings(notify_socket: NotifySocket) -> None:
    interval = 0.1
    n = Notifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "200000"})
    assert n.watchdog_interval == interval
    task = asyncio.create_task(watchdog_loop(n))
    await asyncio.sleep(0.25)

    async def stall() -> None:
        time.sleep(3 * interval)  # blocks the whole loop, like a wedged probe would

    blocked_from = time.monotonic()
    await stall()
    blocked_until = time.monotonic()
    await asyncio.sleep(0.25)
    task.cancel()
    pings = notify_socket.pings()
    during = [p for p in pings if blocked_from + 0.01 < p < blocked_until - 0.01]
    assert during == [], "no WATCHDOG=1 may leave a blocked loop"
    assert len([p for p in pings if p < blocked_from]) >= 2
    assert [p for p in pings if p >= blocked_until], "pings resume once the loop runs again"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) >= 3 * interval - 0.02


async def test_an_unhealthy_daemon_withholds_its_pings(notify_socket: NotifySocket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "100000"})
    healthy: bool | None = True

    def check() -> bool:
        if healthy is None:
            raise RuntimeError("health check broke")
        return healthy

    task = asyncio.create_task(watchdog_loop(n, is_healthy=check))
    await asyncio.sleep(0.12)
    healthy = False
    mark = time.monotonic()
    await asyncio.sleep(0.15)
    healthy = None  # a raising check counts as unhealthy
    await asyncio.sleep(0.15)
    task.cancel()
    pings = notify_socket.pings()
    assert pings, "pinged while healthy"
    assert [p for p in pings if p > mark + 0.05] == []  # 50 ms for the receiver thread


def test_send_failures_are_swallowed_and_logged_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.DEBUG, logger="watchdog.notify"):
        n.ready()
        n.status("x")
        n.watchdog_ping()
    failures = [r for r in caplog.records if "sd_notify" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG


def test_it_reconnects_when_the_socket_appears_later(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="cwn-") as d:
        path = str(Path(d) / "late")
        n = Notifier({"NOTIFY_SOCKET": path})
        n.ready()  # nobody listens yet
        late = NotifySocket(path)
        try:
            n.status("up")
            assert late.messages() == ["STATUS=up"]
        finally:
            late.close()
