"""Bounded HTTP exchanges shared by the endpoint probes (adapter layer).

Owns the three guarantees every endpoint probe gives:

* one deadline for the whole exchange — connect, headers and body — enforced by the
  exchange's own timer (:mod:`watchdog.probes.wire`) for every request of the probe, so a
  server that drips a byte every few seconds still times out; what the probe waited for when
  it hit (connect, the answer, its body) is tracked;
* a bounded body: read raw and cut at ``max_response_bytes``; an encoding the server imposes
  although we asked for ``identity`` is refused, never inflated (:mod:`watchdog.probes.wire`);
* no exception escapes for a target's fault: OS, TLS and framing errors are translated at the
  edge into a :class:`FailureKind` with a one-line detail and hint — and the API key is
  scrubbed from every text a result carries.

Probes raise :class:`Fault` for what they classify themselves; :func:`run_probe` turns
everything into a :class:`ProbeResult`. Probes take ``timeout`` as a value (ruff ASYNC109 is
silenced on purpose) because a deadline must end as a TIMEOUT result, not as a cancellation
of the caller.

The replies, faults and error translation this builds on are :mod:`watchdog.probes._faults`
(re-exported here).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from watchdog.config import Endpoint
from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.edge.bounded import BodyRefused
from watchdog.probes._faults import (
    DETAIL_CHARS,
    SUMMARY_CHARS,
    Fault,
    Reply,
    one_line,
    status_fault,
)
from watchdog.probes.wire import Prepared, WireClient, encode_json

T = TypeVar("T")

__all__ = [
    "DETAIL_CHARS",
    "SUMMARY_CHARS",
    "Body",
    "Exchange",
    "Fault",
    "Reply",
    "one_line",
    "run_probe",
    "status_fault",
]


class _Call(NamedTuple):
    """One request of an endpoint, prepared, and how a timeout names its phases."""

    ready: Prepared
    connecting: str
    reading: str


class _Requests:
    """An endpoint's requests, prepared at their first use; one per endpoint object, kept by the
    client (:meth:`WireClient.memo`). Keeps nothing of the endpoint but what it needs."""

    __slots__ = ("_base", "_calls", "key", "limit", "spellings")

    def __init__(self, ep: Endpoint) -> None:
        self._base = ep.base_url
        self.key = ep.api_key.get_secret_value() if ep.api_key else ""
        self.spellings = _spellings(self.key) if self.key else ()
        self.limit = ep.max_response_bytes
        # Keyed by the probes' own (method, path, auth, body): a handful per endpoint.
        self._calls: dict[tuple[str, str, bool, bool], _Call] = {}

    def call(self, method: str, path: str, auth: bool, body: bool) -> _Call:
        found = self._calls.get((method, path, auth, body))
        if found is None:
            headers = {"Accept": "application/json"}
            if auth and self.key:
                headers["Authorization"] = f"Bearer {self.key}"
            found = _Call(
                Prepared(method, self._base + path, headers, body=body),
                f"connecting for {method} {path}",
                f"reading the body of {method} {path}",
            )
            self._calls[method, path, auth, body] = found
        return found


class Exchange:
    """The HTTP side of one probe run: requests against one endpoint, phase tracked for timeouts."""

    __slots__ = (
        "_budget",
        "_client",
        "_reading",
        "_requests",
        "connected",
        "deadline",
        "phase",
        "step",
    )

    def __init__(self, client: WireClient, ep: Endpoint, budget: float, deadline: float) -> None:
        self._client = client
        self._requests = client.memo(ep, _Requests)
        self._budget = budget
        self.deadline = deadline  # loop.time() by which the whole probe is over
        self.phase = "starting"  # what the probe waited for when the deadline hit
        self.step = ""  # a probe's own label for the current request ("tool-result turn")
        self.connected = False
        self._reading = ""

    def _connected(self) -> None:
        self.connected = True

    def _answering(self) -> None:
        self.phase = self._reading

    def scrub(self, text: str) -> str:
        """``text`` without the endpoint's API key in any spelling."""
        for spelling, _ in self._requests.spellings:
            text = text.replace(spelling, "***")
        return text

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool,
        json_body: Any = None,
    ) -> Reply:
        """Send one request and read at most ``max_response_bytes`` of its body."""
        requests = self._requests
        call = requests.call(method, path, auth, json_body is not None)
        content = b"" if json_body is None else encode_json(json_body)
        self.connected = False
        self.phase = call.connecting
        self._reading = call.reading
        try:
            status, body = await self._client.send(
                call.ready,
                content,
                limit=requests.limit,
                on_connected=self._connected,
                on_headers=self._answering,
                deadline=self.deadline,
            )
        except BodyRefused as refused:
            raise Fault(FailureKind.BAD_RESPONSE, str(refused)) from None
        # Scrub before anything is cut to one line, so no partial key survives.
        for _, spelling in requests.spellings:
            body = body.replace(spelling, b"***")
        return Reply(status, body)

    async def within(self, step: Awaitable[T]) -> T:
        """Await ``step`` (anything but :meth:`request`) under the probe's deadline."""
        async with asyncio.timeout_at(self.deadline):
            return await step

    def deadline_fault(self) -> Fault:
        if not self.connected and self.phase.startswith("connecting"):
            return Fault(
                FailureKind.CONNECT_TIMEOUT,
                f"TCP connect not completed within {self._budget:g}s ({self.phase})",
            )
        return Fault(
            FailureKind.TIMEOUT,
            f"no complete answer within {self._budget:g}s (while {self._waiting()})",
        )

    def _waiting(self) -> str:
        phase = self.phase
        if phase.startswith("connecting"):
            phase = phase.replace("connecting for", "waiting for the response to", 1)
        return f"{self.step}: {phase}" if self.step else phase


