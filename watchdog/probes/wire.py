"""One HTTP/1.1 exchange per connection, for the endpoint probes (adapter layer).

The probes send one request per fresh TCP connection (a pooled connection would hide a
refused connect during a model load) and read a bounded answer; that is all they need of
HTTP, so they do it themselves rather than through a general client, and as cheaply as a probe
sent every few seconds to a thousand nodes must be. Owns:

* the exchange: connect (TCP through :class:`~watchdog.probes._dial.Dial`, then TLS for
  ``https``), send the request with ``Connection: close`` and ``Accept-Encoding: identity``,
  and feed what arrives to :class:`~watchdog.probes.wire_answer.Answer` (headers at most
  :data:`HEAD_BYTES`, a body never over the cap and never decompressed). A plain connection
  is read by one selector callback on the socket itself; TLS goes through asyncio's SSL
  transport and a small protocol. No stream objects, no coroutine per header line;
* :meth:`WireClient.send` of a :class:`~watchdog.probes.wire_request.Prepared` request (its
  address and head built once), and :meth:`WireClient.memo`, where a caller keeps what it
  built per endpoint, so a request repeated every few seconds splits no URL and writes no head;
* the translation of every OS, TLS and framing error into a :class:`Fault` at this edge
  (refused, unreachable, a failed TLS handshake, an invalid or cut answer). Messages never
  quote a request header (the API key).

The caller's deadline covers the whole exchange (one timer, no ``asyncio.timeout``);
``on_connected`` tells it when the TCP handshake is behind, so a deadline can say "connect
timed out" or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from watchdog.core.model import FailureKind
from watchdog.probes._dial import Address, Dial, addresses
from watchdog.probes._faults import UNREACHABLE_ERRNOS, Fault, one_line
from watchdog.probes.wire_answer import HEAD_BYTES, Answer, Protocol
from watchdog.probes.wire_io import PlainExchange, handshake, os_text
from watchdog.probes.wire_request import Prepared, encode_json

__all__ = ["HEAD_BYTES", "Prepared", "WireClient", "encode_json"]


def _nothing() -> None:
    pass


_Owner = TypeVar("_Owner")
_Built = TypeVar("_Built")


class WireClient:
    """Sends each request on a connection of its own; holds only the TLS context.

    Without ``tls`` the context is built at the first ``https`` request, trusting ``cafile``
    (default: the system's store): loading a CA bundle costs a few MiB that a cluster
    probed over plain HTTP never needs.
    """

    def __init__(self, tls: ssl.SSLContext | None = None, *, cafile: str | None = None) -> None:
        self._tls = tls
        self._cafile = cafile
        # What callers built once per owner (an endpoint's prepared requests), by identity;
        # an entry goes with its owner (a reloaded config's endpoints are new objects).
        self._memo: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def memo(self, owner: _Owner, build: Callable[[_Owner], _Built]) -> _Built:
        """``build(owner)``, called once per live ``owner`` object and kept while it lives.

        Keyed by identity, not by value: hashing a config model at every request would cost
        what the memo saves. ``build`` must not keep ``owner`` itself, or it never goes.
        """
        key = id(owner)
        found = self._memo.get(key)
        if found is not None and found[0]() is owner:
            return cast("_Built", found[1])
        built = build(owner)
        memo = self._memo
        # An owner without weak references is not kept: built again at each call.
        with contextlib.suppress(TypeError):
            memo[key] = (weakref.ref(owner, lambda _ref: memo.pop(key, None)), built)
        return built

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self._cafile)
        return self._tls

    async def __aenter__(self) -> WireClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to close: no connection outlives its exchange."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json_body: Any = None,
        limit: int,
        on_connected: Callable[[], None] = _nothing,
        on_headers: Callable[[], None] = _nothing,
        deadline: float | None = None,
    ) -> tuple[int, bytes]:
        """The status and at most ``limit`` raw body bytes, or :class:`Fault` /
        :class:`BodyRefused`, or :class:`TimeoutError` once ``deadline`` (a ``loop.time()``;
        None: the caller bounds the wait) has passed. ``url`` is absolute; ``what`` in messages
        is method and path. A caller that repeats a request keeps it :class:`Prepared` and
        calls :meth:`send`."""
        content = b"" if json_body is None else encode_json(json_body)
        ready = Prepared(method, url, headers, body=json_body is not None)
        return await self.send(
            ready,
            content,
            limit=limit,
            on_connected=on_connected,
            on_headers=on_headers,
            deadline=deadline,
        )

    async def send(
        self,
        ready: Prepared,
        content: bytes = b"",
        *,
        limit: int,
        on_connected: Callable[[], None] = _nothing,
        on_headers: Callable[[], None] = _nothing,
        deadline: float | None = None,
    ) -> tuple[int, bytes]:
        """:meth:`request` for a :class:`Prepared` request and its encoded body."""
        what = ready.what
        if ready.sized:
            data = ready.head + b"Content-Length: %d\r\n\r\n" % len(content) + content
        else:
            data = ready.head
        answer = Answer(ready.method, limit, on_headers)
        if ready.tls:
            async with asyncio.timeout_at(deadline):
                return await self._over_tls(ready, data, answer, what, on_connected)
        addrs = list(ready.addrs) if ready.addrs else await _addresses(ready, what, deadline)
        plain = PlainExchange(data, answer, on_connected)
        attempt = Dial(addrs, deadline, then=plain.start)
        try:
            await attempt.done
        except (Protocol, ssl.SSLError, OSError) as exc:
            raise _answer_fault(exc, what) from None
        finally:
            attempt.close()
            plain.stop()  # Connection: close; never wait for a peer's goodbye
        if attempt.timed_out:
            raise TimeoutError
        if not attempt.connected:
            raise _connect_fault(attempt.error or OSError("no connection"), what)
        assert answer.result is not None
        return answer.result

    async def _over_tls(
        self,
        target: Prepared,
        request: bytes,
        answer: Answer,
        what: str,
        on_connected: Callable[[], None],
    ) -> tuple[int, bytes]:
        """TCP, the TLS handshake, then the exchange through asyncio's SSL transport."""
        attempt = Dial(await _addresses(target, what, None), None, keep=True)
        try:
            await attempt.done
        except BaseException:
            attempt.close()
            raise
        sock = attempt.sock
        if sock is None or attempt.error is not None:
            raise _connect_fault(attempt.error or OSError("no connection"), what)
        try:
            on_connected()
            transport, reading = await handshake(sock, self._context(), target.host, answer, what)
        except BaseException:
            sock.close()
            raise
        try:
            transport.write(request)
            await reading.done
        except (Protocol, ssl.SSLError, OSError) as exc:
            raise _answer_fault(exc, what) from None
        finally:
            transport.abort()  # Connection: close; never wait for a peer's goodbye
        assert answer.result is not None
        return answer.result


def _answer_fault(exc: Exception, what: str) -> Fault:
    """An invalid answer, or a connection that broke after the handshake."""
    if isinstance(exc, Protocol):
        return Fault(FailureKind.BAD_RESPONSE, f"not a valid HTTP answer ({what}): {exc}")
    return Fault(
        FailureKind.BAD_RESPONSE,
        f"connection dropped mid-answer ({what}): {one_line(os_text(exc))}",
    )


async def _addresses(target: Prepared, what: str, deadline: float | None) -> list[Address]:
    try:
        return await addresses(target.host, target.port, deadline)
    except socket.gaierror as exc:
        raise Fault(
            FailureKind.UNREACHABLE, f"name resolution failed ({what}): {one_line(str(exc))}"
        ) from None
    except TimeoutError:
        raise
    except OSError as exc:
        raise _connect_fault(exc, what) from None


def _connect_fault(exc: OSError, what: str) -> Fault:
    if isinstance(exc, ConnectionRefusedError):
        return Fault(FailureKind.REFUSED, f"connection refused ({what})")
    if exc.errno in UNREACHABLE_ERRNOS:
        return Fault(FailureKind.UNREACHABLE, f"{exc.strerror} ({what})")
    return Fault(FailureKind.UNREACHABLE, f"cannot connect ({what}): {one_line(os_text(exc))}")
