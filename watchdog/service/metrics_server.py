"""The read-only HTTP endpoint of the running daemon: ``GET /metrics`` and ``GET /healthz``.

Served by aiohttp from the daemon's own event loop (aiohttp bounds request lines and headers;
no route reads a body); the exposition is rendered in a worker thread, one at a time, so a
large fleet's scrape does not hold the loop. ``/metrics`` is the Prometheus text format of
:mod:`watchdog.telemetry.exposition`; ``/healthz`` answers 200 while the scheduler ticked within
twice its period, 503 otherwise. Any other method is refused (405), any other path is 404.
A small timer task measures how late the event loop runs it: the scheduler loop's lag.

The daemon imports this module (aiohttp, prometheus_client) only when ``metrics.listen`` is
set; building a server turns the counting hooks of :mod:`watchdog.telemetry.metrics` on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from watchdog.config import Config
from watchdog.telemetry import exposition, metrics

log = logging.getLogger("watchdog.metrics")

LAG_PERIOD = 0.5  # how often the loop-lag timer runs
# The classic text format, which every Prometheus since 2.0 parses (all names are ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def tick_period(cfg: Config) -> float:
    """The scheduler's tick period for ``cfg`` (the engine's ``tick`` job)."""
    return max(0.2, min(1.0, cfg.policy.confirm_interval / 2))


class MetricsServer:
    """Serves one engine's metrics on ``cfg.metrics.listen`` until :meth:`stop`."""

    def __init__(self, engine: exposition.EngineView, host: str, port: int) -> None:
        metrics.enable()
        self.engine = engine
        self.host = host
        self.port = port
        self.lag = 0.0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(exposition.EVENTS)
        self.registry.register(exposition.FleetCollector(engine, lambda: self.lag))
        self._runner: web.AppRunner | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._render = asyncio.Lock()
        self._primed: Config | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        sockets = getattr(site._server, "sockets", None) or ()
        if sockets:  # port 0 in tests: learn the one the kernel chose
            self.port = int(sockets[0].getsockname()[1])
        self._lag_task = asyncio.create_task(self._measure_lag(), name="metrics-loop-lag")

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def healthy(self) -> bool:
        engine = self.engine
        return engine.clock() - engine.last_tick <= 2 * tick_period(engine.cfg)

    async def _metrics(self, request: web.Request) -> web.Response:
        # Rendered off the loop (one at a time): at 100 nodes it takes tens of milliseconds.
        # The collector only reads immutable state and the counters take their own locks.
        cfg = self.engine.cfg
        if cfg is not self._primed:  # started, or reloaded: new nodes' series start at zero
            exposition.prime(cfg, channel_names(cfg))
            self._primed = cfg
        async with self._render:
            body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.healthy():
            return web.Response(text="ok\n")
        age = self.engine.clock() - self.engine.last_tick
        return web.Response(status=503, text=f"scheduler last ticked {age:.1f}s ago\n")

    async def _measure_lag(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PERIOD)
            self.lag = max(0.0, time.monotonic() - before - LAG_PERIOD)


def channel_names(cfg: Config) -> list[str]:
    """The channels' names as :func:`watchdog.alerts.factory.build_channels` gives them."""
    names: list[str] = []
    for ch in cfg.alerts.channels:
        name = base = ch.name or ch.type
        n = 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


async def start_metrics(cfg: Config, engine: exposition.EngineView) -> MetricsServer | None:
    """Start the endpoint if ``metrics.listen`` is set; a port in use is logged, not fatal."""
    if cfg.metrics is None:
        return None
    server = MetricsServer(engine, cfg.metrics.host, cfg.metrics.port)
    try:
        await server.start()
    except OSError as exc:
        log.error(
            "metrics endpoint not started: cannot listen on %s (%s)",
            cfg.metrics.listen,
            exc.strerror or type(exc).__name__,
        )
        return None
    log.info("metrics endpoint listening on %s/metrics", server.url)
    return server
