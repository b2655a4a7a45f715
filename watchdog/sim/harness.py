"""Runs the real daemon against the simulated cluster, with compressed timings.

The harness behind both ``cluster-watchdog demo`` and the end-to-end scenario tests: it
starts the simulated cluster (fake vLLM, banner servers, Kasa plug emulators), a webhook
receiver (the on-call side), a witness target, writes a config pointing at them, and runs
``cluster-watchdog run`` — in this process (the :class:`~watchdog.service.daemon.Daemon` itself) or
as a child process when a scenario must ``kill -9`` it. Outcomes are read from the plugs'
own records and the alerts as received, never from the daemon's word.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchdog.commands.status import read_status
from watchdog.core.model import NodeClass
from watchdog.service.daemon import Daemon
from watchdog.sim.cluster import SimCluster, SimTimings
from watchdog.sim.kasa import PowerEvent
from watchdog.sim.receiver import AlertReceiver
from watchdog.sim.vllm_profiles import NEWEST
from watchdog.sim.witness import WitnessServer


@dataclass(frozen=True)
class Timings:
    """Compressed timings at speed 1; every duration is divided by the speed."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    tool_call_interval: float = 2.0
    tool_call_timeout: float = 1.5
    failure_threshold: int = 3
    failure_duration: float = 2.0
    confirm_interval: float = 0.5
    startup_timeout: float = 20.0
    boot_timeout: float = 8.0
    serve_timeout: float = 16.0
    off_time: float = 2.0
    max_cycles: int = 3
    backoff: float = 1.0
    plug_validate: float = 5.0
    boot_delay: float = 2.0
    load_delay: float = 2.0
    slow_factor: float = 3.0

    def scaled(self, speed: float) -> Timings:
        out = {}
        for name, value in self.__dict__.items():
            is_count = name in ("failure_threshold", "max_cycles", "slow_factor")
            out[name] = value if is_count else value / speed
        return Timings(**out)


@dataclass
class Outcome:
    """What happened, from the world's side."""

    records: dict[str, list[PowerEvent]]
    alerts: list[dict[str, Any]]
    classes: dict[str, str]
    latched: set[str]
    elapsed: float
    notes: list[str] = field(default_factory=list)

    def offs(self, node: str) -> int:
        return sum(1 for e in self.records.get(node, []) if not e.on)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}s"


