"""How the bytes of one HTTP exchange move (adapter helper of :mod:`watchdog.probes.wire`).

Owns the two ways an exchange runs once TCP is up: :class:`PlainExchange`, on the socket itself
in callbacks of the probes' :class:`~watchdog.probes._poller.Poller` (sends the request, feeds
what arrives to the :class:`~watchdog.probes.wire_answer.Answer`, no loop iteration or task
wake-up between connect and send); and :func:`handshake` + :class:`TlsReading`, asyncio's SSL
transport with a small protocol feeding the same parser. Each settles one future with the
answer's verdict; :mod:`watchdog.probes.wire` translates what it raises.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Callable

from watchdog.core.model import FailureKind
from watchdog.probes._dial import Dial
from watchdog.probes._faults import Fault, one_line
from watchdog.probes._poller import poller
from watchdog.probes.wire_answer import Answer

TLS_HINT = "TLS failed: check the certificate, or use http:// for vLLM's plain port"


class PlainExchange:
    """The exchange on a plain connection from the handshake on, in poller callbacks.

    :meth:`start` is the :class:`Dial`'s continuation: it sends the request at once (a request
    this small fits the socket buffer; the rest, if not, is sent when writable) and feeds what
    arrives to the :class:`Answer`, then settles the dial's ``done``.
    """

    __slots__ = ("_answer", "_done", "_fd", "_on_connected", "_pending", "_poller", "_sock")

    def __init__(self, request: bytes, answer: Answer, on_connected: Callable[[], None]) -> None:
        self._poller = poller()
        self._pending = memoryview(request)
        self._answer = answer
        self._on_connected = on_connected
        self._sock: socket.socket | None = None
        self._done: asyncio.Future[None] | None = None
        self._fd = -1

    def start(self, dial: Dial) -> None:
        self._done = dial.done
        sock, dial.sock = dial.sock, None
        assert sock is not None
        self._sock, self._fd = sock, sock.fileno()  # still registered, for writability
        self._on_connected()
        self._send()
        if self._sock is not None:
            events = select.EPOLLIN | (select.EPOLLOUT if self._pending else 0)
            self._poller.change(self._fd, events, self._ready)

    def _ready(self, events: int) -> None:
        if self._sock is None:  # finished earlier in this batch of events
            return
        if events & select.EPOLLOUT and self._pending:
            self._send()
            if not self._pending and self._sock is not None:
                self._poller.change(self._fd, select.EPOLLIN, self._ready)
        if self._sock is not None and events & ~select.EPOLLOUT:
            self._receive()

    def _send(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        self._pending = self._pending[sent:]

    def _receive(self) -> None:
        assert self._sock is not None
        try:
            # The loop's shared read buffer: the Answer copies what it keeps, so no buffer is
            # allocated per read (asyncio's transports allocate 256 KiB per read).
            size = self._sock.recv_into(self._poller.buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        try:
            complete = (
                self._answer.feed(self._poller.buffer[:size]) if size else self._answer.feed_eof()
            )
        except Exception as exc:  # Protocol, BodyRefused: the answer's verdict
            self._finish(exc)
            return
        if complete:
            self._finish(None)

    def _finish(self, exc: Exception | None) -> None:
        self.stop()
        done = self._done
        if done is not None and not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

    def stop(self) -> None:
        """Stop watching and close the socket (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._poller.forget(self._fd)
            sock.close()


async def handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, answer: Answer, what: str
) -> tuple[asyncio.Transport, TlsReading]:
    """asyncio's SSL transport over ``sock``, handshake done, feeding ``answer``."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_connection(
            lambda: TlsReading(loop, answer), sock=sock, ssl=context, server_hostname=host
        )
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raise Fault(
            FailureKind.BAD_RESPONSE,
            f"TLS handshake failed ({what}): {one_line(str(exc))}",
            TLS_HINT,
        ) from None
    except OSError as exc:
        raise Fault(
            FailureKind.BAD_RESPONSE,
            f"TLS handshake failed ({what}): {one_line(os_text(exc))}",
            TLS_HINT,
        ) from None


class TlsReading(asyncio.Protocol):
    """Feeds what the SSL transport decrypts to an :class:`Answer` until it is complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, answer: Answer) -> None:
        self._answer = answer
        self.done: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> None:
        self._feed(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._finish(exc)
        else:
            self._feed(b"")

    def _feed(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            complete = self._answer.feed(data) if data else self._answer.feed_eof()
        except Exception as exc:  # Protocol, BodyRefused: the answer's verdict
            self._finish(exc)
            return
        if complete:
            self._finish(None)

    def _finish(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


def os_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
