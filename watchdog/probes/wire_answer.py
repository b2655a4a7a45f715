"""Reading one HTTP/1.1 answer from a stream, within bounds (adapter helper of ``wire``).

Owns the answer side of :mod:`watchdog.probes.wire`: the status line and the headers (at most
:data:`HEAD_BYTES`, :data:`MAX_HEADERS` of them, interim 1xx answers skipped), then the body
framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection,
never more than the caller's cap: a ``Content-Encoding`` other than ``identity``, a declared
length over the cap, or more bytes than the cap are :class:`~watchdog.edge.bounded.BodyRefused`
— nothing is decompressed. Anything that is not valid HTTP/1.x is :class:`Protocol`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from watchdog.edge.bounded import IDENTITY, BodyRefused
from watchdog.probes._faults import one_line

HEAD_BYTES = 64 * 1024  # status line and headers together; a line longer than this is refused
MAX_HEADERS = 256
_MAX_INTERIM = 8  # 1xx answers skipped before the real one
_CHUNK_LINE = 1024
_HEX = b"0123456789abcdefABCDEF"


class Protocol(Exception):
    """The peer's answer is not valid HTTP/1.x."""


async def read_answer(
    reader: asyncio.StreamReader, method: str, limit: int, on_headers: Callable[[], None]
) -> tuple[int, bytes]:
    """The status and at most ``limit`` raw body bytes of the answer on ``reader``."""
    return await _response(reader, method, limit, on_headers)


async def _response(
    reader: asyncio.StreamReader, method: str, limit: int, on_headers: Callable[[], None]
) -> tuple[int, bytes]:
    for _ in range(_MAX_INTERIM + 1):
        status = _status(await _line(reader))
        fields = await _headers(reader)
        if not (100 <= status < 200):
            break
    else:
        raise Protocol("too many interim (1xx) answers")
    on_headers()
    encoding = ", ".join(v.strip().lower() for v in fields.get("content-encoding", []) if v)
    if any(part.strip() not in ("", IDENTITY) for part in encoding.split(",")):
        raise BodyRefused(f"Content-Encoding {encoding!r} was not asked for (identity only)")
    if method == "HEAD" or status in (204, 304):
        return status, b""
    codings = [c.strip().lower() for v in fields.get("transfer-encoding", []) for c in v.split(",")]
    if codings:
        if codings[-1] != "chunked":
            raise Protocol(f"unsupported Transfer-Encoding {one_line(', '.join(codings))!r}")
        return status, await _chunked(reader, limit)
    lengths = {v.strip() for v in fields.get("content-length", [])}
    if lengths:
        if len(lengths) != 1 or not (declared := lengths.pop()).isdigit() or len(declared) > 18:
            raise Protocol("invalid Content-Length")
        size = int(declared)
        if size > limit:
            raise BodyRefused(f"response larger than {limit} bytes (Content-Length {declared})")
        return status, await reader.readexactly(size)
    body = await reader.read(limit + 1)
    while body and len(body) <= limit:
        more = await reader.read(limit + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > limit:
        raise BodyRefused(f"response larger than {limit} bytes")
    return status, body


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise Protocol(f"a header line longer than {HEAD_BYTES} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise Protocol("the server closed the connection without an answer") from None
        raise Protocol("the answer ends in the middle of its headers") from None
    return line.rstrip(b"\r\n")


def _status(line: bytes) -> int:
    parts = line.split(b" ", 2)
    version = parts[0]
    if len(parts) < 2 or version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise Protocol(f"not an HTTP/1.x status line: {one_line(line.decode('latin-1'), 60)!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise Protocol(f"invalid status code {one_line(code.decode('latin-1'), 20)!r}")
    return int(code)


async def _headers(reader: asyncio.StreamReader) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    total = 0
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            return fields
        total += len(line)
        if total > HEAD_BYTES:
            raise Protocol(f"headers larger than {HEAD_BYTES} bytes")
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise Protocol("a malformed header line")
        key = name.decode("latin-1").lower()
        fields.setdefault(key, []).append(value.strip().decode("latin-1"))
    raise Protocol(f"more than {MAX_HEADERS} headers")


async def _chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = await _line(reader)
        if len(line) > _CHUNK_LINE:
            raise Protocol("a chunk-size line too long")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or size_text.strip(_HEX):
            raise Protocol("an invalid chunk size")
        size = int(size_text, 16)
        if size == 0:
            await _headers(reader)  # trailers, bounded like headers
            return bytes(body)
        if len(body) + size > limit:
            raise BodyRefused(f"response larger than {limit} bytes")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise Protocol("a chunk not followed by CRLF")
