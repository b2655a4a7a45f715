"""Bounded HTTP exchanges shared by the endpoint probes (adapter layer).

Owns the three guarantees every endpoint probe gives (design §4, issue 2 item 5):

* one deadline for the whole exchange — connect, headers and body — enforced with
  ``asyncio.timeout`` because httpx's timeouts are per operation, so a server that drips a
  byte every few seconds would otherwise never time out;
* a bounded body: read by streaming and cut at ``max_response_bytes``;
* no exception escapes for a target's fault: httpx and OS errors are translated here, at the
  edge, into a :class:`FailureKind` with a one-line detail and hint — and the API key is
  scrubbed from every text a result carries.

Probes raise :class:`Fault` for what they classify themselves; :func:`run_probe` turns
everything into a :class:`ProbeResult`. Probes take ``timeout`` as a value (ruff ASYNC109 is
silenced on purpose) because a deadline must end as a TIMEOUT result, not as a cancellation
of the caller.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from watchdog.config import Endpoint
from watchdog.hints import hint_for
from watchdog.model import FailureKind, ProbeKind, ProbeResult

DETAIL_CHARS = 200  # a quoted body or message: one readable line in a log or an alert
SUMMARY_CHARS = 400  # a whole detail, hint or data value (a prefix plus a quoted snippet)
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


class Fault(Exception):
    """A classified probe failure, raised inside a probe and turned into a result by run_probe."""

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        hint: str = "",
        data: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.hint = hint or hint_for(kind)
        self.data = dict(data or {})


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete, size-bounded HTTP response."""

    status: int
    body: bytes

    def text(self) -> str:
        return one_line(self.body.decode("utf-8", errors="replace"))

    def json(self) -> Any:
        """The body as JSON, or :class:`Fault` BAD_RESPONSE (HTML from a proxy, garbage...)."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise Fault(
                FailureKind.BAD_RESPONSE, f"HTTP {self.status} body is not JSON: {self.text()}"
            ) from None

    def error_text(self) -> str:
        """The server's error message in any of the shapes vLLM and proxies use."""
        try:
            payload = json.loads(self.body)
        except ValueError:
            return self.text()
        if isinstance(payload, dict):
            err = payload.get("error", payload.get("detail", payload.get("message")))
            if isinstance(err, dict):
                err = err.get("message", err)
            if err is not None:
                return one_line(err if isinstance(err, str) else json.dumps(err))
        return self.text()


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Exchange:
    """The HTTP side of one probe run: requests against one endpoint, phase tracked for timeouts."""

    def __init__(self, client: httpx.AsyncClient, ep: Endpoint, budget: float) -> None:
        self._client = client
        self._ep = ep
        self._budget = budget
        self.phase = "starting"  # what the probe waited for when the deadline hit
        self.step = ""  # a probe's own label for the current request ("tool-result turn")
        self.connected = False

    async def _trace(self, event: str, _info: Mapping[str, Any]) -> None:
        # httpcore reports connection steps; a pooled connection skips connect_tcp, so any
        # HTTP-level event also proves the TCP handshake is behind us.
        if event == "connection.connect_tcp.complete" or event.startswith(("http11.", "http2.")):
            self.connected = True

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool,
        json_body: Any = None,
        read_body: bool = True,
    ) -> Reply:
        """Send one request and read at most ``max_response_bytes`` of its body."""
        headers = {"Accept": "application/json"}
        key = self._ep.api_key.get_secret_value() if self._ep.api_key else ""
        if auth and key:
            headers["Authorization"] = f"Bearer {key}"
        limit = self._ep.max_response_bytes
        self.connected = False
        self.phase = f"connecting for {method} {path}"
        try:
            async with self._client.stream(
                method,
                self._ep.base_url + path,
                headers=headers,
                json=json_body,
                # The asyncio deadline rules; httpx's own limits only back it up.
                timeout=httpx.Timeout(self._budget),
                extensions={"trace": self._trace},
            ) as resp:
                self.phase = f"reading the body of {method} {path}"
                if not read_body:
                    return Reply(resp.status_code, b"")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise Fault(FailureKind.BAD_RESPONSE, _too_large(limit, declared))
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        # Leaving the block closes the connection: the rest is never read.
                        raise Fault(FailureKind.BAD_RESPONSE, _too_large(limit))
                # Scrub before anything is cut to one line, so no partial key survives.
                return Reply(resp.status_code, scrub_bytes(bytes(body), key))
        except httpx.HTTPError as exc:
            raise translate(exc, f"{method} {path}") from exc

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


def _too_large(limit: int, declared: str = "") -> str:
    said = f" (Content-Length {declared})" if declared else ""
    return f"response larger than {limit} bytes{said}"


