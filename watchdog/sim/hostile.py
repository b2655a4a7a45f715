"""Hostile peers on loopback: an HTTP server and a Kasa plug that answer like an attacker.

Owns :class:`HostileHttp` (every request gets the same scripted :class:`HttpAnswer`: a body,
an imposed ``Content-Encoding``, an endless stream, or an echo of the request head) and
:class:`HostileKasa` (speaks the real legacy XOR framing on TCP; an answer is a JSON value, or a
declared length far beyond what it sends). Used by the hostile-input tests and
``benchmarks/bench_hostile.py``; nothing here is used by the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from watchdog.sim._httpserver import _read_request
from watchdog.sim.kasa import xor_decrypt, xor_encrypt

_LEN = struct.Struct(">I")


def stacked_gzip(inflated: int, layers: int = 2) -> bytes:
    """``inflated`` zero bytes gzip-compressed ``layers`` times (1 GB -> about 1-2 KB)."""
    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip wrapper
    parts = []
    left = inflated
    while left > 0:
        parts.append(comp.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(comp.flush())
    body = b"".join(parts)
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


@dataclass(frozen=True)
class HttpAnswer:
    """What :class:`HostileHttp` sends to every request.

        ``endless``: after the head, stream ``body`` again and again (chunked) until the client
        leaves. ``echo``: the request's headers come back in the body and as ``x-echo-*`` headers,
    as a proxy echoing them would.
    """

    status: int = 200
    body: bytes = b""
    encoding: str = ""
    endless: bool = False
    echo: bool = False
    content_type: str = "application/json"
    declared_length: int | None = None  # a Content-Length other than the body's


class HostileHttp:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with ``answer``."""

    def __init__(self, answer: HttpAnswer) -> None:
        self.answer = answer
        self.requests: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.requests.append(dict(request.headers))
            a = self.answer
            body = a.body
            if a.echo:
                body = "\r\n".join(f"{k}: {v}" for k, v in request.headers.items()).encode()
            head = [f"HTTP/1.1 {a.status} X", f"content-type: {a.content_type}"]
            if a.echo:  # the head too: a proxy reflecting headers, as debug logs then print
                head += [f"x-echo-{k}: {v}" for k, v in request.headers.items()]
            if a.encoding:
                head.append(f"content-encoding: {a.encoding}")
            if a.endless:
                head.append("transfer-encoding: chunked")
            else:
                length = len(body) if a.declared_length is None else a.declared_length
                head.append(f"content-length: {length}")
            head.append("connection: close")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            if not a.endless:
                writer.write(body)
                await writer.drain()
                return
            piece = body or bytes(65536)
            frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            while True:
                writer.write(frame)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class HostileKasa:
    """A legacy (XOR, TCP) Kasa plug that answers every query with ``answer``.

    ``answer`` is any JSON value (sent as the whole reply), or ``None`` with
    ``declare`` set: then the reply declares ``declare`` bytes and streams zeros until the
    client leaves.
    """

    def __init__(self, answer: Any = None, *, declare: int | None = None) -> None:
        self.answer = answer
        self.declare = declare
        self.queries = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                json.loads(xor_decrypt(await reader.readexactly(length)))
                self.queries += 1
                if self.declare is not None:
                    writer.write(_LEN.pack(self.declare))
                    zeros = bytes(65536)
                    while True:
                        writer.write(zeros)
                        await writer.drain()
                writer.write(xor_encrypt(json.dumps(self.answer).encode()))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
