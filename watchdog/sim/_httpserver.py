"""HTTP/1.1 framing for the simulated servers: one request in, one response head out.

Owns just enough of HTTP for a fake that answers one request per connection
(``Connection: close``): parsing a request with a ``Content-Length`` body, the response head
(fixed length or chunked, with uvicorn's ``server`` header), and a JSON answer. Plain bytes on
asyncio streams, so a fake can hang, refuse or stream without end where a framework would not.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus

_MAX_REQUEST_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def _json(status: int, payload: object) -> _Answer:
    return _Answer(status, json.dumps(payload).encode())


def _head(status: int, content_type: str, length: int | None) -> bytes:
    framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
        f"server: uvicorn\r\ncontent-type: {content_type}\r\n{framing}\r\n"
        "connection: close\r\n\r\n"
    ).encode()


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """One HTTP/1.1 request with a Content-Length body, or None if it is not one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > _MAX_REQUEST_BODY:
        return None
    body = await reader.readexactly(int(length)) if int(length) else b""
    return _Request(parts[0], parts[1].split("?", 1)[0], headers, body)