def _root_causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def translate(exc: httpx.HTTPError, what: str) -> Fault:
    """Map an httpx error (and the OS error under it) to a failure kind."""
    chain = _root_causes(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return Fault(FailureKind.CONNECT_TIMEOUT, f"TCP connect timed out ({what})")
    if isinstance(exc, httpx.PoolTimeout):
        return Fault(FailureKind.PROBE_ERROR, f"no free connection in the watchdog's pool ({what})")
    if isinstance(exc, httpx.TimeoutException):
        return Fault(FailureKind.TIMEOUT, f"timed out ({what})")
    if isinstance(exc, httpx.ConnectError):
        for cause in chain:
            if isinstance(cause, ConnectionRefusedError):
                return Fault(FailureKind.REFUSED, f"connection refused ({what})")
            if isinstance(cause, socket.gaierror):
                return Fault(FailureKind.UNREACHABLE, f"name resolution failed ({what}): {cause}")
            if isinstance(cause, ssl.SSLError):
                return Fault(
                    FailureKind.BAD_RESPONSE,
                    f"TLS handshake failed ({what}): {one_line(str(cause))}",
                    "TLS failed: check the certificate, or use http:// for vLLM's plain port",
                )
            if isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS:
                return Fault(FailureKind.UNREACHABLE, f"{cause.strerror} ({what})")
        return Fault(FailureKind.UNREACHABLE, f"cannot connect ({what}): {one_line(str(exc))}")
    if isinstance(exc, httpx.LocalProtocolError):
        # Our own request is malformed; the message would quote the offending header.
        return Fault(
            FailureKind.PROBE_ERROR,
            f"the request could not be sent ({what}): invalid header",
            "check api_key for stray whitespace or line breaks",
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return Fault(FailureKind.BAD_RESPONSE, f"not a valid HTTP answer ({what}): {exc}")
    if isinstance(exc, httpx.NetworkError):
        return Fault(FailureKind.BAD_RESPONSE, f"connection dropped mid-answer ({what}): {exc}")
    return Fault(FailureKind.PROBE_ERROR, f"{type(exc).__name__} ({what}): {one_line(str(exc))}")


def status_fault(reply: Reply, what: str) -> Fault:
    """The generic classification of a non-success status."""
    if reply.status in (401, 403):
        return Fault(FailureKind.AUTH, f"HTTP {reply.status} on {what}: {reply.error_text()}")
    detail = f"HTTP {reply.status} on {what}"
    if 300 <= reply.status < 400:
        return Fault(
            FailureKind.HTTP_STATUS,
            f"{detail}: redirect (not followed)",
            "the server redirects: set base_url to the final address (redirects are not followed)",
        )
    if reply.status == 503:
        detail += " (engine dead or not ready)"
    if reply.body:
        detail += f": {reply.error_text()}"
    return Fault(FailureKind.HTTP_STATUS, detail)


Body = Callable[[Exchange], Awaitable[tuple[str, Mapping[str, str]]]]


async def run_probe(
    probe: ProbeKind,
    client: httpx.AsyncClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline (design §4)
    target: str,
    body: Body,
) -> ProbeResult:
    """Run ``body`` under one deadline; every outcome becomes a ProbeResult, never an exception.

    ``body`` returns ``(detail, data)`` on success and raises :class:`Fault` otherwise.
    """
    exchange = Exchange(client, ep, timeout)
    started = time.monotonic()
    failure: FailureKind | None = None
    hint = ""
    try:
        async with asyncio.timeout(timeout):
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
    key = ep.api_key.get_secret_value() if ep.api_key else ""
    return ProbeResult(
        probe=probe,
        target=target,
        failure=failure,
        latency=latency,
        # Scrub first, then cut: a key cut in half would no longer match.
        detail=one_line(scrub(detail, key), SUMMARY_CHARS),
        hint=one_line(scrub(hint, key), SUMMARY_CHARS),
        data={k: one_line(scrub(v, key), SUMMARY_CHARS) for k, v in data.items()},
    )


def _spellings(secret: str) -> list[str]:
    # The key itself and how error messages and JSON bodies quote it (repr, bytes repr, JSON).
    found = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1]}
    return sorted(found, key=len, reverse=True)


def scrub_bytes(body: bytes, secret: str) -> bytes:
    for spelling in _spellings(secret) if secret else []:
        body = body.replace(spelling.encode(), b"***")
    return body


def scrub(text: str, secret: str) -> str:
    """Remove ``secret`` from ``text``: a proxy or server may echo the Authorization header."""
    for spelling in _spellings(secret) if secret else []:
        text = text.replace(spelling, "***")
    return text
