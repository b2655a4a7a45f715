"""Logging to journald with structured fields, or readable stderr lines (adapter layer).

Owns the process's logging setup (:func:`setup_logging`), the fixed ``MESSAGE_ID`` of every
:class:`~watchdog.core.model.EventType`, and :func:`log_event`, which attaches ``NODE=``,
``CLUSTER=``, ``PROBE=``, ``FAILURE=``, ``CLASS=``, ``ACTION=`` and ``EVENT=`` so that
``journalctl -u cluster-watchdog MESSAGE_ID=… NODE=spark-1`` finds an incident's records.

Why not systemd-python's ``JournalHandler``: it builds only against ``libsystemd-dev`` (a C
toolchain and headers on every watchdog box), and ``journald-send`` ships wheels for Python
>= 3.12 only. journald's native protocol is documented and small: one datagram to
``/run/systemd/journal/socket`` of ``KEY=value\\n`` lines, or ``KEY\\n`` + a 64-bit
little-endian length + value + ``\\n`` for values holding a newline; an entry too big for a
datagram (~212 KB) is passed as a sealed memfd. That is the stdlib code below.

Logging never raises: when the socket is missing, full (non-blocking: a stalled journald must
not stall the event loop) or the entry is refused, that record goes to stderr instead.
Nothing here formats configuration; the handler carries
:class:`~watchdog.edge.redact.RedactingFilter`, so a secret in any record (a third-party
logger's included) is masked before it is written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Mapping
from typing import Final

from watchdog.core.model import EventType, FailureKind, NodeClass, ProbeKind, Severity
from watchdog.edge.redact import RedactingFilter

JOURNAL_SOCKET: Final = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER: Final = "cluster-watchdog"

# Fixed forever: operators and alert rules key on them (`journalctl MESSAGE_ID=…`).
MESSAGE_IDS: dict[EventType, str] = {
    EventType.PROBE_FAILED: "56f90f3db2b249f6ac5212ef70fc372d",
    EventType.CLASS_CHANGED: "6459e1951be74e93b74b7aac6aab95ab",
    EventType.NODE_WEDGED: "bf478cdc12014e95acad63be850997f7",
    EventType.CYCLE_STARTED: "f44536b853a347a0add445208d90915b",
    EventType.CYCLE_STEP: "917b4e59292b4a31bbd0b767283608a0",
    EventType.CYCLE_FINISHED: "ff0ccc7265834f409067087b59c9e827",
    EventType.CYCLE_FAILED: "9fb658df58d843649a25b143a41e2407",
    EventType.RECOVERED: "bbf283e82bd74d7ea4a1ec59696e50c5",
    EventType.GAVE_UP: "a7978fc0d7274ba0b10c71c78ecf3ba7",
    EventType.BLIND: "a723eeef5efb456b9ad02c6b4c0d1df9",
    EventType.DEGRADED: "ae526c7933ea44ada4cf3496c414141a",
    EventType.MISCONFIGURED: "9a9eab0d1c154aaab8f87818c235a51c",
    EventType.PLUG_PROBLEM: "6b67a7f61d2a4af290d6e94db8412f3e",
    EventType.CONFIG_RELOADED: "020c04e83cb04426984fb640171c73e2",
    EventType.CONFIG_REJECTED: "e85860e3b3164834afe9b45f271dfbb0",
    EventType.STARTED: "39f7b8008b2d40d9b800ad1d47cb7ee4",
    EventType.STOPPING: "d06544da657b426f8d902ba0a788f6b5",
    EventType.ALERT_SENT: "4c1f2a9d8e3b47a6b0d5c7e9f1a2b3c4",
    EventType.ALERT_FAILED: "8d2e4f6a1b3c45d7e9f0a1b2c3d4e5f6",
    EventType.OPERATOR: "2b7c9e1f3a5d47b8c0e2f4a6b8d0e1f3",
    EventType.STATE_PROBLEM: "e3a5c7e9b1d34f6a8c0e2a4c6e8a0b2d",
}

_LEVELS: Final = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}
_RECORD_ATTR: Final = "cw_journal_fields"  # LogRecord attribute carrying log_event's fields
# Shown first, in this order, on stderr lines; everything else follows.
_LEAD_FIELDS: Final = ("NODE", "CLUSTER", "PROBE", "FAILURE", "CLASS", "ACTION", "EVENT")
_CORE_FIELDS: Final = frozenset(
    {
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "MESSAGE_ID",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
        "LOGGER",
    }
)
_INVALID_CHARS: Final = re.compile(r"[^A-Z0-9_]")
# Libraries that log every request or job run at INFO would drown the incident records.
_CHATTY_LOGGERS: Final = ("httpx", "httpcore", "kasa", "asyncio")


def field_name(key: str) -> str | None:
    """``key`` as a valid journald field name (uppercase, digits, ``_``; no leading ``_`` or
    digit; at most 64 chars), or None if nothing usable is left."""
    name = _INVALID_CHARS.sub("_", key.upper()).lstrip("_0123456789")
    return name[:64] or None


def log_event(
    logger: logging.Logger,
    event: EventType,
    message: str,
    *,
    severity: Severity = Severity.INFO,
    node: str | None = None,
    cluster: str | None = None,
    probe: ProbeKind | None = None,
    failure: FailureKind | None = None,
    node_class: NodeClass | None = None,
    action: str | None = None,
    **fields: object,
) -> None:
    """Log one event with its fixed MESSAGE_ID and structured fields (None values omitted).

    Extra keyword fields are uppercased into journald names (``state=`` → ``STATE=``); they
    cannot override the core fields (MESSAGE, PRIORITY, MESSAGE_ID, CODE_*…).
    """
    out: dict[str, str] = {}
    for key, value in fields.items():
        name = field_name(key)
        if name is not None and name not in _CORE_FIELDS and value is not None:
            out[name] = str(value)
    named = {
        "NODE": node,
        "CLUSTER": cluster,
        "PROBE": probe,
        "FAILURE": failure,
        "CLASS": node_class,
        "ACTION": action,
    }
    out.update({k: str(v) for k, v in named.items() if v is not None})
    out["EVENT"] = event.value
    out["MESSAGE_ID"] = MESSAGE_IDS[event]
    out["PRIORITY"] = str(severity.syslog_priority)
    # stacklevel=2: CODE_FILE/CODE_LINE name the caller, not this helper.
    logger.log(_LEVELS[severity], message, extra={_RECORD_ATTR: out}, stacklevel=2)


def _priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def _encode(fields: dict[str, str]) -> bytes:
    parts: list[bytes] = []
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key.encode() + b"=" + data + b"\n")
    return b"".join(parts)


class StructuredHandler(logging.Handler):
    """Sends records to journald's native socket, or (``socket_path=None``) writes readable
    stderr lines. A record the journal refuses is written to stderr instead."""

    def __init__(self, socket_path: str | None) -> None:
        super().__init__()
        self.socket_path = socket_path
        self._sock: socket.socket | None = None

    def record_fields(self, record: logging.LogRecord) -> dict[str, str]:
        """Every journald field of ``record``; MESSAGE carries a traceback if there is one."""
        message = record.getMessage()
        if record.exc_text:  # already formatted (and redacted) by RedactingFilter
            message += "\n" + record.exc_text
        elif record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        fields = dict(getattr(record, _RECORD_ATTR, {}))
        fields.setdefault("PRIORITY", str(_priority(record.levelno)))
        fields.update(
            MESSAGE=message,
            SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER,
            CODE_FILE=record.pathname,
            CODE_LINE=str(record.lineno),
            CODE_FUNC=record.funcName,
            LOGGER=record.name,
        )
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = self.record_fields(record)
            if self.socket_path is None or not self._send(_encode(fields)):
                self._write_stderr(record, fields)
        except Exception:  # logging must never take the daemon down
            self.handleError(record)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        super().close()

    def _send(self, data: bytes) -> bool:
        assert self.socket_path is not None
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            try:
                self._sock.sendto(data, self.socket_path)
            except OSError as exc:
                if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):  # too big for a datagram
                    raise
                self._send_memfd(data)
        except OSError:  # ENOENT (no journald), EAGAIN (journald busy), EPERM…
            return False
        return True

    def _send_memfd(self, data: bytes) -> None:
        # journald accepts a sealed memfd carrying the entry, for entries over the datagram size.
        assert self._sock is not None and self.socket_path is not None
        fd = os.memfd_create("cluster-watchdog-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = struct.pack("i", fd)
            self._sock.sendmsg(
                [], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)], 0, self.socket_path
            )
        finally:
            os.close(fd)

    def _write_stderr(self, record: logging.LogRecord, fields: dict[str, str]) -> None:
        sys.stderr.write(self.stderr_line(record, fields, journal=self.socket_path is not None))
        sys.stderr.flush()

    @staticmethod
    def stderr_line(record: logging.LogRecord, fields: dict[str, str], *, journal: bool) -> str:
        """``2026-11-24T05:31:02Z WARNING node=spark-1 probe=ssh failure=no_banner  text``.

        Under journald (``journal=True``) the line starts with ``<N>`` instead of the time, so
        journald's stream parser keeps the priority and adds its own timestamp.
        """
        keys: list[str] = [k for k in _LEAD_FIELDS if k in fields]
        keys += sorted(k for k in fields if k not in _CORE_FIELDS and k not in _LEAD_FIELDS)
        pairs = " ".join(f"{k.lower()}={_quote(fields[k])}" for k in keys)
        head = (
            f"<{fields['PRIORITY']}>"
            if journal
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        )
        text = f"{head} {record.levelname}"
        return (
            f"{text} {pairs}  {fields['MESSAGE']}\n" if pairs else f"{text}  {fields['MESSAGE']}\n"
        )


def _quote(value: str) -> str:
    return f'"{value}"' if (not value or any(c in value for c in ' "=\n')) else value


def journal_stream_is_stderr(env: Mapping[str, str] | None = None) -> bool:
    """True when journald is our stderr: ``JOURNAL_STREAM`` names fd 2's ``st_dev:st_ino``."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(2)
        return (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return False


def setup_logging(
    level: str = "info", *, journal: bool | None = None, socket_path: str | None = None
) -> None:
    """Route the root logger to journald (``journal=True``), to stderr lines (``False``), or
    decide by ``JOURNAL_STREAM`` (``None``). Calling it again replaces the earlier setup."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    use_journal = journal_stream_is_stderr() if journal is None else journal
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, StructuredHandler)]:
        root.removeHandler(old)
        with contextlib.suppress(Exception):
            old.close()
    handler = StructuredHandler((socket_path or JOURNAL_SOCKET) if use_journal else None)
    handler.addFilter(RedactingFilter())  # every record, ours and third-party, is redacted
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.DEBUG if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
        )
