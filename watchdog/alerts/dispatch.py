"""Alert dispatch: the incident lifecycle (dedup, re-notify, rate limit) and delivery.

The daemon calls :meth:`Dispatcher.submit` on every alert-worthy transition; it never blocks
and never raises. Lifecycle, per ``dedup_key`` (node, condition):

- a trigger for a key that is not open opens an incident and is sent;
- a trigger for an open key is a duplicate — only the stored event is updated — unless it
  is *news*: ``done``, ``todo`` or the severity changed (e.g. wedged → "power cycle
  started": the human must learn what the watchdog did), or a re-notification is due;
- a resolve closes the incident and is sent; a resolve for a key that is not open is
  dropped (no "resolved" for something never paged, so no alert on the first "up");
- a ``restated`` trigger (a page the persisted state says is open, re-stated after a start or
  a reload) is adopted as open without being sent, so its resolve goes out later: which
  pages are open is owned by the policy's persisted state, and this set follows it;
- :meth:`Dispatcher.tick` re-sends open triggers every ``renotify`` seconds (0: never);
- per channel at most ``rate_limit`` sends per ``rate_window``: a trigger over the limit is
  not sent (logged, reported); resolves always go out, and count toward the window.

Delivery: one queue and one worker task per channel, so a slow or failing channel never
delays another or the caller. A failed attempt is retried after ``retry_backoff * 2**n``
(capped) up to ``retry_max`` times when a retry can help. Every failed attempt, give-up,
rate-limited or abandoned event is logged on ``watchdog.alerts`` (channel name and dedup
key, never a secret) and reported through ``on_delivery_failure`` as a
:class:`DeliveryReport`, whose :class:`Delivery` outcome says whether the event is still on
its way (retrying, rate limited) or lost for that channel (given up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from watchdog.alerts.base import Channel, DeliveryError
from watchdog.core.model import AlertEvent, AlertStatus
from watchdog.telemetry import metrics

log = logging.getLogger("watchdog.alerts")

# One back-off step never exceeds this, so a long outage still retries every few minutes.
_MAX_BACKOFF = 600.0


class Delivery(StrEnum):
    """How a delivery step that did not deliver ended, per channel and event."""

    RETRYING = "retrying"  # an attempt failed; another follows after a back-off
    RATE_LIMITED = "rate_limited"  # not sent: the channel's rate limit is reached
    GIVEN_UP = "given_up"  # no more attempts: this channel will not get the event


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One delivery step that did not deliver: ``reason`` says it in words, for a log line."""

    channel: str
    event: AlertEvent
    outcome: Delivery
    reason: str


FailureHook = Callable[[DeliveryReport], None]
DeliveredHook = Callable[[str, AlertEvent], None]


@dataclass
class _Incident:
    event: AlertEvent  # the latest trigger
    opened: float  # clock when first triggered
    notified: float  # clock when last sent


@dataclass
class _Lane:
    """One channel's queue, worker and rate-limit window."""

    channel: Channel
    queue: asyncio.Queue[AlertEvent] = field(default_factory=asyncio.Queue)
    sends: deque[float] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    current: AlertEvent | None = None


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _log(level: int, channel: str, event: AlertEvent, text: str) -> None:
    """One line per delivery step: ``alert <key> (<status>) to <channel>: <text>``."""
    extra = {
        "channel": channel,
        "node": event.node,
        "cluster": event.cluster,
        "dedup_key": event.dedup_key,
    }
    log.log(
        level,
        "alert %s (%s) to %s: %s",
        event.dedup_key,
        event.status.value,
        channel,
        text,
        extra=extra,
    )


