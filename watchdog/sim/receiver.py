"""A loopback alert receiver: a real aiohttp server that records every request.

It stands in for Slack, ntfy, PagerDuty, Alertmanager, a generic webhook and a
healthchecks.io ping URL in tests and the demo: any method, any path is accepted and recorded.
``fail_next`` answers the next N requests with ``fail_status`` (500) for retry tests;
``fail_body`` replaces the failure answer's body (e.g. a receiver echoing a key back);
``delay`` holds each answer, to show that a slow channel never blocks the others.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


class Headers(dict[str, str]):
    """Request headers; keys are stored lower-case and looked up case-insensitively."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True, slots=True)
class Received:
    """One recorded request. ``path`` includes the query string; ``at`` is Unix time."""

    method: str
    path: str
    headers: Headers
    body: bytes
    json: Any  # None when the body is not JSON
    at: float


class AlertReceiver:
    """Records requests on ``host`` (loopback), port 0 = an ephemeral port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self.fail_next = 0
        self.fail_status = 500
        self.fail_body: str | None = None
        self.delay = 0.0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (valid after :meth:`start`)."""
        if self._runner is None:
            raise RuntimeError("AlertReceiver is not started")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short shutdown grace: a delayed answer must not hold a test's teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # With port 0 the bound port is known only now.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[Received]:  # noqa: ASYNC109
        """Wait until at least ``count`` requests have arrived; raise TimeoutError if not."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            parsed: Any | None = jsonlib.loads(body) if body else None
        except ValueError:
            parsed = None
        headers = Headers({k.lower(): v for k, v in request.headers.items()})
        self.received.append(
            Received(request.method, request.path_qs, headers, body, parsed, time.time())
        )
        async with self._arrived:
            self._arrived.notify_all()
        failing = self.fail_next > 0
        if failing:
            self.fail_next -= 1
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if failing:
            if self.fail_body is not None:
                return web.Response(text=self.fail_body, status=self.fail_status)
            return web.json_response({"status": "error"}, status=self.fail_status)
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)
