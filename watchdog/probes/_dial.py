"""Name resolution and the non-blocking TCP connect every socket probe builds on (adapter layer).

Owns :func:`resolve` (numeric IPv4 parsed in C, names through ``loop.getaddrinfo``) and
:class:`Dial`: one connect run by callbacks of the probes' :class:`~watchdog.probes._poller.Poller`
rather than ``loop.sock_connect`` and ``loop.sock_recv`` under ``asyncio.timeout`` — one future,
at most one timer and one epoll registration per address tried, which is what a probe sent
every few seconds to a thousand nodes can afford. A :class:`Dial` can also read the peer's
first line within a bound (the sshd banner), or hand the connected socket over (the HTTP
exchange). It classifies nothing: :func:`watchdog.probes.tcp.connect_failure` and the HTTP
edge translate its errors.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
from collections.abc import Callable
from functools import lru_cache

from watchdog.probes._poller import poller

Address = tuple[int, tuple[object, ...]]  # (family, sockaddr)
# Created non-blocking: no setblocking() call, one system call fewer per probe.
_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)


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
        err = sock.connect_ex(addr)
    except OSError as exc:
        return exc
    return None if err in (0, errno.EINPROGRESS) else OSError(err, os.strerror(err))


class Dial:
    """One TCP connect, and optionally the peer's first line, run by event-loop callbacks.

    Tries each address in turn until one connects, or until ``deadline`` (a ``loop.time()``;
    ``None``: the caller bounds the wait itself, e.g. with ``asyncio.timeout``). If every
    address fails, a refusal is the error kept: it proves a host answered.

    - ``line_limit`` 0: waits for the handshake (the socket turns writable);
    - ``line_limit`` > 0: reads until a LF, the end of the stream or ``line_limit`` bytes,
      watching readability only: a failed handshake makes the socket readable too and
      ``recv`` raises its error (a refusal can only come from the handshake, a reset only
      after it), so one registration serves both steps.

    Once :attr:`done` is set the socket is closed (never left in a wedged peer's backlog) —
    unless ``keep`` and it connected: then :attr:`sock` is the caller's to use and close. The
    outcome is in ``connected``, ``timed_out``, ``error`` (why the connect failed, or an error
    other than a reset after it) and ``buf`` (what was read).

    ``then``, with ``line_limit`` 0, continues in the same callback once connected (no loop
    iteration, no task wake-up between connect and what follows): it takes :attr:`sock` and
    must settle :attr:`done` itself; the deadline timer, if any, keeps running for it.
    """

    __slots__ = (
        "_addr",
        "_addrs",
        "_errors",
        "_fd",
        "_keep",
        "_limit",
        "_loop",
        "_poller",
        "_then",
        "_timer",
        "buf",
        "connected",
        "done",
        "error",
        "sock",
        "timed_out",
    )

    def __init__(
        self,
        addrs: list[Address],
        deadline: float | None,
        *,
        line_limit: int = 0,
        keep: bool = False,
        then: Callable[[Dial], None] | None = None,
    ) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._poller = poller()
        self._addrs = addrs[::-1]  # popped from the end
        self._errors: list[OSError] = []
        self._limit = line_limit
        self._keep = keep
        self._then = then
        self._addr: tuple[object, ...] = ()
        self._fd = -1  # registered with the poller while >= 0
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.connected = False
        self.timed_out = False
        self.error: OSError | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self._timer = None if deadline is None else loop.call_at(deadline, self._expire)
        self._next()

    def close(self) -> None:
        """Stop watching and close the socket (idempotent); for a caller that gives up."""
        if self._timer is not None:
            self._timer.cancel()
        self._unwatch()
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _next(self) -> None:
        while self._addrs:
            family, addr = self._addrs.pop()
            try:
                sock = socket.socket(family, _STREAM)
            except OSError as exc:  # out of fds, a family the host lacks: local, final
                self._end(exc)
                return
            failed = _start_connect(sock, addr)
            if failed is not None:  # refused or unreachable at once, or a local fault
                sock.close()
                self._errors.append(failed)
                continue
            self.sock, self._addr, self._fd = sock, addr, sock.fileno()
            if self._limit:
                self._poller.watch(self._fd, select.EPOLLIN, self._readable)
            else:
                self._poller.watch(self._fd, select.EPOLLOUT, self._writable)
            return
        refused = [e for e in self._errors if isinstance(e, ConnectionRefusedError)]
        self._end((refused or self._errors or [OSError(errno.EADDRNOTAVAIL, "no address")])[0])

    def _failed(self, err: int) -> None:
        """The handshake on this address failed: say so as asyncio does, try the next one."""
        self._unwatch()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._errors.append(OSError(err, f"Connect call failed {self._addr}"))
        self._next()

    def _writable(self, _events: int = 0) -> None:
        if self.sock is None or self._fd < 0:  # finished earlier in this batch of events
            return
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (errno.EINPROGRESS, errno.EINTR):
            return
        if err:
            self._failed(err)
            return
        self.connected = True
        if self._then is None:
            self._end(None)
            return
        self._fd = -1  # the socket and its registration are the continuation's now, and ``done``
        self._then(self)

    def _readable(self, _events: int = 0) -> None:
        if self.sock is None:  # finished earlier in this batch of events
            return
        try:
            chunk = self.sock.recv(self._limit - len(self.buf))
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
        if self._limit and self.sock is not None and not self.connected:
            try:  # readability was watched: has the handshake completed meanwhile?
                self.sock.getpeername()
                self.connected = True
            except OSError:
                pass
        self._end(None)

    def _end(self, error: OSError | None) -> None:
        self.error = error
        if self._keep and self.connected and error is None:
            if self._timer is not None:
                self._timer.cancel()
            self._unwatch()
        else:
            self.close()
        if not self.done.done():
            self.done.set_result(None)

    def _unwatch(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            self._poller.forget(fd)


@lru_cache(maxsize=4096)
def _numeric(host: str, port: int) -> tuple[Address, ...]:
    """The address of a dotted-quad IPv4 host, () for a name; checked once per host and port."""
    _check(host, port)
    return ((socket.AF_INET, (host, port)),) if _ipv4(host) else ()


async def addresses(host: str, port: int, deadline: float | None) -> list[Address]:
    """(family, sockaddr) for each TCP address of ``host:port``; resolving counts against
    ``deadline`` (:class:`TimeoutError`). Raises :class:`socket.gaierror` for a name that does not
    resolve, :class:`ValueError` for a malformed host or port."""
    if numeric := _numeric(host, port):  # the common case: no getaddrinfo, no enum conversions
        return list(numeric)
    async with asyncio.timeout_at(deadline):
        return [(family, addr) for family, _t, _p, addr in await resolve(host, port)]


async def dial(host: str, port: int, deadline: float | None, *, line_limit: int = 0) -> Dial:
    """A finished :class:`Dial` to ``host:port``; name resolution counts against ``deadline``.

    Raises what :func:`addresses` raises.
    """
    attempt = Dial(await addresses(host, port, deadline), deadline, line_limit=line_limit)
    try:
        await attempt.done
    except BaseException:  # cancelled by the caller: never leak the fd
        attempt.close()
        raise
    return attempt
