"""The one redaction step: every resolved secret masked in every log record and every output.

Owns the process-wide set of secret values (:func:`register`, :func:`register_config`, which
collects every ``SecretStr`` of a loaded configuration) and :func:`redact`, which masks

* each secret as written, and as ``repr``, bytes-``repr`` and JSON quote it;
* any piece of :data:`PIECE` (8) consecutive characters of a secret, so a secret cut short
  by a truncation, or split over a header and a URL, does not leak in part.

For a URL that is itself a secret (a Slack webhook, a heartbeat ping URL) the scheme and host
are not secret: the whole URL is masked, but pieces are taken from its path and query only,
so ``https://`` elsewhere in a log line stays readable.

:class:`RedactingFilter` applies :func:`redact` to a log record — message, arguments,
exception text and structured fields — and is installed on the process's log handler, so it
covers third-party loggers (httpx and httpcore print URLs and headers at debug) as well as
ours. :class:`RedactingStream` does the same for ``print`` output and tracebacks on
stdout/stderr, and keeps terminal control characters and lone surrogates off the terminal.
Always redact before truncating.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

PIECE = 8
FIELDS_ATTR = (
    "cw_journal_fields"  # where watchdog.telemetry.journal.log_event puts structured fields
)
MASK = "***"

_lock = threading.Lock()
_whole: set[str] = set()  # spellings masked as a whole, longest first when applied
_pieces: set[str] = set()  # every PIECE-long window of every secret
_ordered: tuple[str, ...] = ()


def _spellings(secret: str) -> set[str]:
    return {
        secret,
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
        json.dumps(secret)[1:-1],
    }


def _windows(text: str) -> set[str]:
    if len(text) < PIECE:
        return set()
    return {text[i : i + PIECE] for i in range(len(text) - PIECE + 1)}


def register(*secrets: str) -> None:
    """Mask these values (and any 8-character piece of them) from now on."""
    global _ordered
    with _lock:
        for secret in secrets:
            if not secret or not secret.strip():
                continue
            parts = urlsplit(secret) if "://" in secret else None
            if parts is not None and parts.scheme and parts.netloc:
                tail = parts.path + (f"?{parts.query}" if parts.query else "")
                _whole.update(_spellings(secret))
                if len(tail.strip("/")) >= 2:
                    _whole.update(_spellings(tail))
                    _pieces.update(_windows(tail))
            else:
                _whole.update(_spellings(secret))
                _pieces.update(_windows(secret))
        _ordered = tuple(sorted((w for w in _whole if len(w) > 1), key=len, reverse=True))


def register_config(config: object) -> None:
    """Register every ``SecretStr`` value found in a loaded configuration."""
    register(*_secret_values(config, depth=0))


def _secret_values(value: object, depth: int) -> Iterable[str]:
    if depth > 20:
        return
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name, None), depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_values(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_values(item, depth + 1)


def forget_all() -> None:
    """Drop every registered secret (tests; a reload registers the new ones on top)."""
    global _ordered
    with _lock:
        _whole.clear()
        _pieces.clear()
        _ordered = ()


def redact(text: str) -> str:
    """``text`` with every registered secret, and every 8-character piece of one, masked."""
    ordered, pieces = _ordered, _pieces
    if not ordered or not text:
        return text
    for spelling in ordered:
        if spelling in text:
            text = text.replace(spelling, MASK)
    if not pieces or len(text) < PIECE:
        return text
    hit = bytearray(len(text))
    found = False
    for i in range(len(text) - PIECE + 1):
        if text[i : i + PIECE] in pieces:
            hit[i : i + PIECE] = b"\x01" * PIECE
            found = True
    if not found:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if hit[i]:
            while i < len(text) and hit[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _encodable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what there is
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = _encodable(redact(message)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None  # formatted (and redacted) once, above
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            setattr(record, FIELDS_ATTR, {k: redact(str(v)) for k, v in fields.items()})
        return True


_CONTROLS = {c: "\ufffd" for c in [*range(32), *range(127, 160)] if chr(c) not in "\t\n"}


class RedactingStream:
    """A text stream that masks secrets in everything written to it (stdout, stderr)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        encoding = getattr(self._inner, "encoding", None) or "utf-8"
        # No terminal control sequence from stored text (ESC, BEL...): only \t and \n pass.
        safe = redact(text).translate(_CONTROLS)
        # A lone surrogate or a character the terminal cannot show becomes "?", never an error.
        self._inner.write(safe.encode(encoding, "replace").decode(encoding))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
