"""The engine-progress probe: ``GET /metrics`` (no key), is the engine generating? (adapter layer).

``/health`` stays 200 while a stuck engine produces nothing (for 17 hours in one field report),
and only a completion proves serving — at the price of a generation. vLLM's own Prometheus
metrics tell it for free: requests in the running batch while the generation-token counter
does not move means the engine is stalled.

The metric names are the same in every vLLM this speaks (v1 engine,
``vllm/v1/metrics/loggers.py``: 0.10.0 lines 188 and 285, 0.20.0 lines 452 and 663, 0.33.0
lines 528 and 799): the gauge ``vllm:num_requests_running`` and the counter
``vllm:generation_tokens`` (exposed as ``vllm:generation_tokens_total``), both labelled per
``model_name`` and ``engine``; samples are summed over the labels (data-parallel engines).

Owns: :func:`parse_sample` (the body, bounded by the exchange and cut down to the few lines
needed — at most :data:`MAX_LINES`, found with ``bytes.find`` — then read by the strict parser
of :mod:`.prom_text`, with prometheus-client's text parser for any text the strict one does not
take whole, so parsing stays cheap; a long text is parsed in a worker thread),
:func:`judge_progress` (pure; time is an argument) and :class:`ProgressTracker`, the
previous sample per cluster that the judgement needs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from watchdog.config import Endpoint
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._http import Exchange, Fault, run_probe, status_fault
from watchdog.probes.prom_text import client_samples, strict_samples
from watchdog.probes.wire import WireClient

RUNNING = "vllm:num_requests_running"
GENERATED = "vllm:generation_tokens"  # a counter: its sample is GENERATED + "_total"
_GENERATED_TOTAL = GENERATED + "_total"
_WANTED = frozenset({RUNNING, GENERATED, _GENERATED_TOTAL})
# One sample per engine and model, plus HELP/TYPE: a few lines in any real deployment. The cap
# bounds the parsers' CPU whatever the page says (a few µs a line strict, about 30 µs with
# prometheus-client).
MAX_LINES = 256
_INLINE_CHARS = 16 * 1024  # the strict parser reads this much on the event loop (< 1 ms)
# prometheus-client (the strict parser's fallback) reads this few on the event loop (< 1 ms).
_INLINE_LINES = 16
_CLIENT_INLINE_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of /metrics: requests in the running batch, tokens generated so far."""

    running: float
    generated: float


@dataclass(frozen=True, slots=True)
class Progress:
    """What the judgement remembers: the counter, and since when it has not moved."""

    generated: float
    since: float  # last time the counter moved or the engine had nothing running


@dataclass(frozen=True, slots=True)
class Verdict:
    stalled: bool
    still_for: float  # seconds the counter has not moved with requests running (0 if moving)
    state: Progress


def judge_progress(
    previous: Progress | None, sample: Sample, now: float, stall_after: float
) -> Verdict:
    """Stalled: requests running and the counter unchanged for ``stall_after`` seconds.

    Pure. An idle engine (nothing running) is never stalled; a counter that went down (the
    server restarted) counts as moving. The still time is measured from the last sample at
    which the engine was known to make progress or be idle.
    """
    moved = previous is None or sample.generated != previous.generated
    if moved or sample.running <= 0 or previous is None:
        return Verdict(False, 0.0, Progress(sample.generated, now))
    still = now - previous.since
    return Verdict(still >= stall_after, still, previous)


_NEEDLES = (RUNNING.encode(), GENERATED.encode())  # every wanted line holds one of these
_CANDIDATES = 4 * MAX_LINES  # lines holding a needle (counters add "_created" lines, …)


_NAME_ALTERNATIVES = b"|".join(re.escape(n.encode()) for n in sorted(_WANTED, reverse=True))
# A stripped line that is a HELP/TYPE or sample line of a wanted metric: the name is the third
# blank-separated word of a comment, or what a sample line holds before ``{`` or a blank.
_WANTED_LINE = re.compile(
    rb"# (?:HELP|TYPE) \s*(?:%s)(?:\s|\Z)|(?:%s)(?:[{\s]|\Z)"
    % (_NAME_ALTERNATIVES, _NAME_ALTERNATIVES)
)


def _wanted_lines(body: bytes) -> str:
    """The HELP/TYPE and sample lines of the two metrics, nothing else (bounded parse input).

    Only the lines that hold a metric's name are looked at, found by ``bytes.find`` (a real
    vLLM page is hundreds of lines of histograms). Raises :class:`Fault` BAD_RESPONSE beyond
    :data:`MAX_LINES` wanted lines, or :data:`_CANDIDATES` lines holding one of the names.
    """
    if b"\r" in body:  # line ends as ``bytes.splitlines`` sees them
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    starts: set[int] = set()
    for needle in _NEEDLES:
        at = body.find(needle)
        while at != -1:
            starts.add(body.rfind(b"\n", 0, at) + 1)
            if len(starts) > _CANDIDATES:
                raise Fault(
                    FailureKind.BAD_RESPONSE,
                    f"/metrics has more than {_CANDIDATES} lines naming {RUNNING} or {GENERATED}",
                )
            end = body.find(b"\n", at)
            at = -1 if end == -1 else body.find(needle, end)
    keep: list[bytes] = []
    for start in sorted(starts):
        end = body.find(b"\n", start)
        line = body[start : None if end == -1 else end].strip()
        if _WANTED_LINE.match(line):
            keep.append(line)
            if len(keep) > MAX_LINES:
                raise Fault(
                    FailureKind.BAD_RESPONSE,
                    f"/metrics has more than {MAX_LINES} lines of {RUNNING} and {GENERATED}",
                )
    return b"\n".join(keep).decode("utf-8", errors="replace") + "\n"


