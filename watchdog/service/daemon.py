"""The daemon: composition root and lifecycle (entry layer).

Shaped like uvicorn's ``Server``: :meth:`Daemon.serve` runs ``startup`` → ``main_loop`` →
``shutdown``. Signal handlers only set flags and wake the loop: SIGTERM or SIGINT asks for a
stop, SIGHUP for a reload. The main loop acts on them — a reload is its own step, and a stop
ends the loop. The stop is graceful and bounded, and never lands between a plug's off and on
(the engine waits for power actions). A second SIGTERM or SIGINT forces it: power actions
in flight are cancelled — each still switches its plug back on first, and its recorded
intent is finished at the next start — alert queues are not drained, and the exit status
is 128 + that signal's number (143 for SIGTERM, 130 for SIGINT); a graceful stop exits 0.
The daemon drives the engine through its methods only.

Order at start: config → logging → the state directory's daemon lock → state (under the
state lock) → adapters → half-done cycles finished → jobs scheduled → ``READY=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.alerts.client import LazyClient
from watchdog.alerts.dispatch import Dispatcher
from watchdog.config import Config
from watchdog.core.errors import ConfigError
from watchdog.core.model import AlertEvent, AlertStatus, EventType, Severity
from watchdog.engine.engine import Engine
from watchdog.engine.suite import ProbeSuite
from watchdog.probes.http import make_client
from watchdog.service.notify import Notifier, watchdog_loop
from watchdog.service.wiring import (
    build_dispatcher,
    build_plugs,
    changed_plugs,
    config_diff,
    heartbeat,
    load,
    state_reset_event,
)
from watchdog.state import locks
from watchdog.state.store import Store
from watchdog.telemetry import metrics
from watchdog.telemetry.journal import log_event, setup_logging

if TYPE_CHECKING:  # aiohttp and prometheus_client load only with metrics.listen set
    from watchdog.service.metrics_server import MetricsServer

log = logging.getLogger("watchdog.daemon")

_DRAIN = 5.0  # how long a graceful stop lets the alert queues drain
_TICK_STALE = 30.0  # a scheduler that has not ticked for this long is stuck: pings stop


class Daemon:
    """One running watchdog. ``serve()`` returns the process exit code."""

    def __init__(
        self,
        config_path: Path,
        *,
        dry_run: bool = False,
        env: Mapping[str, str] | None = None,
        on_event: Callable[[str], None] | None = None,
        install_signals: bool = True,
        log_journal: bool | None = None,
        configure_logging: bool = True,
    ) -> None:
        self.config_path = config_path
        self.dry_run = dry_run
        self.env = dict(os.environ if env is None else env)
        self.on_event = on_event
        self.install_signals = install_signals
        self.log_journal = log_journal
        self.configure_logging = configure_logging  # False: the embedding program owns logging
        # Flags the handlers set; the main loop and the shutdown act on them.
        self.should_exit = False
        self.force_exit = False
        self.reload_requested = False
        self.exit_code = 0
        self._wake = asyncio.Event()  # a flag was set: the main loop looks at once
        self._forced = asyncio.Event()  # a second stop signal: the shutdown cuts its waits
        self.status_note = ""  # appended to STATUS= (e.g. a rejected reload)
        self.notifier = Notifier(self.env)
        self.engine: Engine | None = None
        self.metrics: MetricsServer | None = None
        self.started = asyncio.Event()
        # Set up by startup(), for the main loop, reloads and the shutdown.
        self._cfg: Config | None = None
        self._client = LazyClient(make_client)  # built at the first page or heartbeat
        self._dispatcher: Dispatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ flag-only handlers
    def handle_exit(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM or SIGINT: the first asks for a graceful stop, a second forces it."""
        if self.should_exit:
            self.force_exit = True
            self.exit_code = 128 + sig
            self._forced.set()
        self.should_exit = True
        self._wake.set()

    def request_stop(self) -> None:
        self.handle_exit(signal.SIGTERM)

    def request_reload(self) -> None:
        self.reload_requested = True
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle
    async def serve(self) -> int:
        cfg = load(self.config_path, dry_run=self.dry_run)  # ConfigError -> exit 78 in cli
        if self.configure_logging:
            setup_logging(cfg.watchdog.log_level, journal=self.log_journal)
        state_dir = cfg.state_path(self.env)
        lock = locks.DaemonLock(state_dir)
        lock.acquire()  # ControlError: another daemon owns this state directory
        try:
            await self.startup(cfg, Store(state_dir), state_dir)
            try:
                await self.main_loop()
            finally:
                await self.shutdown()
        finally:
            lock.release()
        return self.exit_code

    async def startup(self, cfg: Config, store: Store, state_dir: Path) -> None:
        """State and adapters, half-done cycles finished, jobs scheduled, then ``READY=1``."""
        self._cfg = cfg
        with locks.state_lock(state_dir):
            loaded = store.load()
        if cfg.metrics is not None:
            metrics.enable()  # counted from the first probe on, as the endpoint serves them
        self._dispatcher = dispatcher = self._new_dispatcher(cfg)
        await dispatcher.start()
        self.engine = engine = Engine(
            cfg,
            suite=ProbeSuite(cfg),
            plugs=build_plugs(cfg),
            alerts=dispatcher,
            store=store,
            state_dir=state_dir,
            on_event=self.on_event,
        )
        reset = None
        if loaded.problem:
            log_event(
                log,
                EventType.STATE_PROBLEM,
                f"persisted state unusable: {loaded.problem}; moved to {loaded.moved_to}",
                severity=Severity.ERROR,
            )
            reset = state_reset_event(loaded.problem, time.time())
            dispatcher.submit(reset)
        await engine.start(loaded.state)
        self._tasks.append(asyncio.create_task(self._resolve_state_reset(engine, reset)))
        if self.install_signals:
            self._install_signals()
        if cfg.metrics is not None:
            from watchdog.service.metrics_server import start_metrics

            self.metrics = await start_metrics(cfg, engine)
        self._tasks.append(
            asyncio.create_task(heartbeat(cfg, self._client, is_healthy=self._loop_ok))
        )
        self._tasks.append(
            asyncio.create_task(watchdog_loop(self.notifier, is_healthy=self._loop_ok))
        )
        self.notifier.ready(engine.summary())
        log_event(
            log,
            EventType.STARTED,
            f"cluster-watchdog started: {engine.summary()}"
            + (" [dry run: no plug will be switched]" if cfg.watchdog.dry_run else ""),
            severity=Severity.INFO,
            action="start",
        )
        self.started.set()

    async def main_loop(self) -> None:
        """Until a stop is asked: a reload when one is asked; ``STATUS=`` kept current."""
        last_status = ""
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._wake.clear()
            if self.should_exit:
                break
            if self.reload_requested:
                self.reload_requested = False
                await self.reload()
            status = self._engine.summary() + (f"; {self.status_note}" if self.status_note else "")
            if status != last_status:
                self.notifier.status(status)
                last_status = status

    async def shutdown(self) -> None:
        """Stop probing, let power actions finish (a forced stop cancels them: each switches
        its plug back on first), drain the alert queues, close every connection."""
        self.notifier.stopping()
        log_event(log, EventType.STOPPING, "cluster-watchdog stopping", action="stop")
        for task in self._tasks:
            task.cancel()
        if self.metrics is not None:
            await self.metrics.stop()
        engine = self._engine
        stopping = asyncio.create_task(engine.stop())
        forced = asyncio.create_task(self._forced.wait())
        await asyncio.wait({stopping, forced}, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if not stopping.done():
            log.warning("stop forced: power actions in flight are cancelled (plugs switched on)")
            engine.cut_short()
        await stopping
        assert self._dispatcher is not None
        await self._dispatcher.stop(timeout=0.0 if self.force_exit else _DRAIN)
        await engine.aclose()
        await self._client.aclose()

    async def reload(self) -> None:
        """SIGHUP: adopt the config file as it is now; a bad one is logged and the old one
        keeps running. Only what changed is rebuilt (plug drivers, alert channels)."""
        cfg, engine = self._cfg, self._engine
        assert cfg is not None and self._dispatcher is not None
        self.notifier.reloading()
        try:
            new = load(self.config_path, dry_run=self.dry_run)
        except ConfigError as exc:
            log_event(
                log,
                EventType.CONFIG_REJECTED,
                f"config reload rejected, the old config keeps running: {exc}",
                severity=Severity.ERROR,
                action="reload",
                key=exc.path,
            )
            # Kept in STATUS= until a reload succeeds, so `systemctl status` shows it.
            self.status_note = f"config reload rejected ({exc.path}); running the old config"
            self.notifier.ready(f"{engine.summary()}; {self.status_note}")
            return
        changed = config_diff(cfg, new)
        if new.state_path(self.env) != cfg.state_path(self.env):
            log.warning("watchdog.state_dir changed: takes effect only after a restart")
        if new.metrics != cfg.metrics:
            log.warning("metrics changed: the endpoint moves only at a restart")
        await engine.reconfigure(new, changed_plugs(cfg, new))
        if any(p.startswith("alerts") for p in changed):
            await self._dispatcher.stop(timeout=2.0)
            self._dispatcher = self._new_dispatcher(new)
            await self._dispatcher.start()
            engine.replace_alerts(self._dispatcher)
        self._cfg = new
        log_event(
            log,
            EventType.CONFIG_RELOADED,
            f"config reloaded: {len(changed)} change(s): {', '.join(changed) or 'none'}",
            severity=Severity.INFO,
            action="reload",
        )
        self.status_note = ""
        self.notifier.ready(engine.summary())

    # ------------------------------------------------------------------ helpers
    @property
    def _engine(self) -> Engine:
        assert self.engine is not None, "startup() builds the engine"
        return self.engine

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _new_dispatcher(self, cfg: Config) -> Dispatcher:
        return build_dispatcher(cfg, self._client, cfg.state_path(self.env))

    async def _resolve_state_reset(self, engine: Engine, reset: AlertEvent | None) -> None:
        """A state reset is paged once and resolved as soon as every node was seen again on
        the fresh state: from then on the daemon knows the fleet, and the page says what was
        lost (latches, pauses, budgets)."""
        if reset is None:
            return
        while not engine.saw_every_node():  # noqa: ASYNC110 -- polled: no event to await
            await asyncio.sleep(1.0)
        assert self._dispatcher is not None
        self._dispatcher.submit(
            replace(
                reset,
                status=AlertStatus.RESOLVE,
                severity=Severity.INFO,
                summary="cluster-watchdog runs on a fresh state and has seen every node again",
                at=time.time(),
            )
        )

    def _loop_ok(self) -> bool:
        # A scheduler that stopped ticking must stop the WATCHDOG=1 pings too.
        return self.engine is None or self.engine.ticking(_TICK_STALE)