class Harness:
    """One simulated cluster + one watchdog, for one scenario run."""

    def __init__(
        self,
        workdir: Path,
        *,
        speed: float = 1.0,
        timings: Timings | None = None,
        narrate: Callable[[str, str], None] | None = None,
        subprocess_daemon: bool = False,
        daemon_logging: bool = True,
        vllm_version: str = NEWEST,
    ) -> None:
        self.workdir = workdir
        self.speed = speed
        self.t = (timings or Timings()).scaled(speed)
        self.narrate = narrate
        self.subprocess_daemon = subprocess_daemon
        self.daemon_logging = daemon_logging
        self.sim = SimCluster(
            timings=SimTimings(
                boot_delay=self.t.boot_delay,
                load_delay=self.t.load_delay,
                slow_factor=self.t.slow_factor,
            ),
            vllm_version=vllm_version,
        )
        self.rx = AlertReceiver()
        self.witness = WitnessServer()
        self.config_path = workdir / "cluster-watchdog.yaml"
        self.state_dir = workdir / "state"
        self.daemon: Daemon | None = None
        self._task: asyncio.Task[int] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.t0 = time.monotonic()
        self.exit_codes: list[int] = []

    # ------------------------------------------------------------------ setup
    async def __aenter__(self) -> Harness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sim.on_event = self._sim_event
        await self.sim.start()
        await self.rx.start()
        await self.witness.start()
        self.write_config()
        self.t0 = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_daemon()
        await self.witness.stop()
        await self.rx.stop()
        await self.sim.stop()

    def config(self) -> dict[str, Any]:
        t = self.t
        clusters = self.sim.config_clusters()
        for c in clusters:
            ep = c["endpoint"]
            ep["health"] = {"interval": _fmt(t.probe_interval), "timeout": _fmt(t.probe_timeout)}
            ep["models"] = {"interval": _fmt(t.probe_interval), "timeout": _fmt(t.probe_timeout)}
            ep["tool_call"] = {
                "interval": _fmt(t.tool_call_interval),
                "timeout": _fmt(t.tool_call_timeout),
            }
            for n in c["nodes"]:
                n["ssh"] = {
                    **n["ssh"],
                    "interval": _fmt(t.probe_interval),
                    "timeout": _fmt(t.probe_timeout),
                }
                n["plug"]["timeout"] = "1s"  # python-kasa takes whole seconds
                n["plug"]["validate_interval"] = _fmt(t.plug_validate)
        return {
            "watchdog": {
                "state_dir": str(self.state_dir),
                "interface": "lo",
                "witnesses": [
                    {
                        "host": "127.0.0.1",
                        "port": self.witness.port,
                        "timeout": _fmt(t.probe_timeout),
                    }
                ],
            },
            "policy": {
                "failure_threshold": t.failure_threshold,
                "failure_duration": _fmt(t.failure_duration),
                "confirm_interval": _fmt(t.confirm_interval),
                "startup_timeout": _fmt(t.startup_timeout),
                "boot_timeout": _fmt(t.boot_timeout),
                "serve_timeout": _fmt(t.serve_timeout),
                "off_time": _fmt(t.off_time),
                "max_cycles": t.max_cycles,
                "cycle_window": "1h",
                "backoff": _fmt(t.backoff),
                "plug_confirm_timeout": _fmt(max(2.0, 5.0 / self.speed)),
                "plug_poll_interval": _fmt(0.2 / self.speed),
            },
            "alerts": {
                "channels": [{"type": "webhook", "name": "on-call", "url": f"{self.rx.url}/hook"}],
                "renotify": "0s",
                "retry_backoff": "0.1s",
            },
            "clusters": clusters,
        }

    def write_config(self, doc: dict[str, Any] | None = None) -> None:
        self.config_path.write_text(yaml.safe_dump(doc or self.config(), sort_keys=False))

    # ------------------------------------------------------------------ the daemon
    async def start_daemon(self) -> None:
        if self.subprocess_daemon:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            env.pop("NOTIFY_SOCKET", None)
            # Popen only forks and execs; the child's log file is its own from then on.
            with (self.workdir / "daemon.log").open("ab") as log:
                self.proc = subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", "watchdog", "run", "-c", str(self.config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            await self.wait_until(
                lambda: (
                    (self.state_dir / "daemon.lock").exists()
                    and self._status()["daemon_pid"] == self.proc.pid
                    if self.proc
                    else False
                ),
                20,
                "the daemon to start",
            )
            return
        self.daemon = Daemon(
            self.config_path,
            install_signals=False,
            log_journal=False,
            configure_logging=self.daemon_logging,
            on_event=lambda s: self._say("watchdog", s),
        )
        self._task = asyncio.create_task(self.daemon.serve())
        started = asyncio.create_task(self.daemon.started.wait())
        done, _ = await asyncio.wait(
            {self._task, started}, timeout=20, return_when=asyncio.FIRST_COMPLETED
        )
        if self._task in done:
            started.cancel()
            self._task.result()  # raises what made it exit
            raise RuntimeError("the daemon exited during start-up")
        if started not in done:
            raise TimeoutError("the daemon did not start within 20 s")

    async def stop_daemon(self) -> None:
        if self.daemon is not None and self._task is not None:
            self.daemon.request_stop()
            self.exit_codes.append(await asyncio.wait_for(self._task, 60))
            self.daemon, self._task = None, None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                # Wait off the event loop: it runs the plug emulators the daemon still needs
                # to switch a node back on during its graceful stop.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(self.proc.wait, 60)
            if self.proc.poll() is None:
                self.proc.kill()
            self.exit_codes.append(self.proc.wait())
            self.proc = None

    def kill_daemon(self) -> None:
        """``kill -9`` the child daemon: no cleanup of any kind runs."""
        assert self.proc is not None, "kill_daemon needs subprocess_daemon=True"
        self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait())
        self.proc = None

    async def restart_daemon(self) -> None:
        await self.stop_daemon()
        await self.start_daemon()

    # ------------------------------------------------------------------ observing
    def _status(self) -> dict[str, Any]:
        from watchdog.config import load_config

        return read_status(load_config(self.config_path), self.state_dir, now=time.time())

    def node_class(self, node: str) -> str:
        if self.daemon is not None and self.daemon.engine is not None:
            return self.daemon.engine.state.node(node).cls.value
        return str(self._status()["nodes"][node]["class"])

    def is_latched(self, node: str) -> bool:
        if self.daemon is not None and self.daemon.engine is not None:
            return self.daemon.engine.state.node(node).latched
        return bool(self._status()["nodes"][node]["latched"])

    def offs(self, node: str) -> int:
        return sum(1 for e in self.sim.power_record(node) if not e.on)

    def alerts(self) -> list[dict[str, Any]]:
        return [r.json for r in self.rx.received if isinstance(r.json, dict)]

    def has_alert(self, node: str, condition: str, status: str = "trigger") -> bool:
        return any(
            a.get("node") == node and a.get("condition") == condition and a.get("status") == status
            for a in self.alerts()
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` at speed 1 (scaled)."""
        await asyncio.sleep(seconds / self.speed)

    async def wait_until(self, pred: Callable[[], bool], within: float, what: str) -> None:
        """Wait up to ``within`` seconds at speed 1 for ``pred``; raise naming ``what``."""
        deadline = time.monotonic() + within / self.speed
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def healthy(self, *nodes: str) -> None:
        names = nodes or tuple(self.sim.nodes)
        await self.wait_until(
            lambda: all(self.node_class(n) == NodeClass.HEALTHY.value for n in names),
            20,
            "every node healthy",
        )

    def outcome(self) -> Outcome:
        classes, latched = {}, set()
        for n in self.sim.nodes:
            with contextlib.suppress(Exception):
                classes[n] = self.node_class(n)
                if self.is_latched(n):
                    latched.add(n)
        return Outcome(
            records={n: list(self.sim.power_record(n)) for n in self.sim.nodes},
            alerts=self.alerts(),
            classes=classes,
            latched=latched,
            elapsed=time.monotonic() - self.t0,
        )

    # ------------------------------------------------------------------ narration
    def _sim_event(self, *args: Any) -> None:
        # SimCluster reports (time, node, what); present it as the world's side.
        if len(args) >= 3:
            self._say(str(args[1]), str(args[2]))
        elif len(args) == 2:
            self._say(str(args[0]), str(args[1]))

    def _say(self, who: str, text: str) -> None:
        if self.narrate is not None:
            self.narrate(who, text)
