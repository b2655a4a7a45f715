"""What every alert channel shares: the Channel protocol, DeliveryError, and the HTTP edge.

A channel turns one :class:`~watchdog.core.model.AlertEvent` into one HTTP request. The only
place httpx exceptions are caught is :func:`post`, which translates them (and non-2xx
answers) into :class:`DeliveryError` carrying whether a retry can help; httpx is imported
there, at the first send. Error texts name the channel only — never a URL, a routing key or
a token — because webhook URLs are secrets.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from watchdog.alerts.client import http_client
from watchdog.core.errors import WatchdogError
from watchdog.core.model import AlertEvent, AlertStatus
from watchdog.edge.bounded import IDENTITY, BodyRefused, printable, read_body
from watchdog.edge.redact import redact as redact_all

if TYPE_CHECKING:
    import httpx

    from watchdog.alerts.client import HttpClient

# How much of an error answer's body goes into a DeliveryError (after redaction).
_BODY_SNIPPET = 200
# A receiver's answer is read up to this many bytes; a longer one fails the delivery.
_MAX_ANSWER = 65536
# Statuses worth retrying: the receiver is overloaded or briefly broken. Any other 4xx means
# our request (payload, key, URL) is wrong, and sending it again cannot change the answer.
_RETRYABLE_STATUS = frozenset({408, 425, 429})
# Never wait longer than this on a Retry-After: a resolve queued behind must still go out.
_MAX_RETRY_AFTER = 300.0


class DeliveryError(WatchdogError):
    """A channel could not deliver an event.

    ``retryable`` says whether sending the same request again may succeed (timeouts,
    connection failures, 429, 5xx); ``retry_after`` is the receiver's own hint in seconds.
    The message never contains a URL's secret parts or keys.
    """

    def __init__(
        self, channel: str, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        self.channel = channel
        self.detail = message
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{channel}: {message}")


class Channel(Protocol):
    """One notification transport (webhook, Slack, ntfy, PagerDuty, Alertmanager)."""

    name: str

    async def send(self, event: AlertEvent) -> None:
        """Deliver ``event`` once (no retries); raise :class:`DeliveryError` on failure."""
        ...


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***`` (longest first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """Parts of ``url`` an error body might echo: the URL, its path and query, long segments.

    Webhook and ping URLs carry their token in the path or query; a receiver may quote any
    part of it back, so all of them are scrubbed.
    """
    parsed = urlsplit(url)
    parts = [url, parsed.path, parsed.path.lstrip("/"), parsed.query]
    parts += [p for p in re.split(r"[/?&=]", f"{parsed.path}?{parsed.query}") if len(p) >= 12]
    return [p for p in parts if len(p) > 1]


def iso8601(ts: float) -> str:
    """Unix time as RFC 3339 / ISO 8601 in UTC (``2025-01-31T02:14:07.250Z``)."""
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def header_value(text: str) -> str:
    """An HTTP header value: ASCII as is, anything else RFC 2047-encoded (ntfy decodes it)."""
    if text.isascii():
        return " ".join(text.split())  # no CR/LF can reach the wire
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def title(event: AlertEvent) -> str:
    """One line: ``[TRIGGER] spark-1 wedged (cluster main)``."""
    label = "RESOLVED" if event.status is AlertStatus.RESOLVE else event.severity.value.upper()
    return f"[{label}] {event.node} {event.condition.value} (cluster {event.cluster})"


def render_text(event: AlertEvent) -> str:
    """The plain-text message: the summary, then what was seen, done, and what to do."""
    lines = [event.summary]
    for label, value in (("Seen", event.seen), ("Done", event.done), ("To do", event.todo)):
        if value:
            lines.append(f"{label}: {value}")
    if event.failure is not None:
        lines.append(f"Failure: {event.failure.value}")
    return "\n".join(lines)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    try:
        return min(max(float(raw), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None  # an HTTP date or garbage: fall back to our own back-off


async def post(
    client: HttpClient,
    channel: str,
    url: str,
    *,
    request_timeout: float,
    json: Any = None,
    content: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> httpx.Response:
    """POST once; return a 2xx response or raise :class:`DeliveryError` (the only httpx edge).

    ``secrets`` are scrubbed from any text that goes into the error (a receiver may echo
    the routing key or token back in its error body).
    """
    import httpx  # at the first send, not at start: a daemon that never pages needs none

    hidden = [s for s in secrets if s]
    try:
        # One deadline for the whole exchange: httpx's timeouts are per read.
        async with (
            asyncio.timeout(request_timeout),
            http_client(client).stream(
                "POST",
                url,
                json=json,
                content=content,
                headers={**(headers or {}), "Accept-Encoding": IDENTITY},
                timeout=request_timeout,
            ) as response,
        ):
            # A 2xx is delivered: its body is never read (leaving the block drops it). An
            # error answer is read for its message, bounded like every peer's answer.
            body = b""
            if not response.is_success:
                try:
                    body = await read_body(response, _MAX_ANSWER)
                except BodyRefused as exc:
                    body = f"(answer not read: {exc})".encode()
    except TimeoutError:
        raise DeliveryError(
            channel, f"no complete answer within {request_timeout:g}s", retryable=True
        ) from None
    except httpx.TimeoutException as exc:
        raise DeliveryError(
            channel, f"timed out after {request_timeout:g}s ({type(exc).__name__})", retryable=True
        ) from exc
    except httpx.TransportError as exc:
        # The exception text may quote the URL; the class name says enough.
        raise DeliveryError(
            channel, f"connection failed ({type(exc).__name__})", retryable=True
        ) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        raise DeliveryError(
            channel, f"invalid URL ({type(exc).__name__})", retryable=False
        ) from exc
    if response.is_success:
        return response
    status = response.status_code
    # Redact the whole (bounded) answer first, then cut: a key cut in half would survive.
    text = redact_all(redact(body.decode("utf-8", errors="replace"), hidden))
    snippet = printable(text, _BODY_SNIPPET)
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    raise DeliveryError(channel, detail, retryable=retryable, retry_after=_retry_after(response))
