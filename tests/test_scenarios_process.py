"""End-to-end scenarios at the process level (docs/design.md): S10 plug variants, S11, S12.

Every test runs the real ``cluster-watchdog run`` as a child process against the simulated
cluster of :class:`~watchdog.sim.harness.Harness` (fake vLLM, banner servers, Kasa plug
emulators speaking the real protocols) with compressed timings, and judges it from the
outside: the plugs' own records, the alerts as received, the datagrams on a real
``NOTIFY_SOCKET``, the child's exit code and its log (``workdir/daemon.log``).

- S10: a plug that hangs, and a KLAP plug given the wrong password — alert, no crash, no
  cycle; once the plug answers (or the password is fixed and SIGHUP sent) the node is cycled.
  (The "plug down" variant is in the shared catalogue, ``watchdog/sim/scenarios.py``.)
- S11: a bad config at start exits 78 naming the key and the fix; a bad config on SIGHUP is
  rejected while the old config keeps running; a good one is reloaded, listing what changed.
- S12: a stalled event loop stops the ``WATCHDOG=1`` pings; they resume after it.

Secrets (API keys, plug passwords) must never reach the log or the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.config import load_config
from watchdog.sim.harness import Harness
from watchdog.sim.kasa import KasaEmulator, PlugFault

pytestmark = pytest.mark.e2e  # real daemon processes: not in the fast lane

A, B = "spark-1", "spark-2"
EX_CONFIG = 78
TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------ helpers
def _child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    # Whatever supervises this test run must not be talked to by the child.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        if name not in extra:
            env.pop(name, None)
    return env


async def _terminate(h: Harness, within: float = 30.0) -> int | None:
    """SIGTERM the child daemon and wait for it without blocking this event loop.

    ``Harness.stop_daemon`` waits with a blocking ``Popen.wait``: the simulated plugs live in
    this loop, so a daemon finishing a power action at shutdown could not reach them.
    """
    proc = h.proc
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + within
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    h.exit_codes.append(code)
    h.proc = None
    return code


@contextlib.asynccontextmanager
async def _cluster(workdir: Path) -> AsyncIterator[Harness]:
    """A simulated cluster whose daemon (if one was started) is stopped without blocking."""
    async with Harness(workdir, subprocess_daemon=True) as h:
        try:
            yield h
        finally:
            await _terminate(h)


def _log(h: Harness) -> str:
    path = h.workdir / "daemon.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _alive(h: Harness) -> bool:
    return h.proc is not None and h.proc.poll() is None


def _plug_on(h: Harness, node: str) -> bool:
    sim = h.sim.nodes[node]
    return sim.plug.is_on(sim.outlet)


def _alert_text(alert: dict[str, Any]) -> str:
    return " ".join(str(alert.get(k) or "") for k in ("summary", "seen", "done", "todo")).lower()


def _plug_alerts(h: Harness, node: str) -> list[dict[str, Any]]:
    return [
        a
        for a in h.alerts()
        if a.get("node") == node and a.get("condition") == "plug" and a.get("status") == "trigger"
    ]


def _assert_clean_log(text: str, *secrets: str) -> None:
    assert "Traceback" not in text, text[-3000:]
    for secret in secrets:
        assert secret not in text, "a secret value reached the daemon's log"


def _set_plug(doc: dict[str, Any], node: str, **fields: Any) -> None:
    for cluster in doc["clusters"]:
        for n in cluster["nodes"]:
            if n["name"] == node:
                n["plug"] = {**n["plug"], **fields}
                return
    raise KeyError(node)


# ------------------------------------------------------------------------------ S11 at start
def _base_config(state_dir: Path) -> dict[str, Any]:
    """A small valid config: each bad file below differs from it in one place."""
    return {
        "watchdog": {"state_dir": str(state_dir)},
        "clusters": [
            {
                "name": "main",
                "endpoint": {
                    "base_url": "http://127.0.0.1:1",
                    "model": "nvidia/nemotron-3-super",
                    "api_key": "${CW_S11_PRESENT_KEY}",
                },
                "nodes": [
                    {
                        "name": A,
                        "host": "127.0.0.1",
                        "plug": {"type": "kasa", "host": "127.0.0.1"},
                    }
                ],
            }
        ],
    }


def _typo_key(doc: dict[str, Any]) -> None:
    doc["policy"] = {"failure_treshold": 3}


def _bad_duration(doc: dict[str, Any]) -> None:
    doc["policy"] = {"off_time": "1 minute"}


def _missing_env_secret(doc: dict[str, Any]) -> None:
    doc["clusters"][0]["endpoint"]["api_key"] = "${CW_S11_UNSET_KEY}"


BAD_AT_START: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    ("unknown-key", _typo_key, ("policy.failure_treshold", "unknown key", "failure_threshold")),
    ("bad-duration", _bad_duration, ("policy.off_time", "1 minute", "30s")),
    (
        "missing-env-secret",
        _missing_env_secret,
        ("clusters[0].endpoint.api_key", "CW_S11_UNSET_KEY", "not set", "api_key_file"),
    ),
]


@pytest.mark.parametrize(
    ("name", "spoil", "expected"), BAD_AT_START, ids=[b[0] for b in BAD_AT_START]
)
def test_a_bad_config_at_start_exits_78_naming_the_key_and_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    spoil: Callable[[dict[str, Any]], None],
    expected: tuple[str, ...],
) -> None:
    monkeypatch.setenv("CW_S11_PRESENT_KEY", "sk-present-3c91d7")
    monkeypatch.delenv("CW_S11_UNSET_KEY", raising=False)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_base_config(tmp_path / "state")))
    load_config(good)  # control: the file differs from a valid one only in the spoiled place
    doc = _base_config(tmp_path / "state")
    spoil(doc)
    bad = tmp_path / f"{name}.yaml"
    bad.write_text(yaml.safe_dump(doc))

    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "watchdog", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert run.returncode == EX_CONFIG, (run.returncode, run.stderr)
    assert elapsed < 10, f"took {elapsed:.1f}s to reject the config"
    assert "Traceback" not in run.stderr + run.stdout
    for text in expected:
        assert text in run.stderr, f"{text!r} not in {run.stderr!r}"
    assert "fix:" in run.stderr
    assert "sk-present-3c91d7" not in run.stderr + run.stdout
    assert not (tmp_path / "state" / "daemon.lock").exists(), "started despite the bad config"


# ------------------------------------------------------------------------------ S11 on SIGHUP
async def test_a_bad_config_on_sighup_is_rejected_and_the_old_one_keeps_acting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, next_key, literal = "sk-first-81f2a6", "sk-second-4be07c", "sk-literal-d5a913"
    # The child inherits both variables at start; the reload switches from one to the other.
    monkeypatch.setenv("CW_S11_API_KEY", key)
    monkeypatch.setenv("CW_S11_API_KEY_NEXT", next_key)
    async with _cluster(tmp_path / "run") as h:
        doc = h.config()
        doc["clusters"][0]["endpoint"]["api_key"] = "${CW_S11_API_KEY}"
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()

        # Bad: a literal secret. Its policy would also never judge a node wedged in this test's
        # time — were any of it applied, the wedge below would not be acted on.
        bad = copy.deepcopy(doc)
        bad["policy"] |= {"failure_threshold": 100, "failure_duration": "1h"}
        bad["clusters"][0]["endpoint"]["api_key"] = literal
        h.write_config(bad)
        assert h.proc is not None
        h.proc.send_signal(signal.SIGHUP)
        await h.wait_until(lambda: "reload rejected" in _log(h), 10, "the rejection in the log")
        rejection = next(line for line in _log(h).splitlines() if "reload rejected" in line)
        assert "clusters[0].endpoint.api_key" in rejection
        assert "fix:" in rejection
        await asyncio.sleep(1.0)
        assert _alive(h), "the daemon died on a bad reload"

        # Still probing and deciding with the old config: a wedge is acted on.
        await h.sim.wedge(A)
        await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be cycled under the old config")
        await h.wait_until(lambda: _plug_on(h, A), 15, f"{A}'s plug to be switched on again")
        assert h.offs(B) == 0

        # Good, changed: the reload is taken and names what changed (paths only).
        good = copy.deepcopy(doc)
        good["policy"]["failure_threshold"] = 4
        good["clusters"][0]["endpoint"]["api_key"] = "${CW_S11_API_KEY_NEXT}"
        h.write_config(good)
        h.proc.send_signal(signal.SIGHUP)
        await h.wait_until(lambda: "config reloaded" in _log(h), 10, "the reload in the log")
        reloaded = next(line for line in _log(h).splitlines() if "config reloaded" in line)
        assert "policy.failure_threshold" in reloaded
        assert "clusters[0].endpoint.api_key" in reloaded
        assert "failure_duration" not in reloaded  # the rejected file left nothing behind
        assert _alive(h)

        assert await _terminate(h) == 0
        _assert_clean_log(_log(h), key, next_key, literal)
        assert all(s not in json.dumps(h.alerts()) for s in (key, next_key, literal))


# ------------------------------------------------------------------------------ S12
class NotifyListener:
    """A service manager's end of ``NOTIFY_SOCKET``: every datagram, with when it arrived."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sock.close()

    def times(self, key: str, value: str | None = None) -> list[float]:
        return [t for t, f in self.messages if key in f and (value is None or f[key] == value)]

    def pings(self) -> list[float]:
        return self.times("WATCHDOG", "1")


