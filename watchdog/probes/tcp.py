"""TCP connect probe (the *witness*), and the connect-error translation the ssh probe shares.

A witness proves the watchdog's own network works — e.g. the gateway's port 53 or 80 — so that a
silent node is judged *wedged* rather than the watchdog *blind*. This module owns the
translation of socket errors into :class:`FailureKind` values; resolving and the non-blocking
connect are :mod:`watchdog.probes._dial`. It never retries and never picks its own deadline.
"""

from __future__ import annotations

import asyncio
import socket

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._dial import dial
from watchdog.probes._faults import UNREACHABLE_ERRNOS


class ConnectTimeoutError(TimeoutError):
    """The TCP handshake did not complete before the caller's deadline."""


def connect_failure(exc: BaseException) -> tuple[FailureKind, str]:
    """Translate an exception raised while resolving/connecting into (kind, detail).

    Target faults become REFUSED / CONNECT_TIMEOUT / UNREACHABLE; anything that says the
    watchdog host itself could not run the probe (bad host string, out of fds, local firewall
    EPERM) is PROBE_ERROR.
    """
    if isinstance(exc, socket.gaierror):
        return FailureKind.UNREACHABLE, f"name does not resolve: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return FailureKind.REFUSED, "connection refused"
    if isinstance(exc, TimeoutError):
        # A deadline is a TimeoutError; the kernel's own SYN give-up is ETIMEDOUT.
        return FailureKind.CONNECT_TIMEOUT, "TCP handshake did not complete in time"
    if isinstance(exc, OSError) and exc.errno in UNREACHABLE_ERRNOS:
        return FailureKind.UNREACHABLE, exc.strerror or "unreachable"
    if isinstance(exc, OSError):
        return FailureKind.PROBE_ERROR, f"local socket error: {exc.strerror or exc}"
    # ValueError / UnicodeError (malformed host), OverflowError (port out of range)
    return FailureKind.PROBE_ERROR, f"cannot probe this address: {type(exc).__name__}: {exc}"


async def probe_tcp(
    host: str,
    port: int,
    *,
    timeout: float,  # noqa: ASYNC109 -- the scheduler owns every probe's deadline
    target: str,
    probe: ProbeKind = ProbeKind.WITNESS,
) -> ProbeResult:
    """Connect to ``host:port`` within ``timeout``; pass when the path to the host works."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    error: BaseException | None
    try:
        attempt = await dial(host, port, start + timeout)
    except (OSError, ValueError, UnicodeError, OverflowError) as exc:
        error = exc
    else:
        error = attempt.error or (None if attempt.connected else TimeoutError())
    if error is None:
        latency = loop.time() - start
        return ProbeResult(
            probe, target, None, latency, detail="connected", data={"answer": "connected"}
        )
    kind, detail = connect_failure(error)
    if kind is not FailureKind.REFUSED:
        return ProbeResult(
            probe, target, kind, loop.time() - start, detail=detail, hint=hint_for(kind)
        )
    # A RST is an answer: the host and every hop to it are up, only the port is closed.
    # For a witness that is all we need to know (our own network works), so a refusal
    # passes; only silence (timeout) or no route means the watchdog may be blind.
    return ProbeResult(
        probe,
        target,
        None,
        loop.time() - start,
        detail="refused (host answers)",
        data={"answer": "refused"},
    )
