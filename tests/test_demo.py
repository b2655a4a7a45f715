"""``cluster-watchdog demo``: the newcomer's first command works and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def _children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _listening_ports(pid: int) -> set[int]:
    try:
        return {
            c.laddr.port
            for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
    except psutil.NoSuchProcess:
        return set()


def test_the_demo_narrates_a_wedge_detected_cycled_and_recovered() -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - start
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for line in (
        "wedged",
        "suspect",
        "cycling",
        "power cycle step off",
        "power on",
        "sshd up",
        "booting -> healthy",
        "TRIGGER",
        "RESOLVE",
        "RESULT: as expected",
    ):
        assert line in out, f"missing {line!r} in the narration:\n{out}"
    assert "Traceback" not in out + proc.stderr
    # The summary ends with the run's incident history: the wedge, its cycle, its pages.
    history = out[out.index("The run's history") :]
    assert "spark-1      wedged" in history, out
    assert "pages: " in history and " 1 resolved (on-call)" in history, out
    assert "action: power_cycle at " in history and "done:ok]" in history, out
    assert elapsed < 90, f"the demo took {elapsed:.0f}s"


def test_the_demo_lists_its_scenarios() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo", "--list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    for name in (
        "wedge",
        "blip",
        "config-auth",
        "engine-stuck",
        "boot-loop",
        "both-wedged",
        "blind",
    ):
        assert name in proc.stdout


def test_an_unknown_scenario_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "demo", "--scenario", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "unknown scenario" in proc.stderr


def test_ctrl_c_stops_the_demo_and_leaves_no_process_or_port_behind() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    ports: set[int] = set()
    deadline = time.monotonic() + 30
    for line in proc.stdout:  # wait until the cluster runs and the daemon is watching
        ports |= _listening_ports(proc.pid)
        if "unknown -> healthy" in line or time.monotonic() > deadline:
            break
    ports |= _listening_ports(proc.pid)
    assert ports, "the demo should be serving the simulated cluster on loopback"
    children = _children_of(proc.pid)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for port in ports:
        with pytest.raises(OSError):
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
