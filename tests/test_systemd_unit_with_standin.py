"""The shipped unit under a real systemd (PID 1 of private namespaces), running a stand-in
daemon (tests/notify_standin.py) built on watchdog.service.notify and watchdog.telemetry.journal.

Each unit is ``systemd/cluster-watchdog.service`` as shipped — the full hardening included —
plus a drop-in that swaps ExecStart for the stand-in and compresses the timings
(WatchdogSec=2s, RestartSec=200ms). Every test drives its own unit of one shared instance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need
from fixtures_systemd import (
    SystemdNS,
    start_systemd_ns,
    systemd_ns_available,
    unit_file,
    unit_python,
)

from watchdog.core.model import EventType
from watchdog.telemetry.journal import MESSAGE_IDS

pytestmark = pytest.mark.systemd

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "notify_standin.py"
SECRET = "s3cret-value-for-the-e2e-test"
UNITS = {  # unit name -> stand-in arguments
    "cw-ready": "--load-seconds 0.6",
    "cw-sandbox": "",
    "cw-reload": "",
    "cw-stall": "",
    "cw-badconfig": "--config bad",
    "cw-stop": "",
}


@pytest.fixture(scope="module")
def ns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdNS]:
    ok, missing = systemd_ns_available()
    need(ok, f"systemd in private namespaces needs: {missing}")
    python = unit_python()
    need(python is not None, "a python outside /root and /home that a DynamicUser can run")
    assert python is not None
    exe, pythonpath = python
    work = tmp_path_factory.mktemp("e2e")
    src = work / "src"
    src.mkdir()
    (work / "ns").mkdir()
    secret = work / "ns" / "secret"  # inside the instance's workdir: the only /tmp path it sees
    secret.write_text(SECRET)
    secret.chmod(0o600)  # root-only: only LoadCredential= (PID 1) can hand it to the unit
    shipped = (ROOT / "systemd" / "cluster-watchdog.service").read_text()
    for name, args in UNITS.items():
        (src / f"{name}.service").write_text(shipped)
        (src / f"{name}.service.d").mkdir()
        (src / f"{name}.service.d" / "test.conf").write_text(
            "[Service]\n"
            "ExecStart=\n"
            f"ExecStart={exe} {unit_file(STANDIN)} {args}\n"
            f"Environment=PYTHONPATH={pythonpath}\n"
            "WatchdogSec=2s\n"
            "RestartSec=200ms\n"
            f"LoadCredential=standin-secret:{secret}\n"
        )
    instance = start_systemd_ns(
        src, work / "ns", sysctl_conf=ROOT / "systemd" / "99-cluster-watchdog-ping.conf"
    )
    yield instance
    instance.stop()


def events(ns: SystemdNS, unit: str, event: EventType) -> list[dict[str, object]]:
    return [e for e in ns.journal(unit) if e.get("MESSAGE_ID") == MESSAGE_IDS[event]]


def test_the_unit_is_active_only_after_ready(ns: SystemdNS) -> None:
    unit = "cw-ready.service"
    assert ns.systemctl("start", "--no-block", unit).returncode == 0
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = (ns.show(unit, "ActiveState"), ns.show(unit, "StatusText"))
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] != "activating":
            break
        time.sleep(0.05)
    # While the stand-in "loads its config" (0.6 s) systemd must not call it started.
    assert ("activating", "loading config") in seen, seen
    assert seen[-1] == ("active", "ready ✓ reloads=0"), seen
    assert ns.show(unit, "SubState") == "running"


def test_status_and_structured_events_reach_the_journal_from_the_unit(ns: SystemdNS) -> None:
    unit = "cw-sandbox.service"
    assert ns.systemctl("start", unit).returncode == 0  # returns once READY=1 arrived
    assert ns.show(unit, "StatusText") == "ready ✓ reloads=0"  # UTF-8 accepted by systemd
    [started] = events(ns, unit, EventType.STARTED)
    # The handler chose journald's native protocol by itself (JOURNAL_STREAM matched).
    assert started["_TRANSPORT"] == "journal"
    assert started["_SYSTEMD_UNIT"] == unit  # so `journalctl -u … MESSAGE_ID=…` finds it
    assert (started["NODE"], started["CLUSTER"], started["EVENT"]) == ("standin", "e2e", "started")
    assert started["SYSLOG_IDENTIFIER"] == "cluster-watchdog"


def test_the_hardened_sandbox_still_allows_what_the_daemon_needs(ns: SystemdNS) -> None:
    unit = "cw-sandbox.service"
    assert ns.systemctl("start", unit).returncode == 0  # a no-op if already running
    [started] = events(ns, unit, EventType.STARTED)
    assert "lo" in str(started["IFACES"]).split(","), started["IFACES"]  # psutil, netlink
    assert "lo" in str(started["IFADDRS"]).split(","), started["IFADDRS"]
    assert started["ICMP"] == "ok"  # ping socket: sysctl drop-in, no CAP_NET_RAW
    assert started["STATE_WRITABLE"] == "yes"  # StateDirectory= under ProtectSystem=strict
    assert started["CREDENTIAL_BYTES"] == str(len(SECRET))  # LoadCredential= + DynamicUser
    assert 61184 <= int(str(started["UID"])) <= 65519  # DynamicUser's range, not root
    assert all(SECRET not in str(e) for e in ns.journal())


def test_systemctl_reload_runs_a_reload_and_the_daemon_reports_ready_again(
    ns: SystemdNS,
) -> None:
    unit = "cw-reload.service"
    assert ns.systemctl("start", unit).returncode == 0
    main_pid = ns.show(unit, "MainPID")
    assert ns.systemctl("reload", unit).returncode == 0
    assert ns.wait_for(unit, "StatusText", "ready ✓ reloads=1", timeout=5)
    assert ns.show(unit, "ActiveState") == "active"
    assert ns.show(unit, "MainPID") == main_pid  # reloaded in place, not restarted
    assert len(events(ns, unit, EventType.CONFIG_RELOADED)) == 1
    assert any(m.startswith("Reloaded cw-reload.service") for m in ns.messages(unit))


def test_a_stalled_event_loop_is_killed_by_the_watchdog_and_restarted(ns: SystemdNS) -> None:
    unit = "cw-stall.service"
    assert ns.systemctl("start", unit).returncode == 0
    first_pid = ns.show(unit, "MainPID")
    time.sleep(2.5)  # longer than WatchdogSec=2s: the pings keep a healthy loop alive
    assert (ns.show(unit, "NRestarts"), ns.show(unit, "MainPID")) == ("0", first_pid)
    ns.systemctl("kill", "-s", "SIGUSR1", "--kill-who=main", unit)  # block the event loop
    assert ns.wait_for(unit, "NRestarts", lambda v: v not in ("", "0"), timeout=10)
    assert ns.wait_for(unit, "ActiveState", "active", timeout=10)
    assert ns.show(unit, "MainPID") != first_pid
    messages = ns.messages(unit)
    assert f"{unit}: Watchdog timeout (limit 2s)!" in messages
    assert f"{unit}: Failed with result 'watchdog'." in messages
    # PYTHONFAULTHANDLER=1: SIGABRT dumps the blocking frame into the journal.
    assert any(f'{STANDIN.name}"' in m and "in stall" in m for m in messages), messages


def test_exit_status_78_ends_in_failed_without_a_restart_loop(ns: SystemdNS) -> None:
    unit = "cw-badconfig.service"
    assert ns.systemctl("start", unit).returncode != 0
    time.sleep(0.6)  # three times RestartSec: a restart would have happened by now
    props = {p: ns.show(unit, p) for p in ("ActiveState", "Result", "ExecMainStatus", "NRestarts")}
    assert props == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "78",
        "NRestarts": "0",
    }


def test_stop_ends_the_unit_cleanly(ns: SystemdNS) -> None:
    unit = "cw-stop.service"
    assert ns.systemctl("start", unit).returncode == 0
    assert ns.systemctl("stop", unit).returncode == 0
    props = {p: ns.show(unit, p) for p in ("ActiveState", "Result", "ExecMainStatus")}
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
