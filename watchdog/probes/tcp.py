"""TCP connect probe (the *witness*), and the TCP connect the ssh probe builds on.

A witness proves the watchdog's own network works — e.g. the gateway's port 53 or 80 — so that a
silent node is judged *wedged* rather than the watchdog *blind*. This module owns
name resolution, the non-blocking connect (:class:`Dial`, which can also read a peer's first
line within a bound), and the translation of socket errors into :class:`FailureKind` values;
it never retries and never picks its own deadline.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._faults import UNREACHABLE_ERRNOS

Address = tuple[int, tuple[object, ...]]  # (family, sockaddr)


class ConnectTimeoutError(TimeoutError):
    """The TCP handshake did not complete before the caller's deadline."""


def _check(host: str, port: int) -> None:
    """ValueError for a malformed host or port (a local fault: it is never sent to DNS)."""
    # isprintable() is false for every whitespace character but the ASCII space.
    if not host or len(host) > 253 or not host.isprintable() or " " in host:
        raise ValueError(f"malformed host {host!r}")
    if not 0 <= port <= 65535:  # getaddrinfo would silently wrap it modulo 65536
        raise ValueError(f"port {port} out of range")


def _ipv4(host: str) -> bool:
    """``host`` is a dotted-quad IPv4 literal (parsed in C, no resolver involved)."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


async def resolve(host: str, port: int) -> list[tuple[int, int, int, tuple[object, ...]]]:
    """Addresses for ``host:port`` as (family, type, proto, sockaddr).

    Numeric addresses are parsed synchronously (no thread, no network); names go through
    ``loop.getaddrinfo``. Raises :class:`socket.gaierror` for names that do not resolve and
    :class:`ValueError` for a malformed host or port (a local fault: it is never sent to DNS).
    """
    _check(host, port)
    if _ipv4(host):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(fam, typ, proto, tuple(addr)) for fam, typ, proto, _, addr in infos]


def _start_connect(sock: socket.socket, addr: tuple[object, ...]) -> OSError | None:
    """Start a non-blocking connect; the error if it failed at once."""
    try:
        sock.setblocking(False)
        err = sock.connect_ex(addr)
    except OSError as exc:
        return exc
    return None if err in (0, errno.EINPROGRESS) else OSError(err, os.strerror(err))


class Dial:
    """One TCP connect, and optionally the peer's first line, run by event-loop callbacks.

    Cheaper than ``loop.sock_connect`` + ``loop.sock_recv`` under ``asyncio.timeout``: one
    future, one timer and one selector registration per address tried. Tries each address in
    turn until one connects or the deadline (a ``loop.time()``); if several fail, a refusal is
    the error kept, since it proves a host answered.

    With ``line_limit`` 0 it waits for the handshake (the socket turns writable). Otherwise it
    reads until a LF, the end of the stream or ``line_limit`` bytes, watching readability only:
    a failed handshake makes the socket readable too and ``recv`` raises its error — a refusal
    can only come from the handshake, a reset only after it.

    After :meth:`wait` the socket is closed (never left to a wedged peer's backlog) and the
    outcome is in ``connected``, ``timed_out``, ``error`` (why the connect failed, or an error
    other than a reset after it) and ``buf`` (what was read).
    """

    __slots__ = (
        "_addr",
        "_addrs",
        "_errors",
        "_limit",
        "_loop",
        "_sock",
        "_timer",
        "buf",
        "connected",
        "done",
        "error",
        "timed_out",
    )

    def __init__(self, addrs: list[Address], deadline: float, *, line_limit: int = 0) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._addrs = addrs[::-1]  # popped from the end
        self._errors: list[OSError] = []
        self._limit = line_limit
        self._sock: socket.socket | None = None
        self._addr: tuple[object, ...] = ()
        self.buf = bytearray()
        self.connected = False
        self.timed_out = False
        self.error: OSError | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self._timer = loop.call_at(deadline, self._expire)
        self._next()

    async def wait(self) -> None:
        """Until connected (or the first line read), failed, or the deadline passed."""
        try:
            await self.done
        finally:  # also when the caller is cancelled: never leak the fd
            self._close()

    def _next(self) -> None:
        while self._addrs:
            family, addr = self._addrs.pop()
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # out of fds, a family the host lacks: local, final
                self._end(exc)
                return
            failed = _start_connect(sock, addr)
            if failed is not None:  # refused or unreachable at once, or a local fault
                sock.close()
                self._errors.append(failed)
                continue
            self._sock, self._addr = sock, addr
            if self._limit:
                self._loop.add_reader(sock.fileno(), self._readable)
            else:
                self._loop.add_writer(sock.fileno(), self._writable)
            return
        refused = [e for e in self._errors if isinstance(e, ConnectionRefusedError)]
        self._end((refused or self._errors or [OSError(errno.EADDRNOTAVAIL, "no address")])[0])

    def _failed(self, err: int) -> None:
        """The handshake on the current address failed: say so as asyncio does, try the next."""
        self._close_socket()
        self._errors.append(OSError(err, f"Connect call failed {self._addr}"))
        self._next()

    def _writable(self) -> None:
        assert self._sock is not None
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (errno.EINPROGRESS, errno.EINTR):
            return
        if err:
            self._failed(err)
            return
        self.connected = True
        self._end(None)

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            chunk = self._sock.recv(self._limit - len(self.buf))
        except (BlockingIOError, InterruptedError):
            return
        except (ConnectionResetError, BrokenPipeError):  # after the handshake: closed
            self.connected = True
            self._end(None)
            return
        except OSError as exc:
            if self.buf:  # after a part of the line: the connection broke
                self._end(exc)
            else:
                self._failed(exc.errno or errno.EIO)
            return
        self.connected = True
        if chunk:
            self.buf += chunk
            if b"\n" not in chunk and len(self.buf) < self._limit:
                return
        self._end(None)

    def _expire(self) -> None:
        self.timed_out = True
        if self._limit and self._sock is not None and not self.connected:
            try:  # readability was watched: has the handshake completed meanwhile?
                self._sock.getpeername()
                self.connected = True
            except OSError:
                pass
        self._end(None)

    def _end(self, error: OSError | None) -> None:
        self.error = error
        self._close()
        if not self.done.done():
            self.done.set_result(None)

    def _close(self) -> None:
        self._timer.cancel()
        self._close_socket()

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._limit:
                self._loop.remove_reader(sock.fileno())
            else:
                self._loop.remove_writer(sock.fileno())
            sock.close()


async def dial(host: str, port: int, deadline: float, *, line_limit: int = 0) -> Dial:
    """A finished :class:`Dial` to ``host:port``; resolution counts against ``deadline``.

    Raises what resolving raises (:class:`socket.gaierror`, :class:`ValueError` for a malformed
    host or port) and :class:`TimeoutError` when the deadline falls inside name resolution.
    """
    _check(host, port)
    if _ipv4(host):  # the common case: no getaddrinfo, its tuples and enum conversions
        addrs: list[Address] = [(socket.AF_INET, (host, port))]
    else:
        async with asyncio.timeout_at(deadline):
            addrs = [(family, addr) for family, _t, _p, addr in await resolve(host, port)]
    attempt = Dial(addrs, deadline, line_limit=line_limit)
    await attempt.wait()
    return attempt


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
