"""What a probe's HTTP request says before its body, built once (adapter helper of ``wire``).

Owns :class:`Prepared` — a request's address (a numeric host's known without a resolver) and
its head as bytes: the request line, ``Host``, ``User-Agent``, ``Accept-Encoding: identity``,
the caller's headers and ``Connection: close``, each value checked as HTTP allows it (a key
with a stray line break is refused here, never sent and never quoted) — and
:func:`encode_json` for a request body. The probes ask the same few requests of each endpoint,
so their caller keeps these per endpoint (:meth:`watchdog.probes.wire.WireClient.memo`)
instead of splitting the URL and writing the head at every request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from watchdog.core.model import FailureKind
from watchdog.edge.bounded import IDENTITY
from watchdog.probes._dial import _numeric
from watchdog.probes._faults import Fault

__all__ = ["Prepared", "encode_json"]

_PATH_SAFE = "/:@!$&'()*+,;=-._~%?"
_BAD_HEADER_HINT = "check api_key for stray whitespace or line breaks"


class Prepared:
    """What a request says before its body: where it goes and its head, built once.

    The probes ask the same few requests of each endpoint: their caller keeps these (per
    endpoint, see :meth:`~watchdog.probes.wire.WireClient.memo`) instead of splitting the URL
    and writing the head again at every request. Raises :class:`Fault` PROBE_ERROR for a
    header HTTP forbids.
    """

    __slots__ = ("addrs", "head", "host", "method", "port", "sized", "tls", "what")

    def __init__(self, method: str, url: str, headers: Mapping[str, str], *, body: bool) -> None:
        parts = urlsplit(url)
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE)
        self.method = method
        self.host = host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.what = f"{method} {parts.path or '/'}"  # how messages name the request
        authority = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            authority += f":{parts.port}"
        # A Content-Length line is written per request when there is a body (or the method
        # takes one); the head then ends before it.
        self.sized = body or method in ("POST", "PUT", "PATCH")
        self.head = _request_head(method, path, authority, headers, self.sized, self.what)
        try:  # a dotted-quad host needs no resolver: its address is known now
            self.addrs = _numeric(host, self.port)
        except ValueError:
            self.addrs = ()  # a malformed host: :func:`addresses` says so at each request


def encode_json(body: Any) -> bytes:
    """A request body as compact UTF-8 JSON (``NaN`` refused)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _request_head(
    method: str,
    path: str,
    authority: str,
    headers: Mapping[str, str],
    sized: bool,
    what: str,
) -> bytes:
    """The request line and headers; without the final empty line when ``sized`` (the
    Content-Length line, written per request, comes last)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
    fields = {
        "User-Agent": "cluster-watchdog",
        "Accept-Encoding": IDENTITY,
        **headers,
        "Connection": "close",
    }
    if sized:
        fields.setdefault("Content-Type", "application/json")
        fields.pop("Content-Length", None)  # the body's own length is written per request
    for name, value in fields.items():
        if not _valid_value(value):
            # Our own request is malformed; the message would quote the offending header.
            raise Fault(
                FailureKind.PROBE_ERROR,
                f"the request could not be sent ({what}): invalid header",
                _BAD_HEADER_HINT,
            )
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + ("\r\n" if sized else "\r\n\r\n")).encode("latin-1")
    except UnicodeEncodeError:
        raise Fault(
            FailureKind.PROBE_ERROR,
            f"the request could not be sent ({what}): invalid header",
            _BAD_HEADER_HINT,
        ) from None


def _valid_value(value: str) -> bool:
    """A header value HTTP allows: visible characters, inner spaces and tabs, no edges."""
    if value != value.strip(" \t"):
        return False
    if value.isascii() and value.isprintable():
        return True  # visible ASCII and spaces: the common case, checked in C
    return all(c in " \t" or 0x21 <= ord(c) <= 0x7E or 0x80 <= ord(c) <= 0xFF for c in value)