async def test_a_stalled_event_loop_stops_the_watchdog_pings_until_it_runs_again(
    tmp_path: Path,
) -> None:
    # A socket path must fit in sun_path (108 bytes): keep it short, whatever tmp_path is.
    with tempfile.TemporaryDirectory(prefix="cw-", dir="/tmp") as short:
        listener = NotifyListener(Path(short))
        listener.start()
        trigger, marker = tmp_path / "stall", tmp_path / "stalled"
        try:
            async with _cluster(tmp_path / "run") as h:
                log = (h.workdir / "daemon.log").open("ab")
                with log:
                    h.proc = subprocess.Popen(  # fork+exec only: nothing waits here
                        [
                            sys.executable,
                            str(TESTS / "stall_launcher.py"),
                            str(trigger),
                            str(marker),
                            "run",
                            "-c",
                            str(h.config_path),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=_child_env(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC="1000000"),
                        start_new_session=True,
                    )
                try:
                    await _s12_script(h, listener, trigger, marker)
                except (TimeoutError, AssertionError) as exc:
                    got = [(round(t, 2), f) for t, f in listener.messages[-20:]]
                    raise AssertionError(
                        f"{exc}\nlast datagrams: {got}\ndaemon log tail:\n{_log(h)[-3000:]}"
                    ) from exc
        finally:
            await listener.close()


async def _s12_script(h: Harness, n: NotifyListener, trigger: Path, marker: Path) -> None:
    await h.wait_until(lambda: bool(n.times("READY", "1")) or not _alive(h), 20, "READY=1")
    assert _alive(h), "the daemon exited before READY=1"
    ready = n.times("READY", "1")[0]
    await h.wait_until(
        lambda: any("2/2 nodes healthy" in f.get("STATUS", "") for _, f in n.messages),
        15,
        "STATUS= saying every node is healthy",
    )
    status_at = next(t for t, f in n.messages if "2/2 nodes healthy" in f.get("STATUS", ""))
    assert status_at >= ready

    # Fed at half of WATCHDOG_USEC: every 0.5 s.
    first = len(n.pings())
    await h.wait_until(lambda: len(n.pings()) >= first + 5, 6, "periodic WATCHDOG=1")
    gaps = [b - a for a, b in itertools.pairwise(n.pings()[-5:])]
    assert 0.35 < statistics.median(gaps) < 0.75, f"ping intervals {gaps}"
    assert max(gaps) < 1.5, f"ping intervals {gaps}"  # slack for a loaded test machine

    # The loop stalls: not one ping for as long as it lasts.
    trigger.touch()
    await h.wait_until(marker.exists, 5, "the event loop to stall")
    stalled_at = time.monotonic()
    await asyncio.sleep(3.5)
    during = [t - stalled_at for t in n.pings() if t > stalled_at + 0.1]
    assert during == [], f"WATCHDOG=1 arrived during the stall, at +{during}s"
    assert _alive(h)

    # It runs again: the pings resume.
    trigger.unlink()
    resumed_at = time.monotonic()
    await h.wait_until(
        lambda: sum(t > resumed_at for t in n.pings()) >= 2, 5, "the pings to resume"
    )
    before = max(t for t in n.pings() if t <= stalled_at + 0.1)
    after = min(t for t in n.pings() if t > resumed_at)
    assert after - before >= 3.0

    stop_at = time.monotonic()
    assert await _terminate(h) == 0
    await asyncio.sleep(0.1)  # let the listener take the last datagrams off the socket
    assert any(t >= stop_at for t in n.times("STOPPING", "1")), "no STOPPING=1 on SIGTERM"
    _assert_clean_log(_log(h))


# ------------------------------------------------------------------------------ S10
async def test_a_plug_that_hangs_gets_an_alert_and_no_cycle_until_it_answers(
    tmp_path: Path,
) -> None:
    async with _cluster(tmp_path / "run") as h:
        await h.start_daemon()
        await h.healthy()
        plug = h.sim.nodes[A].plug
        await plug.set_fault(PlugFault.HANG)
        await h.sim.wedge(A)
        await h.wait_until(lambda: bool(_plug_alerts(h, A)), 30, "the plug alert")
        assert "timeout" in _alert_text(_plug_alerts(h, A)[-1])
        await h.sleep(3)
        assert h.offs(A) == 0, "switched through a plug that does not answer?"
        assert _plug_on(h, A)
        assert _alive(h), "the daemon died on a hanging plug"

        await plug.set_fault(PlugFault.NONE)  # it answers again: retried, then cycled
        await h.wait_until(lambda: h.offs(A) >= 1, 30, f"{A} to be cycled once its plug answers")
        await h.wait_until(lambda: _plug_on(h, A), 15, f"{A}'s plug to be switched on again")
        assert h.offs(A) == 1 and h.offs(B) == 0
        assert await _terminate(h) == 0
        _assert_clean_log(_log(h))


async def test_wrong_plug_credentials_alert_without_cycling_until_fixed_and_reloaded(
    tmp_path: Path,
) -> None:
    user, wrong, right = "plug-admin", "wrong-pw-5f3a9c", "right-pw-7d1e2b"
    workdir = tmp_path / "run"
    async with (
        KasaEmulator(credentials=(user, right), initial_on=True) as klap,
        _cluster(workdir) as h,
    ):
        # spark-1's plug is this KLAP plug; its relay drives the simulated node's power.
        sim = h.sim.nodes[A]
        klap.on_change = lambda _outlet, on: sim.plug.set_on(on, sim.outlet, cause="klap")
        (workdir / "plug-user").write_text(f"{user}\n")
        (workdir / "plug-password").write_text(f"{wrong}\n")
        doc = h.config()
        _set_plug(
            doc,
            A,
            port=klap.port,
            encryption="klap",
            username_file=str(workdir / "plug-user"),
            password_file=str(workdir / "plug-password"),
        )
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()

        await h.wait_until(lambda: bool(_plug_alerts(h, A)), 20, "the plug alert")
        text = _alert_text(_plug_alerts(h, A)[-1])
        assert "auth" in text or "credential" in text, text

        await h.sim.wedge(A)
        await h.wait_until(lambda: h.has_alert(A, "wedged"), 20, f"{A} to be judged wedged")
        await h.sleep(2)
        assert [e for e in klap.record if not e.on] == [], "switched with wrong credentials?"
        assert _alive(h), "the daemon died on a plug refusing its credentials"

        (workdir / "plug-password").write_text(f"{right}\n")
        assert h.proc is not None
        h.proc.send_signal(signal.SIGHUP)
        await h.wait_until(
            lambda: any(not e.on for e in klap.record), 20, f"{A} to be cycled once fixed"
        )
        await h.wait_until(lambda: klap.is_on(), 15, f"{A}'s plug to be switched on again")
        assert h.offs(A) == 1 and h.offs(B) == 0  # the simulated node followed the KLAP relay
        assert "clusters[0].nodes[0].plug.password" in _log(h)

        assert await _terminate(h) == 0
        _assert_clean_log(_log(h), wrong, right)
        assert all(s not in json.dumps(h.alerts()) for s in (wrong, right))


async def test_dry_run_turned_on_by_sighup_stops_the_plugs_from_switching(
    tmp_path: Path,
) -> None:
    async with _cluster(tmp_path / "run") as h:
        await h.start_daemon()
        await h.healthy()
        doc = h.config()
        doc["watchdog"]["dry_run"] = True
        h.write_config(doc)
        assert h.proc is not None
        h.proc.send_signal(signal.SIGHUP)
        await h.wait_until(lambda: "config reloaded" in _log(h), 10, "the reload in the log")
        assert "watchdog.dry_run" in _log(h)

        await h.sim.wedge(A)
        await h.wait_until(lambda: h.has_alert(A, "wedged"), 20, f"{A} to be judged wedged")
        await h.sleep(3)
        assert h.offs(A) == 0, "a plug was switched after dry run was turned on by SIGHUP"
        assert await _terminate(h) == 0
