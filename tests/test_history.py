"""The incident history: its bounded, crash-safe log and ``cluster-watchdog history``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from watchdog.core import incidents
from watchdog.core.model import (
    ActionKind,
    AlertEvent,
    AlertStatus,
    Condition,
    PowerAction,
    Severity,
)
from watchdog.plugs.cycle_steps import CycleOutcome, CycleStep, StepReport
from watchdog.sim.harness import Harness
from watchdog.state import history

T0 = 1_800_000_000.0


def wedged(status: AlertStatus, at: float, node: str = "spark-1") -> AlertEvent:
    return AlertEvent(
        node=node,
        cluster="main",
        condition=Condition.WEDGED,
        status=status,
        severity=Severity.CRITICAL,
        summary=f"{node} wedged: ssh no_banner 3x",
        at=at,
    )


CYCLED = CycleOutcome(
    ok=True,
    steps=(
        StepReport(CycleStep.OFF, True, "", 0.1),
        StepReport(CycleStep.ON, True, "", 0.1),
    ),
    failed_step=None,
    left_off=False,
)


def write_incident(state: Path) -> None:
    history.alert_raised(state, wedged(AlertStatus.TRIGGER, T0))
    history.page_delivered(state, "on-call", wedged(AlertStatus.TRIGGER, T0), T0 + 1)
    history.power_done(
        state, PowerAction(ActionKind.POWER_CYCLE, "spark-1", "wedged"), CYCLED, "main", T0 + 70
    )
    history.alert_raised(state, wedged(AlertStatus.TRIGGER, T0 + 70))  # an update
    history.alert_raised(state, wedged(AlertStatus.RESOLVE, T0 + 300))
    history.page_delivered(state, "on-call", wedged(AlertStatus.RESOLVE, T0 + 300), T0 + 301)


def test_an_incident_gathers_its_power_cycle_and_pages(tmp_path: Path) -> None:
    write_incident(tmp_path)
    [inc] = incidents.incidents(history.read(tmp_path))
    assert (inc.node, inc.condition, inc.start, inc.end) == ("spark-1", "wedged", T0, T0 + 300)
    assert inc.duration(T0 + 1000) == 300
    assert inc.pages_sent == 1 and inc.pages_resolved == 1 and inc.channels == ["on-call"]
    [action] = inc.actions
    assert action.startswith("power_cycle at ") and "ok [off:ok on:ok]" in action
    assert inc.summary == "spark-1 wedged: ssh no_banner 3x"


def test_an_unresolved_incident_is_open_and_a_lone_manual_cycle_is_its_own(
    tmp_path: Path,
) -> None:
    history.alert_raised(tmp_path, wedged(AlertStatus.TRIGGER, T0, node="spark-2"))
    manual = PowerAction(ActionKind.POWER_CYCLE, "spark-1", "operator", manual=True)
    failed = CycleOutcome(False, (StepReport(CycleStep.OFF, False, "", 1),), CycleStep.OFF, False)
    history.power_done(tmp_path, manual, failed, "main", T0 + 5)
    rows = incidents.incidents(history.read(tmp_path))
    assert [(i.node, i.condition, i.end) for i in rows] == [
        ("spark-2", "wedged", None),
        ("spark-1", "power_cycle", T0 + 5),
    ]
    assert rows[1].actions[0].startswith("power_cycle by operator at")
    assert "FAILED [off:FAILED]" in rows[1].actions[0]
    table = incidents.render_table(rows, T0 + 65)
    assert "until open" in table and "1m05s" in table


def test_a_torn_last_line_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    write_incident(tmp_path)
    with (tmp_path / history.HISTORY_FILE).open("ab") as f:
        f.write(b'["not a record"]\n' + b"x" * (history.MAX_LINE + 10) + b'\n{"t": 18000')
    records = list(history.read(tmp_path))
    assert len(records) == 6
    [inc] = incidents.incidents(records)
    assert inc.end == T0 + 300
    # Appending after a torn line still works: the new record is read back.
    history.alert_raised(tmp_path, wedged(AlertStatus.TRIGGER, T0 + 400))
    assert len(incidents.incidents(history.read(tmp_path))) == 2


def test_the_log_rotates_at_its_cap_and_never_exceeds_twice_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_BYTES", 2000)
    for i in range(200):
        history.alert_raised(tmp_path, wedged(AlertStatus.TRIGGER, T0 + i, node=f"n{i}"))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["history.jsonl", "history.jsonl.1"]
    assert all((tmp_path / f).stat().st_size <= 2000 for f in files)
    nodes = [r["node"] for r in history.read(tmp_path)]
    assert nodes[-1] == "n199" and nodes == sorted(nodes, key=lambda n: int(n[1:]))
    assert len(nodes) < 200  # the oldest went with the rotation


def test_an_unwritable_state_directory_loses_the_record_not_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "gone"
    history.alert_raised(missing, wedged(AlertStatus.TRIGGER, T0))
    assert "history not written" in caplog.text


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "watchdog: {state_dir: " + str(tmp_path / "state") + "}\n"
        "clusters:\n"
        "  - name: main\n"
        "    endpoint: {base_url: 'http://127.0.0.1:9', model: m}\n"
        "    nodes:\n"
        "      - {name: spark-1, host: 127.0.0.1, plug: {type: dry_run}}\n"
        "      - {name: spark-2, host: 127.0.0.2, plug: {type: dry_run}}\n"
    )
    (tmp_path / "state").mkdir()
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "history", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e  # runs cluster-watchdog as a real process
def test_history_reads_the_log_without_a_daemon_filtered_by_node_and_age(tmp_path: Path) -> None:
    config = _config(tmp_path)
    state = tmp_path / "state"
    now = time.time()
    history.alert_raised(state, wedged(AlertStatus.TRIGGER, now - 3 * 86400, node="spark-2"))
    history.alert_raised(state, wedged(AlertStatus.RESOLVE, now - 3 * 86400 + 60, node="spark-2"))
    history.alert_raised(state, wedged(AlertStatus.TRIGGER, now - 60))
    ran = cli(config)
    assert ran.returncode == 0, ran.stderr
    assert "spark-1" in ran.stdout and "until open" in ran.stdout
    assert "spark-2" not in ran.stdout  # three days ago: outside the default 24h
    doc: list[dict[str, Any]] = json.loads(cli(config, "--since", "7d", "--json").stdout)
    assert [(d["node"], d["open"]) for d in doc] == [("spark-2", False), ("spark-1", True)]
    assert doc[0]["duration"] == 60.0
    only = json.loads(cli(config, "spark-2", "--since", "7d", "--json").stdout)
    assert [d["node"] for d in only] == ["spark-2"]
    assert "no incidents" in cli(config, "spark-2").stdout


@pytest.mark.e2e
@pytest.mark.timeout(120)
async def test_the_daemon_records_a_wedge_its_cycle_and_its_pages_across_a_restart(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path) as h:
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge("spark-1")
        await h.wait_until(lambda: h.has_alert("spark-1", "wedged", "resolve"), 40, "recovery")
        await h.sleep(0.5)
        await h.restart_daemon()  # the log survives the daemon
        await h.healthy()
        running = await asyncio.to_thread(cli, h.config_path, "spark-1", "--json")
    ran = cli(h.config_path, "spark-1", "--json")  # and needs no daemon
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == running.stdout
    [inc] = json.loads(ran.stdout)
    assert inc["condition"] == "wedged" and not inc["open"]
    [action] = inc["actions"]
    assert action.startswith("power_cycle at ") and ": ok [" in action
    assert inc["pages_sent"] >= 1 and inc["pages_resolved"] == 1
    assert inc["channels"] == ["on-call"]


@pytest.mark.e2e  # runs cluster-watchdog as a real process
def test_an_unreadable_log_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "state" / history.HISTORY_FILE).mkdir()  # a directory cannot be read as one
    ran = cli(config)
    assert ran.returncode == 1
    assert "cannot read" in ran.stderr and "history.jsonl" in ran.stderr
    assert "Traceback" not in ran.stderr
