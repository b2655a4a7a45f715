"""Runs the real daemon against the simulated cluster, with compressed timings.

The harness behind both ``cluster-watchdog demo`` and the end-to-end scenario tests: it
starts the simulated cluster (fake vLLM, banner servers, Kasa plug emulators), a webhook
receiver (the on-call side), a witness target, writes a config pointing at them, and runs
``cluster-watchdog run`` — in this process (the :class:`~watchdog.service.daemon.Daemon` itself) or
as a child process when a scenario must ``kill -9`` it. Outcomes are read from the plugs'
own records and the alerts as received, never from the daemon's word. The timings, the
config document and the outcome are :mod:`watchdog.sim.harness_config`.
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
from pathlib import Path
from typing import Any

import yaml

from watchdog.commands.status import read_status
from watchdog.core.model import NodeClass
from watchdog.service.daemon import Daemon
from watchdog.sim.cluster import SimCluster
from watchdog.sim.harness_config import Outcome, Timings, daemon_config
from watchdog.sim.receiver import AlertReceiver
from watchdog.sim.sim_node import SimTimings
from watchdog.sim.vllm_profiles import NEWEST
from watchdog.sim.witness import WitnessServer


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
        """The daemon's config document for this run (:func:`daemon_config`)."""
        return daemon_config(
            self.t,
            self.speed,
            self.sim,
            state_dir=self.state_dir,
            witness_port=self.witness.port,
            receiver_url=self.rx.url,
        )

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
