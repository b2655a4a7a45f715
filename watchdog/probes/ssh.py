"""sshd banner probe: the evidence that tells a *wedged* node from a slow one.

A node that ran out of memory often still answers ICMP, and its kernel still completes TCP
handshakes from the listen backlog, but sshd never gets to write its version line. So this probe
connects and reads the first line (at most :data:`MAX_BANNER` bytes) within ONE deadline that
covers resolve + connect + read, and sorts the outcome:

- ok — a complete first line (ended by LF) that starts with ``SSH-2.0-`` (or ``SSH-1.99-``, a
  server that speaks both);
- NO_BANNER — TCP accepted, but no complete line arrived: nothing was said before the
  deadline, the peer closed without a word, or the banner trickled in too slowly or stalled
  part-way (``SSH-`` and then nothing) — the wedge signature, an sshd starved of memory;
- BAD_BANNER — a complete first line (or :data:`MAX_BANNER` bytes without one) that is not an
  SSH banner: something else answers on the port (wrong port, another service);
- REFUSED / CONNECT_TIMEOUT / UNREACHABLE — see :func:`watchdog.probes.tcp.connect_failure`.

It never speaks SSH beyond reading the banner and always closes the socket.
"""

from __future__ import annotations

import asyncio

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._dial import dial
from watchdog.probes.tcp import connect_failure

# RFC 4253 §4.2 caps the identification line at 255 bytes including CR LF.
MAX_BANNER = 256
SSH_PREFIXES = (b"SSH-2.0-", b"SSH-1.99-")


def _printable(raw: bytes, limit: int = 80) -> str:
    """One log-safe line: strip the line end, escape control bytes, cap the length."""
    text = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii", errors="backslashreplace")
    if not text.isprintable():  # checked in C first: a real banner is printable
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _judge(buf: bytes, *, timed_out: bool) -> tuple[FailureKind | None, str]:
    complete = b"\n" in buf or len(buf) >= MAX_BANNER
    if complete and buf.startswith(SSH_PREFIXES):
        return None, _printable(buf, MAX_BANNER)
    if complete:
        return FailureKind.BAD_BANNER, f"not an SSH banner: {_printable(buf)!r}"
    if not buf:
        why = "nothing said before the deadline" if timed_out else "peer closed without a line"
        return FailureKind.NO_BANNER, f"TCP accepted, {why}"
    why = "by the deadline" if timed_out else "before the peer closed"
    return FailureKind.NO_BANNER, (
        f"TCP accepted, banner incomplete {why}: {len(buf)} bytes ({_printable(buf)!r})"
    )


async def probe_ssh(
    host: str,
    port: int,
    *,
    timeout: float,  # noqa: ASYNC109 -- the scheduler owns every probe's deadline
    target: str,
) -> ProbeResult:
    """Read sshd's banner from ``host:port`` within ``timeout`` seconds (connect included)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        attempt = await dial(host, port, start + timeout, line_limit=MAX_BANNER)
    except (OSError, ValueError, UnicodeError, OverflowError) as exc:  # resolving failed
        kind, detail = connect_failure(exc)
        return _result(target, kind, loop.time() - start, detail)
    if not attempt.connected:  # refused, unreachable, or the deadline fell inside connect
        kind, detail = connect_failure(attempt.error or TimeoutError())
        return _result(target, kind, loop.time() - start, detail)
    if attempt.error is not None:
        kind, detail = connect_failure(attempt.error)
        if kind is FailureKind.UNREACHABLE:
            return _result(target, kind, loop.time() - start, detail)
        # Any other error after the handshake: the peer went away without a line.
    verdict, what = _judge(bytes(attempt.buf), timed_out=attempt.timed_out)
    latency = loop.time() - start
    if verdict is None:
        return ProbeResult(ProbeKind.SSH, target, None, latency, detail=what, data={"banner": what})
    return _result(target, verdict, latency, what)


_SSH_REFUSED_HINT = (
    "nothing listens on the sshd port: sshd stopped or crashed, a broken sshd_config, a "
    "firewall, or the node is still booting"
)


def _result(target: str, kind: FailureKind, latency: float, detail: str) -> ProbeResult:
    hint = _SSH_REFUSED_HINT if kind is FailureKind.REFUSED else hint_for(kind)
    return ProbeResult(ProbeKind.SSH, target, kind, latency, detail=detail, hint=hint)
