"""The operator CLI end to end: ``status``, ``pause``, ``resume``, ``clear``, ``cycle``.

With a daemon: the real daemon runs as a child process (``python -m watchdog run``) against
the simulated cluster, and the CLI runs as real child processes started with
``asyncio.create_subprocess_exec``, so the simulated plugs and sshd keep answering in this
test's event loop meanwhile. What happened is read from the plugs' own power records and the
alerts as received, not from the CLI's word.

Without a daemon: the CLI edits ``state.json`` itself under the state lock; a hand-written
config pointing at loopback addresses nobody contacts is enough there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from watchdog.commands import cli, operator_requests
from watchdog.commands.status import read_status
from watchdog.config import load_config
from watchdog.sim.harness import Harness
from watchdog.sim.harness_config import Timings
from watchdog.sim.sim_node import NodeFault
from watchdog.state import control, locks
from watchdog.state.store import NodeRecord, PersistedState, Store

pytestmark = pytest.mark.e2e  # real daemon processes: not in the fast lane

NODES = ("spark-1", "spark-2")
A, B = NODES
TWO_HOURS = 7200.0
# The harness's compressed timings, with a shorter hold-off: these tests are about the CLI.
QUICK = Timings(off_time=1.0)
# The CLI must not pick these up from the developer's shell.
_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("STATE_DIRECTORY", "CLUSTER_WATCHDOG_CONFIG", "NOTIFY_SOCKET")
}


@dataclass(frozen=True)
class Ran:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def _argv(config: Path, command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "watchdog", command, "-c", str(config), *args]


async def cli_async(config: Path, command: str, *args: str) -> Ran:
    """The CLI as a child process, while this loop keeps serving the simulated cluster."""
    proc = await asyncio.create_subprocess_exec(
        *_argv(config, command, *args),
        stdin=subprocess.DEVNULL,  # no TTY: `cycle` without --yes must refuse
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_ENV,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def cli_sync(config: Path, command: str, *args: str, stdin: Any = subprocess.DEVNULL) -> Ran:
    """The CLI as a child process, for tests without a simulated cluster."""
    done = subprocess.run(
        _argv(config, command, *args),
        stdin=stdin,
        capture_output=True,
        text=True,
        env=_ENV,
        timeout=40,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def table(out: str) -> dict[str, dict[str, str]]:
    """The ``status`` table as {node: {column: cell}} (cells are separated by 2+ spaces)."""
    lines = out.splitlines()
    head_at = next(i for i, line in enumerate(lines) if line.startswith("NODE "))
    head = re.split(r"\s{2,}", lines[head_at].strip())
    rows: dict[str, dict[str, str]] = {}
    for line in lines[head_at + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(head):
            break  # the notes below the table
        rows[cells[0]] = dict(zip(head, cells, strict=True))
    return rows


async def status_json(h: Harness) -> dict[str, Any]:
    ran = await cli_async(h.config_path, "status", "--json")
    assert ran.rc == 0, ran
    report: dict[str, Any] = json.loads(ran.out)
    return report


def log_tail(h: Harness, lines: int = 40) -> str:
    path = h.workdir / "daemon.log"
    text = path.read_text(errors="replace") if path.exists() else "(no daemon log)"
    return "\n".join(text.splitlines()[-lines:])


async def start_daemon(h: Harness) -> None:
    """``Harness.start_daemon``, failing at once (with its log) if the daemon exits instead."""
    starting = asyncio.create_task(h.start_daemon())
    while not starting.done():
        if h.proc is not None and h.proc.poll() is not None:
            starting.cancel()
            raise AssertionError(f"the daemon exited with {h.proc.returncode}:\n{log_tail(h)}")
        await asyncio.sleep(0.05)
    starting.result()


@contextlib.asynccontextmanager
async def watchdog_running(workdir: Path, timings: Timings | None = None) -> AsyncIterator[Harness]:
    """A simulated cluster with a real daemon watching it, every node seen healthy."""
    async with Harness(workdir, timings=timings, subprocess_daemon=True) as h:
        try:
            await start_daemon(h)
            await h.healthy()
            yield h
        except BaseException:
            print(f"daemon log ({workdir / 'daemon.log'}), last lines:\n{log_tail(h)}")
            raise
        finally:
            await h.stop_daemon()
        assert h.exit_codes and all(c == 0 for c in h.exit_codes), (
            f"daemon exit codes {h.exit_codes}\n{log_tail(h)}"
        )


def persisted(h: Harness, node: str) -> dict[str, Any]:
    """What the state file says about ``node`` right now (what ``status`` renders)."""
    report = read_status(load_config(h.config_path), h.state_dir, now=time.time())
    return report["nodes"][node]  # type: ignore[no-any-return]


def offs(h: Harness, node: str) -> int:
    return sum(1 for e in h.sim.power_record(node) if not e.on)


def page_triggers(h: Harness) -> list[tuple[Any, Any]]:
    return [(a.get("node"), a.get("condition")) for a in h.alerts() if a.get("status") == "trigger"]


# ------------------------------------------------------------------------ with a daemon


async def test_status_lists_every_node_healthy_with_its_budget_and_the_daemon_pid(
    tmp_path: Path,
) -> None:
    async with watchdog_running(tmp_path) as h:
        assert h.proc is not None
        ran = await cli_async(h.config_path, "status")
        assert ran.rc == 0, ran
        assert f"daemon: running, pid {h.proc.pid}" in ran.out, ran
        rows = table(ran.out)
        assert set(rows) == set(NODES), ran
        for node in NODES:
            row = rows[node]
            assert row["CLASS"] == "healthy", ran
            assert row["CYCLES"] == "0/3 (3 left)", ran
            assert row["LATCHED"] == "no", ran
            assert row["MAINTENANCE"] == "-", ran

        report = await status_json(h)
        assert report["daemon_pid"] == h.proc.pid
        assert report["problem"] is None
        assert report["max_cycles"] == 3
        assert set(report["nodes"]) == set(NODES)
        for node in NODES:
            n = report["nodes"][node]
            assert n["class"] == "healthy", n
            assert (n["cycles_in_window"], n["cycles_left"]) == (0, 3), n
            assert n["latched"] is False and n["maintenance"] is False, n
            assert n["maintenance_until"] is None, n
            assert n["since"] is not None and n["since"] <= report["at"], n


async def test_a_paused_node_is_not_acted_on_when_it_wedges_and_is_cycled_after_resume(
    tmp_path: Path,
) -> None:
    async with watchdog_running(tmp_path, QUICK) as h:
        t = h.t
        before = time.time()
        ran = await cli_async(h.config_path, "pause", A, "--for", "2h")
        assert ran.rc == 0, ran
        assert re.search(rf"{A} paused until \d{{4}}-\d\d-\d\dT\d\d:\d\d", ran.out), ran

        shown = await cli_async(h.config_path, "status")
        assert table(shown.out)[A]["MAINTENANCE"].startswith("until 20"), shown
        assert table(shown.out)[B]["MAINTENANCE"] == "-", shown
        n = (await status_json(h))["nodes"][A]
        assert n["maintenance"] is True, n
        assert before + TWO_HOURS <= n["maintenance_until"] <= time.time() + TWO_HOURS, n

        record = list(h.sim.power_record(A))
        await h.sim.wedge(A)
        # The probes do see the wedge (so "nothing happened" is not just blindness) ...
        await h.wait_until(
            lambda: persisted(h, A)["consecutive_failures"] >= t.failure_threshold,
            20,
            f"{A}'s probes to fail while paused",
        )
        assert persisted(h, A)["class"] == "maintenance"
        # ... and well past the thresholds, still no power action and no page.
        await asyncio.sleep(t.failure_duration + t.confirm_interval + t.probe_interval)
        assert h.sim.power_record(A) == record, "a paused node was power-cycled"
        assert page_triggers(h) == [], f"paged while {A} was in maintenance: {h.alerts()}"

        ran = await cli_async(h.config_path, "resume", A)
        assert ran.rc == 0, ran
        assert f"{A} resumed" in ran.out, ran
        await h.wait_until(lambda: offs(h, A) >= 1, 20, f"{A} to be cycled after resume")
        await h.wait_until(
            lambda: h.sim.power_record(A)[-1].on, 20, f"{A}'s plug to be switched back on"
        )
        assert offs(h, B) == 0
        assert (A, "wedged") in page_triggers(h), h.alerts()
        shown = await cli_async(h.config_path, "status")
        assert table(shown.out)[A]["MAINTENANCE"] == "-", shown


async def test_a_manual_cycle_switches_the_plug_once_and_counts_in_the_budget(
    tmp_path: Path,
) -> None:
    async with watchdog_running(tmp_path, QUICK) as h:
        # No TTY and no --yes: refused before anything reaches the daemon.
        ran = await cli_async(h.config_path, "cycle", A)
        assert ran.rc == 1, ran
        assert "--yes" in ran.err, ran
        assert "Traceback" not in ran.err, ran
        await asyncio.sleep(h.t.probe_interval)
        assert h.sim.power_record(A) == [], "cycled without confirmation"
        assert not list((h.state_dir / control.REQUESTS).glob("*.json"))

        ran = await cli_async(h.config_path, "cycle", A, "--yes")
        assert ran.rc == 0, ran
        assert f"{A}: power cycle started" in ran.out, ran
        await h.wait_until(
            lambda: len(h.sim.power_record(A)) >= 2, 20, f"{A}'s plug to go off and on again"
        )
        await asyncio.sleep(h.t.confirm_interval)  # and nothing more
        record = h.sim.power_record(A)
        assert [e.on for e in record] == [False, True], record
        assert record[1].at - record[0].at >= h.t.off_time * 0.9, "held off too briefly"
        assert h.sim.power_record(B) == []

        rows = table((await cli_async(h.config_path, "status")).out)
        assert rows[A]["CYCLES"] == "1/3 (2 left)", rows
        assert rows[B]["CYCLES"] == "0/3 (3 left)", rows
        n = (await status_json(h))["nodes"][A]
        assert (n["cycles_in_window"], n["cycles_left"]) == (1, 2), n


async def test_a_boot_looping_node_is_latched_in_status_across_a_daemon_restart_until_cleared(
    tmp_path: Path,
) -> None:
    timings = Timings(max_cycles=2, boot_timeout=5.0, serve_timeout=10.0)
    async with watchdog_running(tmp_path, timings) as h:
        await h.sim.wedge(A)
        await h.wait_until(lambda: offs(h, A) >= 1, 20, f"{A}'s first power cycle")
        # The simulated node has one fault at a time: wedge first, then make every boot after
        # this power-off fail (setting BOOT_LOOP first and then wedging would replace it).
        await h.sim.set_fault(A, NodeFault.BOOT_LOOP)
        await h.wait_until(lambda: h.is_latched(A), 60, f"{A} to be given up")
        assert offs(h, A) == 2, h.sim.power_record(A)

        async def shows_latched(pid: int | None) -> str:
            ran = await cli_async(h.config_path, "status")
            assert ran.rc == 0, ran
            running = f"running, pid {pid}" if pid else "NOT running"
            assert f"daemon: {running}" in ran.out, ran
            row = table(ran.out)[A]
            assert row["LATCHED"] == "YES", ran
            assert row["CLASS"] == "GIVEN_UP", ran
            assert row["CYCLES"] == "2/2 (0 left)", ran
            assert table(ran.out)[B]["LATCHED"] == "no", ran
            reason = re.search(rf"^{A} is latched: (.+)$", ran.out, re.M)
            assert reason is not None and "gave up" in reason.group(1), ran
            assert f"run: cluster-watchdog clear {A}" in ran.out, ran
            return reason.group(1)

        assert h.proc is not None
        why = await shows_latched(h.proc.pid)
        n = (await status_json(h))["nodes"][A]
        assert n["latched"] is True and n["latched_reason"] == why, n

        await h.stop_daemon()
        assert await shows_latched(None) == why  # on disk, not only in the daemon's memory
        await start_daemon(h)
        assert h.proc is not None
        assert await shows_latched(h.proc.pid) == why
        await asyncio.sleep(h.t.probe_interval + h.t.confirm_interval)
        assert offs(h, A) == 2, "a latched node was cycled after the restart"

        ran = await cli_async(h.config_path, "clear", A)
        assert ran.rc == 0, ran
        assert "un-latched" in ran.out, ran
        n = (await status_json(h))["nodes"][A]
        assert n["latched"] is False and n["latched_reason"] == "", n
        assert (n["cycles_in_window"], n["cycles_left"]) == (0, 2), n
        ran = await cli_async(h.config_path, "clear", A)
        assert ran.rc == 1, ran
        assert f"refused: {A} is not latched" in ran.err, ran
        assert [(a, c) for a, c in page_triggers(h) if c == "given_up"] == [(A, "given_up")]


# --------------------------------------------------------------------- without a daemon

_OFFLINE_CONFIG = """\
watchdog:
  state_dir: {state}
