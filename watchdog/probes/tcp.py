"""TCP connect probe (the *witness*), and the TCP connect helper the ssh probe builds on.

A witness proves the watchdog's own network works — e.g. the gateway's port 53 or 80 — so that a
silent node is judged *wedged* rather than the watchdog *blind*. This module owns
name resolution, the non-blocking connect, and the translation of socket errors into
:class:`FailureKind` values; it never retries and never picks its own deadline.
"""

from __future__ import annotations

import asyncio
import errno
import socket

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._faults import UNREACHABLE_ERRNOS


class ConnectTimeoutError(TimeoutError):
    """The TCP handshake did not complete before the caller's deadline."""


async def resolve(host: str, port: int) -> list[tuple[int, int, int, tuple[object, ...]]]:
    """Addresses for ``host:port`` as (family, type, proto, sockaddr).

    Numeric addresses are parsed synchronously (no thread, no network); names go through
    ``loop.getaddrinfo``. Raises :class:`socket.gaierror` for names that do not resolve and
    :class:`ValueError` for a malformed host or port (a local fault: it is never sent to DNS).
    """
    if not host or len(host) > 253 or any(c.isspace() or not c.isprintable() for c in host):
        raise ValueError(f"malformed host {host!r}")
    if not 0 <= port <= 65535:  # getaddrinfo would silently wrap it modulo 65536
        raise ValueError(f"port {port} out of range")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(fam, typ, proto, tuple(addr)) for fam, typ, proto, _, addr in infos]


async def connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket; the caller bounds it with its own timeout.

    Tries each resolved address in order. asyncio's ``open_connection`` is not used because on
    Python 3.11 it folds several failures into one errno-less ``OSError`` ("Multiple
    exceptions"), which would hide a refusal. If any address refused, the refusal is raised:
    it proves a host answered. The caller owns (and must close) the returned socket.
    """
    loop = asyncio.get_running_loop()
    errors: list[OSError] = []
    for family, type_, proto, addr in await resolve(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:  # cancelled or timed out by the caller: never leak the fd
            sock.close()
            raise
        return sock
    refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
    raise (refused or errors or [OSError(errno.EADDRNOTAVAIL, "no address")])[0]


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
        # asyncio.timeout raises TimeoutError; the kernel's own SYN give-up is ETIMEDOUT.
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
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            sock = await connect(host, port)
    except (OSError, ValueError, UnicodeError, OverflowError) as exc:
        kind, detail = connect_failure(exc)
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
    finally:
        if sock is not None:
            sock.close()
    return ProbeResult(
        probe, target, None, loop.time() - start, detail="connected", data={"answer": "connected"}
    )