def parse_sample(body: bytes) -> Sample | None:
    """The two values from a Prometheus text body; None when it lacks either metric.

    Raises :class:`Fault` BAD_RESPONSE when the lines of those metrics do not parse.
    """
    return parse_lines(_wanted_lines(body))


def parse_lines(text: str) -> Sample | None:
    """:func:`parse_sample` for the wanted lines alone.

    Read by the strict parser (:mod:`.prom_text`); a text it does not take whole goes to
    prometheus-client's parser, which decides: the same reading either way.
    """
    found = strict_samples(text)
    return _totals(found if found is not None else _client_samples(text))


def _client_samples(text: str) -> list[tuple[str, float]]:
    try:
        return client_samples(text)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise _not_prometheus(exc) from None


def _not_prometheus(exc: Exception) -> Fault:
    return Fault(FailureKind.BAD_RESPONSE, f"/metrics is not Prometheus text: {type(exc).__name__}")


def _totals(samples: list[tuple[str, float]]) -> Sample | None:
    """The two sums over the samples (engines, models); None if either metric is missing."""
    running: float | None = None
    generated: float | None = None
    try:
        for name, value in samples:
            if name == RUNNING:
                running = (running or 0.0) + value
            elif name == _GENERATED_TOTAL:
                generated = (generated or 0.0) + value
    except OverflowError as exc:  # an integer beyond any float, which prometheus-client keeps
        raise _not_prometheus(exc) from None
    if running is None or generated is None:
        return None
    return Sample(running, generated)


async def _parse(ex: Exchange, lines: str) -> Sample | None:
    """:func:`parse_lines` bounded on the event loop: the strict parser runs there for a text
    of at most :data:`_INLINE_CHARS` (well under a millisecond), prometheus-client for one of at
    most :data:`_INLINE_LINES` lines and :data:`_CLIENT_INLINE_CHARS`; larger ones go to a
    worker thread, under the probe's deadline."""
    found = (
        strict_samples(lines)
        if len(lines) <= _INLINE_CHARS
        else await ex.within(asyncio.to_thread(strict_samples, lines))
    )
    if found is None:
        if len(lines) <= _CLIENT_INLINE_CHARS and lines.count("\n") <= _INLINE_LINES:
            found = _client_samples(lines)
        else:
            found = await ex.within(asyncio.to_thread(_client_samples, lines))
    return _totals(found)


class ProgressTracker:
    """The previous sample per cluster, held by the probe adapter between runs."""

    def __init__(self) -> None:
        self._seen: dict[str, Progress] = {}

    def judge(self, cluster: str, sample: Sample, now: float, stall_after: float) -> Verdict:
        verdict = judge_progress(self._seen.get(cluster), sample, now, stall_after)
        self._seen[cluster] = verdict.state
        return verdict

    def forget(self, cluster: str) -> None:
        self._seen.pop(cluster, None)


async def probe_progress(
    client: WireClient,
    ep: Endpoint,
    tracker: ProgressTracker,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
    target: str,
    now: float,
) -> ProbeResult:
    """``GET {base}/metrics``: ENGINE_STALLED when requests run and no token is generated."""
    stall_after = ep.progress.stall_after

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        reply = await ex.request("GET", "/metrics", auth=False)
        if reply.status == 404:
            raise Fault(
                FailureKind.HTTP_STATUS,
                "HTTP 404 on /metrics",
                "no /metrics here (a proxy forwarding only /v1?): expose it, or set "
                "endpoint.progress.enabled: false",
            )
        if reply.status != 200:
            raise status_fault(reply, "/metrics")
        # Bounded (max_response_bytes, MAX_LINES); the lines are found in C, and only a page
        # with many or long ones is parsed off the event loop.
        sample = await _parse(ex, _wanted_lines(reply.body))
        if sample is None:
            tracker.forget(target)
            return f"unknown: /metrics lacks {RUNNING} or {GENERATED}_total", {}
        verdict = tracker.judge(target, sample, now, stall_after)
        data = {"running": f"{sample.running:g}", "generated": f"{sample.generated:g}"}
        if verdict.stalled:
            raise Fault(
                FailureKind.ENGINE_STALLED,
                f"{sample.running:g} requests running, generation tokens stuck at "
                f"{sample.generated:g} for {verdict.still_for:.0f}s (stall_after "
                f"{stall_after:g}s)",
                data=data,
            )
        still = f", still for {verdict.still_for:.0f}s" if verdict.still_for else ""
        return f"{sample.running:g} running, {sample.generated:g} tokens generated{still}", data

    result = await run_probe(
        ProbeKind.PROGRESS, client, ep, timeout=timeout, target=target, body=body
    )
    if result.failure in _NO_SAMPLE:
        # Nothing answered: that is the health probe's to report (it runs more often). This
        # probe only judges progress; a stale "refused" from a reboot must not outlive it.
        tracker.forget(target)
        return replace(
            result, failure=None, hint="", detail=f"no sample ({result.failure}): {result.detail}"
        )
    return result


_NO_SAMPLE = frozenset(
    {
        FailureKind.REFUSED,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.UNREACHABLE,
        FailureKind.TIMEOUT,
    }
)
