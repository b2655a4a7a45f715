"""What an endpoint probe's HTTP exchange can end in: replies, faults, translated errors.

Owns the vocabulary shared by the endpoint probes (adapter layer): :class:`Fault`, a classified
failure a probe raises; :class:`Reply`, a complete, size-bounded response with the error
message in any shape vLLM and proxies use; :func:`status_fault`, the generic classification
of a non-success status; and :func:`one_line` for readable details. Pure: the exchange itself
is :mod:`watchdog.probes.wire` (which translates OS and framing errors at the edge) and
:mod:`watchdog.probes._http`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind
from watchdog.edge.bounded import printable

DETAIL_CHARS = 200  # a quoted body or message: one readable line in a log or an alert
SUMMARY_CHARS = 400  # a whole detail, hint or data value (a prefix plus a quoted snippet)
# errnos that mean "the network cannot get there" rather than "something local broke".
UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)


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


# First bytes of a UTF-32/16 or UTF-8 BOM or a UTF-16/32 text: json.loads sniffs those.
_NOT_UTF8_START = frozenset({b"\0", b"\xef", b"\xfe", b"\xff"})


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete, size-bounded HTTP response."""

    status: int
    body: bytes

    def text(self) -> str:
        return one_line(self.body.decode("utf-8", errors="replace"))

    def json(self) -> Any:
        """The body as JSON, or :class:`Fault` BAD_RESPONSE (HTML from a proxy, garbage...)."""
        body = self.body
        try:
            if body[:1] not in _NOT_UTF8_START and body[1:2] != b"\0":
                # What json.loads would detect (no BOM, no UTF-16/32 zero byte), decoded here
                # rather than by its encoding sniffer in Python.
                return json.loads(body.decode("utf-8", "surrogatepass"))
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
            raise Fault(
                FailureKind.BAD_RESPONSE, f"HTTP {self.status} body is {what}: {self.text()}"
            ) from None

    def error_type(self) -> str:
        """The error's ``type`` (``InternalServerError``…) in vLLM's flat or nested shape."""
        try:
            payload = json.loads(self.body)
        except ValueError:
            return ""
        err = payload.get("error", payload) if isinstance(payload, dict) else None
        kind = err.get("type") if isinstance(err, dict) else None
        return kind if isinstance(kind, str) else ""

    def error_text(self) -> str:
        """The server's error message in any of the shapes vLLM and proxies use."""
        try:
            payload = json.loads(self.body)
        except (ValueError, RecursionError):
            return self.text()
        if isinstance(payload, dict):
            err = payload.get("error", payload.get("detail", payload.get("message")))
            if isinstance(err, dict):
                err = err.get("message", err)
            if err is not None:
                return one_line(err if isinstance(err, str) else _dumps(err))
        return self.text()


def _dumps(value: object) -> str:
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return "(an error object nested too deeply to show)"


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """Remote text made printable (no control characters, no lone surrogates) and capped."""
    return printable(text, limit)


# What vLLM's 5xx bodies say (reference: vLLM 0.10 to 0.33): engine death, a full queue,
# elastic scaling, and one failed generation are four different fixes.
_DEAD_TEXTS = ("enginedeaderror", "enginecore encountered")
_DEAD_500 = "the server had an error while processing your request"  # >= 0.3x EngineDeadError
_BUSY_TEXTS = ("currently busy", "cannot accept new requests")
_SCALING_TEXTS = ("currently scaling",)


def status_fault(reply: Reply, what: str) -> Fault:
    """The generic classification of a non-success status (``what`` is the path asked)."""
    if reply.status in (401, 403):
        return Fault(FailureKind.AUTH, f"HTTP {reply.status} on {what}: {reply.error_text()}")
    detail = f"HTTP {reply.status} on {what}"
    if 300 <= reply.status < 400:
        return Fault(
            FailureKind.HTTP_STATUS,
            f"{detail}: redirect (not followed)",
            "the server redirects: set base_url to the final address (redirects are not followed)",
        )
    said = reply.error_text() if reply.body.strip() else ""
    low = said.lower()
    if said:
        detail += f": {said}"
    kind = _server_fault(reply, what, low)
    if kind is FailureKind.ENGINE_DEAD and not said:
        detail += " (empty body: the engine core is dead)"
    elif kind is FailureKind.HTTP_STATUS and reply.status == 503:
        detail += " (busy, scaling or engine dead)"
    return Fault(kind, detail)


def _server_fault(reply: Reply, what: str, low: str) -> FailureKind:
    status = reply.status
    if status == 503 and any(t in low for t in _BUSY_TEXTS):
        return FailureKind.ENGINE_BUSY
    if status == 503 and any(t in low for t in _SCALING_TEXTS):
        return FailureKind.SCALING
    if status in (500, 503) and any(t in low for t in _DEAD_TEXTS):
        return FailureKind.ENGINE_DEAD
    # vLLM's /health says only "dead": 500 (0.10) or 503 (>= 0.20), both with an empty body.
    if what == "/health" and status in (500, 503) and not low:
        return FailureKind.ENGINE_DEAD
    if status == 500:
        if not low or _DEAD_500 in low:  # 0.10 answers a dead engine's chat with an empty 500
            return FailureKind.ENGINE_DEAD
        if reply.error_type() == "InternalServerError":  # vLLM's JSON, not a proxy's page
            return FailureKind.GENERATION_ERROR
    return FailureKind.HTTP_STATUS