class Dispatcher:
    """Routes alert events to every channel; see the module docstring for the rules."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        renotify: float,
        rate_limit: int,
        rate_window: float,
        retry_max: int,
        retry_backoff: float,
        clock: Callable[[], float] = time.time,
        on_delivery_failure: FailureHook | None = None,
        on_delivered: DeliveredHook | None = None,
    ) -> None:
        self._lanes = [_Lane(ch) for ch in channels]
        self._renotify = renotify
        self._rate_limit = rate_limit
        self._rate_window = rate_window
        self._retry_max = retry_max
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._on_failure = on_delivery_failure
        self._on_delivered = on_delivered
        self._open: dict[str, _Incident] = {}
        self.sent: list[tuple[str, AlertEvent]] = []

    @property
    def open_alerts(self) -> dict[str, AlertEvent]:
        """dedup_key -> the latest trigger of every open incident."""
        return {key: inc.event for key, inc in self._open.items()}

    # ------------------------------------------------------------------ lifecycle
    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` for every channel as the lifecycle rules say; never raises."""
        try:
            self._submit(event)
        except Exception as exc:  # the caller is the probing loop: it must never break
            log.error("alert %s could not be queued (%s)", event.dedup_key, type(exc).__name__)

    def _submit(self, event: AlertEvent) -> None:
        now = self._clock()
        key = event.dedup_key
        incident = self._open.get(key)
        if event.status is AlertStatus.RESOLVE:
            if incident is None:
                log.debug("resolve of %s dropped: no open incident", key)
                return
            del self._open[key]
            self._fan_out(event, now)
            return
        if event.restated:
            if incident is None:
                log.info("page %s is open since before a restart or reload: adopted", key)
                self._open[key] = _Incident(replace(event, restated=False), now, now)
            return
        if incident is None:
            self._open[key] = _Incident(event, opened=now, notified=now)
            self._fan_out(event, now)
            return
        old = incident.event
        incident.event = event
        news = (old.severity, old.done, old.todo) != (event.severity, event.done, event.todo)
        if news:
            incident.notified = now
            self._fan_out(event, now)
        elif self._due(incident, now):
            self._remind(incident, now)
        else:
            log.debug("trigger of %s is a duplicate: not re-sent", key)

    def tick(self) -> None:
        """Re-notify every open incident whose ``renotify`` interval has passed."""
        now = self._clock()
        for incident in list(self._open.values()):
            if self._due(incident, now):
                self._remind(incident, now)

    def _due(self, incident: _Incident, now: float) -> bool:
        return self._renotify > 0 and now - incident.notified >= self._renotify

    def _remind(self, incident: _Incident, now: float) -> None:
        incident.notified = now
        ev = incident.event
        summary = f"Still unresolved after {_ago(now - incident.opened)}: {ev.summary}"
        self._fan_out(replace(ev, summary=summary), now)

    def _fan_out(self, event: AlertEvent, now: float) -> None:
        for lane in self._lanes:
            name = lane.channel.name
            while lane.sends and lane.sends[0] <= now - self._rate_window:
                lane.sends.popleft()
            # Resolves bypass the limiter: a storm that hit the limit is exactly when on-call
            # most needs to learn what has recovered, and a lost resolve leaves a page open
            # (PagerDuty keeps escalating) until someone closes it by hand.
            if event.status is AlertStatus.TRIGGER and len(lane.sends) >= self._rate_limit:
                reason = (
                    f"rate limited: {self._rate_limit} sends per {self._rate_window:g}s reached"
                )
                _log(logging.WARNING, name, event, f"not sent: {reason}")
                metrics.page_failed(name, event)
                self._report(DeliveryReport(name, event, Delivery.RATE_LIMITED, reason))
                continue
            lane.sends.append(now)
            lane.queue.put_nowait(event)

    # ------------------------------------------------------------------ delivery
    async def start(self) -> None:
        """Start one worker per channel (idempotent)."""
        for lane in self._lanes:
            if lane.worker is None or lane.worker.done():
                lane.worker = asyncio.create_task(
                    self._work(lane), name=f"alerts-{lane.channel.name}"
                )

    # The daemon's API takes a plain budget in seconds (ASYNC109 prefers asyncio.timeout).
    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait up to ``timeout`` s until every queue is empty and nothing is in flight."""
        waits = [lane.queue.join() for lane in self._lanes]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            busy = sum(lane.queue.qsize() + (lane.current is not None) for lane in self._lanes)
            log.info("alert queues not drained within %gs: %d events pending", timeout, busy)

    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Drain for up to ``timeout`` s, then cancel the workers; report what is left."""
        await self.drain(timeout)
        workers = [lane.worker for lane in self._lanes if lane.worker is not None]
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lane in self._lanes:
            lane.worker = None
            while not lane.queue.empty():
                event = lane.queue.get_nowait()
                lane.queue.task_done()
                self._give_up(lane.channel.name, event, "abandoned at shutdown")

    async def _work(self, lane: _Lane) -> None:
        while True:
            event = await lane.queue.get()
            lane.current = event
            try:
                await self._deliver(lane.channel, event)
            except asyncio.CancelledError:
                self._give_up(lane.channel.name, event, "abandoned at shutdown")
                raise
            finally:
                lane.current = None
                lane.queue.task_done()

    async def _deliver(self, channel: Channel, event: AlertEvent) -> None:
        name = channel.name
        attempt = 0
        while True:
            try:
                await channel.send(event)
            except DeliveryError as exc:
                problem, retryable, hint = exc.detail, exc.retryable, exc.retry_after
            except Exception as exc:  # a channel bug must not kill the worker
                problem, retryable, hint = f"unexpected {type(exc).__name__}", False, None
            else:
                self.sent.append((name, event))
                metrics.page_sent(name, event)
                if self._on_delivered is not None:
                    with contextlib.suppress(Exception):  # a broken hook must not stop delivery
                        self._on_delivered(name, event)
                _log(logging.INFO, name, event, "delivered")
                return
            attempt += 1
            if not retryable or attempt > self._retry_max:
                why = "not retryable" if not retryable else f"{attempt} attempts failed"
                self._give_up(name, event, f"{problem} ({why})")
                return
            delay = min(self._retry_backoff * 2 ** (attempt - 1), _MAX_BACKOFF)
            if hint is not None:
                delay = max(delay, hint)
            _log(
                logging.WARNING,
                name,
                event,
                f"attempt {attempt} failed: {problem}; retrying in {delay:.2f}s",
            )
            failed = f"attempt {attempt} failed: {problem}"
            self._report(DeliveryReport(name, event, Delivery.RETRYING, failed))
            await asyncio.sleep(delay)

    def _give_up(self, name: str, event: AlertEvent, reason: str) -> None:
        _log(logging.ERROR, name, event, f"given up: {reason}")
        metrics.page_failed(name, event)
        self._report(DeliveryReport(name, event, Delivery.GIVEN_UP, f"given up: {reason}"))

    def _report(self, report: DeliveryReport) -> None:
        if self._on_failure is None:
            return
        try:
            self._on_failure(report)
        except Exception as exc:  # a broken hook must not stop delivery to others
            log.error("on_delivery_failure hook raised %s", type(exc).__name__)