Body = Callable[[Exchange], Awaitable[tuple[str, Mapping[str, str]]]]


async def run_probe(
    probe: ProbeKind,
    client: WireClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
    target: str,
    body: Body,
) -> ProbeResult:
    """Run ``body`` under one deadline; every outcome becomes a ProbeResult, never an exception.

    ``body`` returns ``(detail, data)`` on success and raises :class:`Fault` otherwise. It
    awaits only :meth:`Exchange.request` and :meth:`Exchange.within`, which both end with
    :class:`TimeoutError` at the deadline: the exchange bounds its own I/O with one timer,
    cheaper than an ``asyncio.timeout`` around the whole body.
    """
    exchange = Exchange(client, ep, timeout, asyncio.get_running_loop().time() + timeout)
    started = time.monotonic()
    failure: FailureKind | None = None
    hint = ""
    try:
        detail, data = await body(exchange)
    except TimeoutError:
        fault = exchange.deadline_fault()
        failure, detail, hint, data = fault.kind, fault.detail, fault.hint, fault.data
    except Fault as fault:
        failure, detail, hint, data = fault.kind, fault.detail, fault.hint, fault.data
    except Exception as exc:  # a probe must never take the scheduler down
        # Not logged with a traceback here: an exception text may quote a header, i.e. the
        # key; the message below is scrubbed like every other field.
        failure = FailureKind.PROBE_ERROR
        detail = f"probe crashed: {type(exc).__name__}: {exc}"
        hint, data = hint_for(failure), {}
    latency = time.monotonic() - started
    clean = exchange.scrub
    return ProbeResult(
        probe=probe,
        target=target,
        failure=failure,
        latency=latency,
        # Scrub first, then cut: a key cut in half would no longer match.
        detail=one_line(clean(detail), SUMMARY_CHARS),
        hint=one_line(clean(hint), SUMMARY_CHARS),
        data={k: one_line(clean(v), SUMMARY_CHARS) for k, v in data.items()} if data else {},
    )


def _spellings(secret: str) -> tuple[tuple[str, bytes], ...]:
    # The key itself and how error messages and JSON bodies quote it (repr, bytes repr, JSON);
    # computed once per endpoint (``_Requests``).
    found = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1]}
    return tuple((s, s.encode()) for s in sorted(found, key=len, reverse=True))