clusters:
  - name: lab
    endpoint: {{base_url: "http://127.0.0.1:9", model: m}}
    nodes:
      - {{name: spark-1, host: 127.0.0.1, plug: {{type: kasa, host: 127.0.0.1}}}}
      - {{name: spark-2, host: 127.0.0.2, plug: {{type: kasa, host: 127.0.0.2}}}}
"""


@pytest.fixture
def offline(tmp_path: Path) -> Path:
    """A valid config whose state directory no daemon uses; returns the config path."""
    path = tmp_path / "config.yaml"
    path.write_text(_OFFLINE_CONFIG.format(state=tmp_path / "state"))
    return path


def state_of(config: Path) -> dict[str, Any]:
    return json.loads((config.parent / "state" / "state.json").read_text())["nodes"]  # type: ignore[no-any-return]


def test_status_without_a_daemon_says_so_and_lists_the_configured_nodes(offline: Path) -> None:
    ran = cli_sync(offline, "status")
    assert ran.rc == 0, ran
    assert "daemon: NOT running" in ran.out, ran
    assert "no state yet" in ran.out, ran
    assert {n: r["CLASS"] for n, r in table(ran.out).items()} == dict.fromkeys(NODES, "unknown")
    report = json.loads(cli_sync(offline, "status", "--json").out)
    assert report["daemon_pid"] is None
    assert set(report["nodes"]) == set(NODES)


def test_without_a_daemon_pause_and_resume_edit_the_state_file_and_status_shows_it(
    offline: Path,
) -> None:
    before = time.time()
    ran = cli_sync(offline, "pause", A, "--for", "2h")
    assert ran.rc == 0, ran
    assert "no daemon running" in ran.out, ran
    rec = state_of(offline)[A]
    assert rec["paused"] is True
    assert before + TWO_HOURS <= rec["paused_until"] <= time.time() + TWO_HOURS
    assert state_of(offline)[B]["paused"] is False

    shown = cli_sync(offline, "status")
    assert table(shown.out)[A]["MAINTENANCE"].startswith("until 20"), shown
    assert table(shown.out)[B]["MAINTENANCE"] == "-", shown

    ran = cli_sync(offline, "resume", A)
    assert ran.rc == 0, ran
    assert state_of(offline)[A]["paused"] is False
    assert table(cli_sync(offline, "status").out)[A]["MAINTENANCE"] == "-"

    ran = cli_sync(offline, "resume", A)
    assert ran.rc == 1, ran
    assert f"refused: {A} is not paused" in ran.err, ran

    ran = cli_sync(offline, "pause", B)  # no --for: until resumed
    assert ran.rc == 0, ran
    assert state_of(offline)[B]["paused"] is True
    assert state_of(offline)[B]["paused_until"] is None
    assert table(cli_sync(offline, "status").out)[B]["MAINTENANCE"] == "yes"


def test_without_a_daemon_clear_un_latches_a_latched_node_and_resets_its_budget(
    offline: Path,
) -> None:
    now = time.time()
    Store(offline.parent / "state").save(
        PersistedState(
            saved_at=now,
            nodes={
                A: NodeRecord(
                    node_class="given_up",
                    since=now - 30,
                    cycles=(now - 300, now - 100, now - 40),
                    latched=True,
                    latched_reason="gave up: 3 power cycles within 6h",
                    latched_at=now - 30,
                )
            },
            fleet_cycles=((A, now - 300), (A, now - 100), (A, now - 40)),
        )
    )
    shown = cli_sync(offline, "status")
    assert table(shown.out)[A]["LATCHED"] == "YES", shown
    assert table(shown.out)[A]["CYCLES"] == "3/3 (0 left)", shown
    assert f"{A} is latched: gave up: 3 power cycles within 6h" in shown.out, shown

    ran = cli_sync(offline, "clear", B)  # not latched
    assert ran.rc == 1, ran
    assert f"refused: {B} is not latched" in ran.err, ran

    ran = cli_sync(offline, "clear", A)
    assert ran.rc == 0, ran
    rec = state_of(offline)[A]
    assert (rec["latched"], rec["latched_reason"], rec["cycles"]) == (False, "", [])
    row = table(cli_sync(offline, "status").out)[A]
    assert (row["LATCHED"], row["CYCLES"]) == ("no", "0/3 (3 left)")


def _has_open(pid: int, path: Path) -> bool:
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if Path(os.readlink(fd)) == path:
                    return True
    return False


def test_an_offline_edit_waits_for_the_state_lock(offline: Path) -> None:
    directory = offline.parent / "state"
    with locks.state_lock(directory):
        proc = subprocess.Popen(
            _argv(offline, "pause", A),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_ENV,
        )
        deadline = time.monotonic() + 20
        while not _has_open(proc.pid, directory / locks.STATE_LOCK):
            assert proc.poll() is None, "the CLI finished while the state lock was held"
            assert time.monotonic() < deadline, "the CLI never opened the state lock"
            time.sleep(0.02)
        time.sleep(0.3)  # it has the lock file open and is trying to lock it
        assert proc.poll() is None, "the CLI did not wait for the state lock"
        assert not (directory / "state.json").exists()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, (out, err)
    assert state_of(offline)[A]["paused"] is True


def test_an_offline_edit_refuses_to_replace_an_unreadable_state_file(offline: Path) -> None:
    directory = offline.parent / "state"
    directory.mkdir()
    garbage = '{"version": 1, "nodes": {"spark-1": {"latched": tr'
    (directory / "state.json").write_text(garbage)
    ran = cli_sync(offline, "pause", A)
    assert ran.rc == 1, ran
    assert "unreadable" in ran.err and "nothing changed" in ran.err, ran
    assert "Traceback" not in ran.err, ran
    # Kept as it was for the daemon to set aside and alert about; not reset behind its back.
    assert (directory / "state.json").read_text() == garbage
    assert list(directory.glob("state.json.corrupt-*")) == []
    shown = cli_sync(offline, "status")
    assert shown.rc == 0 and "unreadable" in shown.out, shown


def test_cycle_without_a_running_daemon_is_refused_with_a_clear_message(offline: Path) -> None:
    ran = cli_sync(offline, "cycle", A, "--yes")
    assert ran.rc == 1, ran
    assert "no cluster-watchdog daemon is running" in ran.err, ran
    assert "Traceback" not in ran.err, ran
    assert not (offline.parent / "state" / "state.json").exists()
    assert not list((offline.parent / "state").glob("requests/*.json"))


@pytest.mark.parametrize("command", ["pause", "resume", "clear", "cycle"])
def test_an_unknown_node_is_refused_with_the_configured_nodes(offline: Path, command: str) -> None:
    extra = ("--yes",) if command == "cycle" else ()
    ran = cli_sync(offline, command, "spark-9", *extra)
    assert ran.rc == 1, ran
    assert "unknown node 'spark-9'" in ran.err, ran
    assert "configured: spark-1, spark-2" in ran.err, ran
    assert "Traceback" not in ran.err, ran


def test_a_bad_pause_duration_is_a_usage_error_not_a_traceback(offline: Path) -> None:
    for bad in ("banana", "0s"):
        ran = cli_sync(offline, "pause", A, "--for", bad)
        assert ran.rc == 2, ran
        assert "--for" in ran.err and "Traceback" not in ran.err, ran
    assert not (offline.parent / "state" / "state.json").exists()


_BAD_CONFIGS = {
    "missing": None,
    "invalid YAML": "clusters: [\n",
    "schema error": _OFFLINE_CONFIG + "policy:\n  max_cycles: many\n",
}


@pytest.mark.parametrize(
    ("bad", "command"),
    [
        *[(bad, ("status",)) for bad in _BAD_CONFIGS],
        ("schema error", ("pause", A)),
        ("schema error", ("cycle", A, "--yes")),
        ("missing", ("clear", A)),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_bad_config_exits_78_with_the_problem_and_no_traceback(
    tmp_path: Path, bad: str, command: tuple[str, ...]
) -> None:
    path = tmp_path / "config.yaml"
    if (text := _BAD_CONFIGS[bad]) is not None:
        path.write_text(text.format(state=tmp_path / "state"))
    ran = cli_sync(path, *command)
    assert ran.rc == 78, ran
    assert "config error" in ran.err, ran
    assert "Traceback" not in ran.err, ran
    assert not (tmp_path / "state").exists()


def _cycle_at_a_tty(config: Path, typed: bytes) -> Ran:
    """``cycle spark-1`` with a terminal on stdin where the operator types ``typed``."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            _argv(config, "cycle", A),
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_ENV,
        )
        os.close(secondary)
        secondary = -1
        os.write(primary, typed)
        out, err = proc.communicate(timeout=20)
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    return Ran(proc.returncode, out, err)


