"""The daemon: composition root and lifecycle (entry layer).

Startup → serve → shutdown, in the manner of uvicorn's ``Server``: signal handlers only set
flags (SIGTERM/SIGINT stop, SIGHUP reloads); the main loop acts on them; the stop is
graceful and bounded, and never lands between a plug's off and on (the engine waits for
power actions). Concrete adapters are chosen here and nowhere else.

Order at start: config → logging → the state directory's daemon lock → state (under the
state lock) → adapters → half-done cycles finished → jobs scheduled → ``READY=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from watchdog import control, history
from watchdog.alerts.dispatch import Delivery, DeliveryReport, Dispatcher
from watchdog.alerts.factory import build_channels
from watchdog.alerts.heartbeat import Heartbeat
from watchdog.config import Config, load_config
from watchdog.errors import ConfigError
from watchdog.journal import log_event, setup_logging
from watchdog.metrics_server import MetricsServer, start_metrics
from watchdog.model import AlertEvent, AlertStatus, Condition, EventType, Severity
from watchdog.notify import Notifier, watchdog_loop
from watchdog.plugs.base import Plug
from watchdog.plugs.factory import make_plug
from watchdog.probes.http import make_client
from watchdog.scheduler import Engine
from watchdog.store import Store
from watchdog.suite import ProbeSuite

log = logging.getLogger("watchdog.daemon")


def load(path: Path, *, dry_run: bool = False) -> Config:
    """Load and validate; ``--dry-run`` forces every plug to the dry-run driver."""
    cfg = load_config(path)
    if dry_run and not cfg.watchdog.dry_run:
        cfg = cfg.model_copy(update={"watchdog": cfg.watchdog.model_copy(update={"dry_run": True})})
    return cfg


def build_plugs(cfg: Config) -> dict[str, Plug]:
    return {
        n.name: make_plug(n.plug, label=n.name, dry_run=cfg.watchdog.dry_run)
        for _, n in cfg.nodes()
    }


def changed_plugs(old: Config, new: Config) -> dict[str, Plug]:
    """Fresh drivers for every node whose plug config changed — all of them when dry run was
    switched on or off, so a reload into dry run really stops every plug from switching."""
    before = {n.name: n.plug for _, n in old.nodes()}
    flipped = old.watchdog.dry_run != new.watchdog.dry_run
    return {
        n.name: make_plug(n.plug, label=n.name, dry_run=new.watchdog.dry_run)
        for _, n in new.nodes()
        if flipped or before.get(n.name) != n.plug
    }


def config_diff(old: Config, new: Config) -> list[str]:
    """Dotted paths whose values differ (secrets compare by value, print as their path only)."""
    out: list[str] = []
    _diff(old.model_dump(), new.model_dump(), "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
    elif _plain(a) != _plain(b):
        out.append(path)


def _plain(v: Any) -> Any:
    return v.get_secret_value() if hasattr(v, "get_secret_value") else v


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
        self.should_exit = asyncio.Event()
        self.reload_requested = False
        self.status_note = ""  # appended to STATUS= (e.g. a rejected reload)
        self.notifier = Notifier(self.env)
        self.engine: Engine | None = None
        self.metrics: MetricsServer | None = None
        self.started = asyncio.Event()

    # flag-only handlers: the main loop does the work
    def request_stop(self) -> None:
        self.should_exit.set()

    def request_reload(self) -> None:
        self.reload_requested = True
        self.should_exit.set()  # wake the main loop; it clears the event when reloading

    async def serve(self) -> int:
        cfg = load(self.config_path, dry_run=self.dry_run)  # ConfigError -> exit 78 in cli
        if self.configure_logging:
            setup_logging(cfg.watchdog.log_level, journal=self.log_journal)
        state_dir = cfg.state_path(self.env)
        store = Store(state_dir)
        lock = control.DaemonLock(state_dir)
        lock.acquire()  # ControlError: another daemon owns this state directory
        try:
            return await self._serve(cfg, store, state_dir)
        finally:
            lock.release()

    async def _serve(self, cfg: Config, store: Store, state_dir: Path) -> int:
        with control.state_lock(state_dir):
            loaded = store.load()
        client = make_client()
        suite = ProbeSuite(cfg, client)
        dispatcher = self._dispatcher(cfg, client)
        await dispatcher.start()
        engine = Engine(
            cfg,
            suite=suite,
            plugs=build_plugs(cfg),
            alerts=dispatcher,
            store=store,
            state_dir=state_dir,
            on_event=self.on_event,
        )
        self.engine = engine
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
        settled = asyncio.create_task(
            self._resolve_state_reset(engine, reset if loaded.problem else None)
        )
        if self.install_signals:
            self._install_signals()
        self.metrics = await start_metrics(cfg, engine)
        heartbeat = asyncio.create_task(self._heartbeat(cfg, client, engine))
        pinger = asyncio.create_task(watchdog_loop(self.notifier, is_healthy=self._loop_ok))
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
        try:
            last_status = ""
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.should_exit.wait(), timeout=1.0)
                if self.reload_requested:
                    self.reload_requested = False
                    self.should_exit.clear()
                    cfg, dispatcher = await self._reload(cfg, engine, dispatcher, client)
                elif self.should_exit.is_set():
                    break
                status = engine.summary() + (f"; {self.status_note}" if self.status_note else "")
                if status != last_status:
                    self.notifier.status(status)
                    last_status = status
        finally:
            self.notifier.stopping()
            log_event(log, EventType.STOPPING, "cluster-watchdog stopping", action="stop")
            for task in (heartbeat, pinger, settled):
                task.cancel()
            if self.metrics is not None:
                await self.metrics.stop()
            await engine.stop()
            await dispatcher.stop()
            for plug in engine.plugs.values():
                with contextlib.suppress(Exception):
                    await plug.close()
            await client.aclose()
        return 0

    async def _resolve_state_reset(self, engine: Engine, reset: AlertEvent | None) -> None:
        """A state reset is paged once and resolved as soon as every node was seen again on
        the fresh state: from then on the daemon knows the fleet, and the page says what was
        lost (latches, pauses, budgets)."""
        if reset is None:
            return
        while not engine.saw_every_node():  # noqa: ASYNC110 -- polled: no event to await
            await asyncio.sleep(1.0)
        engine.alerts.submit(
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
        engine = self.engine
        return engine is None or time.time() - engine.last_tick < 30.0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _dispatcher(self, cfg: Config, client: Any) -> Dispatcher:
        a = cfg.alerts
        return Dispatcher(
            build_channels(a, client),
            renotify=a.renotify,
            rate_limit=a.rate_limit,
            rate_window=a.rate_window,
            retry_max=a.retry_max,
            retry_backoff=a.retry_backoff,
            on_delivery_failure=self._delivery_failed,
            on_delivered=functools.partial(_page_delivered, cfg.state_path(self.env)),
        )

    def _delivery_failed(self, report: DeliveryReport) -> None:
        log_event(
            log,
            EventType.ALERT_FAILED,
            f"alert delivery via {report.channel} failed: {report.reason}",
            # A retried or rate-limited attempt is a warning; a delivery given up on, an error.
            severity=Severity.ERROR if report.outcome is Delivery.GIVEN_UP else Severity.WARNING,
            node=report.event.node,
            action="alert_failed",
            channel=report.channel,
        )

    async def _heartbeat(self, cfg: Config, client: Any, engine: Engine) -> None:
        hb_cfg = cfg.alerts.heartbeat
        if hb_cfg is None:
            return
        hb = Heartbeat(hb_cfg.url, client, timeout=hb_cfg.timeout)
        while True:
            if self._loop_ok():
                await hb.ping(ok=True)
            await asyncio.sleep(hb_cfg.interval)

    async def _reload(
        self, cfg: Config, engine: Engine, dispatcher: Dispatcher, client: Any
    ) -> tuple[Config, Dispatcher]:
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
            return cfg, dispatcher
        changed = config_diff(cfg, new)
        if new.state_path(self.env) != cfg.state_path(self.env):
            log.warning("watchdog.state_dir changed: takes effect only after a restart")
        if new.metrics != cfg.metrics:
            log.warning("metrics changed: the endpoint moves only at a restart")
        plugs = changed_plugs(cfg, new)
        old_plugs = {name: engine.plugs[name] for name in plugs if name in engine.plugs}
        engine.reload(new, plugs)
        for name, plug in old_plugs.items():
            if engine.power_in_flight(name):
                continue  # the procedure still drives it; it is dropped when it is done
            with contextlib.suppress(Exception):
                await plug.close()
        if any(p.startswith("alerts") for p in changed):
            await dispatcher.stop(timeout=2.0)
            dispatcher = self._dispatcher(new, client)
            await dispatcher.start()
            engine.alerts = dispatcher
        log_event(
            log,
            EventType.CONFIG_RELOADED,
            f"config reloaded: {len(changed)} change(s): {', '.join(changed) or 'none'}",
            severity=Severity.INFO,
            action="reload",
        )
        self.status_note = ""
        self.notifier.ready(engine.summary())
        return new, dispatcher


def _page_delivered(state_dir: Path, channel: str, event: AlertEvent) -> None:
    history.page_delivered(state_dir, channel, event, time.time())


def state_reset_event(problem: str, now: float) -> AlertEvent:
    """The page sent when the state file was unusable: budgets and latches were reset."""
    return AlertEvent(
        node="cluster-watchdog",
        cluster="watchdog",
        condition=Condition.STATE_RESET,
        status=AlertStatus.TRIGGER,
        severity=Severity.CRITICAL,
        summary="cluster-watchdog started with an empty state: its state file was unusable",
        seen=problem,
        done="set the file aside and started with no latches, pauses or cycle budget used",
        todo="inspect the file set aside; re-pause or re-latch nodes as needed",
        at=now,
    )
