"""Bounded reading of untrusted input: HTTP bodies, local files, remote text (adapter helper).

Owns the three rules every adapter edge applies to what a peer or a file hands us:

* :func:`read_body` reads an httpx response's *raw* bytes with a cap. The client asks for
  ``Accept-Encoding: identity``; a ``Content-Encoding`` the server imposes anyway is refused
  (:class:`BodyRefused`) rather than decoded, because httpx inflates a whole network chunk in
  one synchronous call — a stacked-gzip bomb would grow to gigabytes before any cap or
  deadline could act. Raw bytes are never decoded here, so the cap bounds memory and CPU.
* :func:`read_regular_file` opens a local file without blocking (a FIFO or a device never
  hangs the caller), refuses anything but a regular file and reads at most a cap.
* :func:`printable` makes remote text safe to store, log and print: no control characters,
  no lone surrogates, at most ``limit`` characters.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: file and text helpers stay importable without httpx
    import httpx

IDENTITY = "identity"
# What an encoding header may say without anything to decode.
_NO_ENCODING = frozenset({"", IDENTITY})


class BodyRefused(Exception):
    """A response body that breaks a bound: too large, or encoded without being asked."""


def content_encoding(response: httpx.Response) -> str:
    """The response's ``Content-Encoding`` as one lower-case, comma-joined value."""
    values = response.headers.get_list("content-encoding", split_commas=True)
    return ", ".join(v.strip().lower() for v in values if v.strip())


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` raw bytes of a streamed ``response``, or :class:`BodyRefused`.

    The body is read with ``aiter_raw``: nothing is decompressed, whatever the headers say.
    """
    encoding = content_encoding(response)
    if any(part.strip() not in _NO_ENCODING for part in encoding.split(",")):
        raise BodyRefused(f"Content-Encoding {encoding!r} was not asked for (identity only)")
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise BodyRefused(f"response larger than {limit} bytes (Content-Length {declared})")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            # The caller leaves the stream's block, which closes the connection unread.
            raise BodyRefused(f"response larger than {limit} bytes")
    return bytes(body)


class FileRefused(Exception):
    """A local file that is not a regular file, too large, or unreadable."""


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Opened non-blocking, so a FIFO returns at once and is refused; a device (``/dev/zero``),
    a directory or a socket is refused before a byte is read. ``FileNotFoundError`` passes
    through; every other problem is :class:`FileRefused` with a one-line reason.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise  # the one case callers treat apart: nothing there yet
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path} is not a regular file ({_file_type(info.st_mode)})")
        if info.st_size > limit:
            raise FileRefused(f"{path} is {info.st_size} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        size = 0
        while chunk := _read(fd, path, min(65536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while we read
                raise FileRefused(f"{path} is over the limit of {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read(fd: int, path: str | Path, size: int) -> bytes:
    try:
        return os.read(fd, size)
    except OSError as exc:
        raise FileRefused(f"cannot read {path}: {exc.strerror or exc}") from None


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def printable(text: str, limit: int) -> str:
    """``text`` on one line of printable characters, at most ``limit`` characters long.

    Whitespace runs become one space; control, format, surrogate and unassigned code points
    become U+FFFD, so the result always encodes as UTF-8 and cannot move a terminal's cursor.
    """
    if (
        len(text) <= limit
        and text.isprintable()  # no control, format, surrogate, unassigned or odd space
        and "  " not in text
        and not text.startswith(" ")
        and not text.endswith(" ")
    ):
        return text  # already one clean line: the common case, checked in C
    out: list[str] = []
    length = 0
    pending_space = False
    # Bounded work whatever the input: a megabyte of whitespace is not walked to its end.
    window = limit * 4 + 1024
    for ch in text[:window]:
        if ch.isspace():
            pending_space = length > 0
            continue
        if pending_space:
            out.append(" ")
            length += 1
            pending_space = False
        out.append(ch if unicodedata.category(ch)[0] != "C" else "\ufffd")
        length += 1
        if length > limit:
            break
    if length <= limit and len(text) <= window:
        return "".join(out)
    return "".join(out)[: limit - 1] + "…"