def test_at_a_terminal_cycle_asks_for_the_node_name_and_a_wrong_answer_refuses(
    offline: Path,
) -> None:
    ran = _cycle_at_a_tty(offline, b"spark-2\n")
    assert ran.rc == 1, ran
    assert f"Power-cycle {A} now?" in ran.out, ran
    assert "not confirmed; nothing done" in ran.out, ran

    ran = _cycle_at_a_tty(offline, b"\x04")  # Ctrl-D
    assert ran.rc == 1, ran
    assert "not confirmed" in ran.out and "Traceback" not in ran.err, ran

    # The right name passes the confirmation; with no daemon it is then refused for that.
    ran = _cycle_at_a_tty(offline, f"{A}\n".encode())
    assert ran.rc == 1, ran
    assert "not confirmed" not in ran.out, ran
    assert "no cluster-watchdog daemon is running" in ran.err, ran


def test_a_request_the_daemon_never_takes_is_withdrawn_after_the_timeout(
    offline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stuck daemon must not pick up an operator's request long after the CLI gave up."""
    directory = offline.parent / "state"
    monkeypatch.setattr(operator_requests, "RESPONSE_TIMEOUT", 0.3)
    for name in ("STATE_DIRECTORY", "CLUSTER_WATCHDOG_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    lock = locks.DaemonLock(directory)  # a "daemon" that holds the lock and never answers
    lock.acquire()
    try:
        assert cli.main(["cycle", A, "--yes", "-c", str(offline)]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and "withdrawn" in err, err
    assert list((directory / control.REQUESTS).glob("*.json")) == []


def test_a_request_taken_but_not_answered_is_reported_as_such(
    offline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = offline.parent / "state"
    monkeypatch.setattr(operator_requests, "RESPONSE_TIMEOUT", 1.0)
    for name in ("STATE_DIRECTORY", "CLUSTER_WATCHDOG_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    taken: list[control.Request] = []
    stop = threading.Event()

    def daemon_that_dies_before_answering() -> None:
        while not stop.is_set() and not taken:
            taken.extend(control.take_requests(directory))
            time.sleep(0.02)

    lock = locks.DaemonLock(directory)
    lock.acquire()
    worker = threading.Thread(target=daemon_that_dies_before_answering)
    worker.start()
    try:
        assert cli.main(["pause", A, "-c", str(offline)]) == 1
    finally:
        stop.set()
        worker.join()
        lock.release()
    assert [(r.op, r.node) for r in taken] == [(control.Op.PAUSE, A)]
    err = capsys.readouterr().err
    assert "never answered" in err, err


def test_a_reader_that_goes_away_ends_the_command_quietly(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # `cluster-watchdog demo --list | head -1`: the pipe closes under the writer.
    import os

    from watchdog.commands.cli import main

    read, write = os.pipe()
    os.close(read)
    stream = os.fdopen(write, "w", buffering=1)
    monkeypatch.setattr("sys.stdout", stream)
    try:
        assert main(["demo", "--list"]) == 1
    finally:
        with contextlib.suppress(OSError):
            stream.close()
    assert "Traceback" not in capfd.readouterr().err
