"""One HTTP/1.1 exchange per connection, for the endpoint probes (adapter layer).

The probes send one request per fresh TCP connection (a pooled connection would hide a
refused connect during a model load) and read a bounded answer; that is all they need of
HTTP, so they do it on asyncio streams rather than through a general client. Owns:

* the exchange: connect (TCP, then TLS for ``https``), send the request with
  ``Connection: close`` and ``Accept-Encoding: identity``, and read the bounded answer
  (:mod:`watchdog.probes.wire_answer`: headers at most :data:`HEAD_BYTES`, a body never over
  the cap and never decompressed);
* the translation of every OS, TLS and framing error into a :class:`Fault` at this edge
  (refused, unreachable, a failed TLS handshake, an invalid or cut answer). Messages never
  quote a request header (the API key).

The caller's deadline (``asyncio.timeout``) covers the whole exchange; ``on_connected`` tells
it when the TCP handshake is behind, so a deadline can say "connect timed out" or not.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from watchdog.core.model import FailureKind
from watchdog.edge.bounded import IDENTITY
from watchdog.probes._faults import UNREACHABLE_ERRNOS, Fault, one_line
from watchdog.probes.wire_answer import HEAD_BYTES, Protocol, read_answer

_PATH_SAFE = "/:@!$&'()*+,;=-._~%?"
_TLS_HINT = "TLS failed: check the certificate, or use http:// for vLLM's plain port"


def _nothing() -> None:
    pass


class WireClient:
    """Sends each request on a connection of its own; holds only the TLS context.

    Without ``tls`` the context is built at the first ``https`` request, trusting ``cafile``
    (default: the system's store): loading a CA bundle costs a few MiB that a cluster
    probed over plain HTTP never needs.
    """

    def __init__(self, tls: ssl.SSLContext | None = None, *, cafile: str | None = None) -> None:
        self._tls = tls
        self._cafile = cafile

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
    ) -> tuple[int, bytes]:
        """The status and at most ``limit`` raw body bytes, or :class:`Fault` /
        :class:`BodyRefused`. ``url`` is absolute; ``what`` in messages is method and path."""
        parts = urlsplit(url)
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE)
        what = f"{method} {parts.path or '/'}"
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        content = b""
        if json_body is not None:
            content = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        head = _request_head(method, path, host, parts.port, headers, content, what)
        context = self._context() if tls else None
        reader, writer = await _connect(host, port, context, what, on_connected)
        try:
            writer.write(head + content)
            await writer.drain()
            return await read_answer(reader, method, limit, on_headers)
        except Protocol as exc:
            raise Fault(
                FailureKind.BAD_RESPONSE, f"not a valid HTTP answer ({what}): {exc}"
            ) from None
        except asyncio.IncompleteReadError:
            raise Fault(
                FailureKind.BAD_RESPONSE,
                f"not a valid HTTP answer ({what}): the server closed the connection mid-answer",
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise Fault(
                FailureKind.BAD_RESPONSE,
                f"connection dropped mid-answer ({what}): {one_line(_os_text(exc))}",
            ) from None
        finally:
            writer.transport.abort()  # Connection: close; never wait for a peer's goodbye


def _request_head(
    method: str,
    path: str,
    host: str,
    port: int | None,
    headers: Mapping[str, str],
    content: bytes,
    what: str,
) -> bytes:
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority += f":{port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
    fields = {
        "User-Agent": "cluster-watchdog",
        "Accept-Encoding": IDENTITY,
        **headers,
        "Connection": "close",
    }
    if content or method in ("POST", "PUT", "PATCH"):
        fields.setdefault("Content-Type", "application/json")
        fields["Content-Length"] = str(len(content))
    for name, value in fields.items():
        if not _valid_value(value):
            # Our own request is malformed; the message would quote the offending header.
            raise Fault(
                FailureKind.PROBE_ERROR,
                f"the request could not be sent ({what}): invalid header",
                "check api_key for stray whitespace or line breaks",
            )
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise Fault(
            FailureKind.PROBE_ERROR,
            f"the request could not be sent ({what}): invalid header",
            "check api_key for stray whitespace or line breaks",
        ) from None


def _valid_value(value: str) -> bool:
    """A header value HTTP allows: visible characters, inner spaces and tabs, no edges."""
    if value != value.strip(" \t"):
        return False
    if value.isascii() and value.isprintable():
        return True  # visible ASCII and spaces: the common case, checked in C
    return all(c in " \t" or 0x21 <= ord(c) <= 0x7E or 0x80 <= ord(c) <= 0xFF for c in value)


async def _connect(
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    what: str,
    on_connected: Callable[[], None],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=HEAD_BYTES)
    except socket.gaierror as exc:
        raise Fault(
            FailureKind.UNREACHABLE, f"name resolution failed ({what}): {one_line(str(exc))}"
        ) from None
    except ConnectionRefusedError:
        raise Fault(FailureKind.REFUSED, f"connection refused ({what})") from None
    except OSError as exc:
        if exc.errno in UNREACHABLE_ERRNOS:
            raise Fault(FailureKind.UNREACHABLE, f"{exc.strerror} ({what})") from None
        raise Fault(
            FailureKind.UNREACHABLE, f"cannot connect ({what}): {one_line(_os_text(exc))}"
        ) from None
    on_connected()
    if tls is None:
        return reader, writer
    try:
        await writer.start_tls(tls, server_hostname=host)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        writer.transport.abort()
        raise Fault(
            FailureKind.BAD_RESPONSE,
            f"TLS handshake failed ({what}): {one_line(str(exc))}",
            _TLS_HINT,
        ) from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        writer.transport.abort()
        raise Fault(
            FailureKind.BAD_RESPONSE,
            f"TLS handshake failed ({what}): {one_line(_os_text(exc))}",
            _TLS_HINT,
        ) from None
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


def _os_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
