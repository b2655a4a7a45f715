"""Parsing one HTTP/1.1 answer from the bytes fed to it, within bounds (adapter helper of ``wire``).

Owns the answer side of :mod:`watchdog.probes.wire`: the status line and the headers (a line at
most :data:`HEAD_BYTES`, :data:`MAX_HEADERS` of them, interim 1xx answers skipped), then the
body framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection,
never more than the caller's cap: a ``Content-Encoding`` other than ``identity``, a declared
length over the cap, or more bytes than the cap are :class:`~watchdog.edge.bounded.BodyRefused`
— nothing is decompressed. Anything that is not valid HTTP/1.x is :class:`Protocol`.

:class:`Answer` does no I/O: the connection feeds it what arrives (:meth:`Answer.feed`, then
:meth:`Answer.feed_eof`), and it says when the answer is complete. Its steps are a generator
that pauses wherever more bytes are needed, so the answer is read as one sequence of steps yet
costs no coroutine, future or loop iteration per header line; a head that has arrived whole
(the common answer) is checked in one go by regular expressions, with the verdicts reading it
line by line gives. It keeps at most the unparsed
rest of the stream, which the caps bound: a line waits for at most :data:`HEAD_BYTES`, a body
for at most the cap (plus one ``recv``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator

from watchdog.edge.bounded import IDENTITY, BodyRefused
from watchdog.probes._faults import one_line

HEAD_BYTES = 64 * 1024  # status line and headers together; a line longer than this is refused
MAX_HEADERS = 256
_MAX_INTERIM = 8  # 1xx answers skipped before the real one
_CHUNK_LINE = 1024
_HEX = b"0123456789abcdefABCDEF"
_COMPACT = 64 * 1024  # drop consumed bytes from the buffer once this many have piled up

Steps = Generator[None, None, tuple[int, bytes]]


class Protocol(Exception):
    """The peer's answer is not valid HTTP/1.x."""


class Answer:
    """One HTTP/1.1 answer to ``method``, its body capped at ``limit`` raw bytes.

    :meth:`feed` and :meth:`feed_eof` return True once the answer is complete (then
    :attr:`result` is ``(status, body)``), and raise :class:`Protocol` or
    :class:`~watchdog.edge.bounded.BodyRefused` as soon as the bytes say so. ``on_headers`` is
    called once the final answer's headers are in.
    """

    __slots__ = ("_buf", "_eof", "_pos", "_scan", "_steps", "result")

    def __init__(self, method: str, limit: int, on_headers: Callable[[], None]) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the unparsed bytes
        self._scan = 0  # where the search for the next LF resumes
        self._eof = False
        self.result: tuple[int, bytes] | None = None
        self._steps = _response(self, method, limit, on_headers)

    def feed(self, data: bytes | memoryview) -> bool:
        if self._pos >= _COMPACT:
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0
        self._buf += data
        return self._step()

    def feed_eof(self) -> bool:
        self._eof = True
        return self._step()

    def _step(self) -> bool:
        if self.result is not None:
            return True
        try:
            next(self._steps)
        except StopIteration as finished:
            self.result = finished.value
            return True
        return False

    # -- the reads the steps are made of; each pauses (yields) until its bytes are in ---------

    def line(self) -> Generator[None, None, bytes]:
        """The next line without its line end (LF, any CRs before it)."""
        while (line := self.buffered_line()) is None:
            yield
        return line

    def buffered_line(self) -> bytes | None:
        """:meth:`line` if the whole line is in already (no generator needed), else None."""
        end = self._buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(self._buf)
            if self._scan - self._pos > HEAD_BYTES:
                raise Protocol(f"a header line longer than {HEAD_BYTES} bytes")
            if self._eof:
                if self._scan == self._pos:
                    raise Protocol("the server closed the connection without an answer")
                raise Protocol("the answer ends in the middle of its headers")
            return None
        if end - self._pos > HEAD_BYTES:
            raise Protocol(f"a header line longer than {HEAD_BYTES} bytes")
        line = bytes(self._buf[self._pos : end])
        self._pos = self._scan = end + 1
        return line.rstrip(b"\r\n")

    def buffered_head(self) -> bytes | None:
        """A head (status line and header lines, without the empty line) that is all in
        already, when every line ends in CRLF, it is within :data:`HEAD_BYTES` and has at most
        :data:`MAX_HEADERS` header lines: the common answer, read in one go. Otherwise None,
        and the head is read line by line, which gives any other shape its verdict."""
        start = self._pos
        end = self._buf.find(b"\r\n\r\n", start, start + HEAD_BYTES + 4)
        if end < 0:
            return None
        block = bytes(self._buf[start:end])
        ends = block.count(b"\r\n")
        if block.count(b"\r") != ends or block.count(b"\n") != ends or ends > MAX_HEADERS:
            return None  # a bare CR or LF: the line-by-line rules decide
        self._pos = self._scan = end + 4
        return block

    def buffered(self, size: int) -> bytes | None:
        """:meth:`exactly` if the bytes are in already (no generator needed), else None."""
        if len(self._buf) - self._pos < size:
            return None
        start, self._pos = self._pos, self._pos + size
        self._scan = self._pos
        return bytes(memoryview(self._buf)[start : self._pos])  # one copy, not two

    def exactly(self, size: int) -> Generator[None, None, bytes]:
        """The next ``size`` bytes; the stream ending first is a cut answer."""
        while (got := self.buffered(size)) is None:
            if self._eof:
                raise Protocol("the server closed the connection mid-answer")
            yield
        return got

    def rest(self, limit: int) -> Generator[None, None, bytes]:
        """Everything up to the end of the stream, refused once over ``limit`` bytes."""
        while not self._eof:
            if len(self._buf) - self._pos > limit:
                raise BodyRefused(f"response larger than {limit} bytes")
            yield
        if len(self._buf) - self._pos > limit:
            raise BodyRefused(f"response larger than {limit} bytes")
        return bytes(memoryview(self._buf)[self._pos :])


def _response(answer: Answer, method: str, limit: int, on_headers: Callable[[], None]) -> Steps:
    for _ in range(_MAX_INTERIM + 1):
        head = answer.buffered_head()
        if head is not None:
            status, fields = _head(head)
        else:
            line = answer.buffered_line()
            status = _status(line if line is not None else (yield from answer.line()))
            fields = yield from _headers(answer)
        if not (100 <= status < 200):
            break
    else:
        raise Protocol("too many interim (1xx) answers")
    on_headers()
    if encodings := fields.get("content-encoding"):
        encoding = ", ".join(v.strip().lower() for v in encodings if v)
        if any(part.strip() not in ("", IDENTITY) for part in encoding.split(",")):
            raise BodyRefused(f"Content-Encoding {encoding!r} was not asked for (identity only)")
    if method == "HEAD" or status in (204, 304):
        return status, b""
    if transfer := fields.get("transfer-encoding"):
        codings = [c.strip().lower() for v in transfer for c in v.split(",")]
        if codings[-1] != "chunked":
            raise Protocol(f"unsupported Transfer-Encoding {one_line(', '.join(codings))!r}")
        return status, (yield from _chunked(answer, limit))
    if declared_lengths := fields.get("content-length"):
        lengths = {v.strip() for v in declared_lengths}
        if len(lengths) != 1 or not (declared := lengths.pop()).isdigit() or len(declared) > 18:
            raise Protocol("invalid Content-Length")
        size = int(declared)
        if size > limit:
            raise BodyRefused(f"response larger than {limit} bytes (Content-Length {declared})")
        body = answer.buffered(size)
        return status, body if body is not None else (yield from answer.exactly(size))
    return status, (yield from answer.rest(limit))


def _status(line: bytes) -> int:
    parts = line.split(b" ", 2)
    version = parts[0]
    if len(parts) < 2 or version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise Protocol(f"not an HTTP/1.x status line: {one_line(line.decode('latin-1'), 60)!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise Protocol(f"invalid status code {one_line(code.decode('latin-1'), 20)!r}")
    return int(code)


# The only headers the framing reads; every other line is checked and skipped.
_FRAMING = frozenset({b"content-encoding", b"transfer-encoding", b"content-length"})


def _headers(answer: Answer) -> Generator[None, None, dict[str, list[str]]]:
    """The framing headers (:data:`_FRAMING`, names lower-cased) of a head whose every line is
    checked: at most :data:`MAX_HEADERS` lines, :data:`HEAD_BYTES` in all, each ``name: value``."""
    fields: dict[str, list[str]] = {}
    total = 0
    for _ in range(MAX_HEADERS + 1):
        line = answer.buffered_line()
        if line is None:
            line = yield from answer.line()
        if not line:
            return fields
        total += len(line)
        if total > HEAD_BYTES:
            raise Protocol(f"headers larger than {HEAD_BYTES} bytes")
        _field(line, fields)
    raise Protocol(f"more than {MAX_HEADERS} headers")


# A header line ``_field`` accepts (a name without colon or space and not starting or ending
# in whitespace, then a colon), after the CRLF that ends the line before it.
_HEADER_LINES = re.compile(rb"(?:\r\n[^:\s](?:[^: \r\n]*[^:\s])?:[^\r\n]*+)*")
_FRAMING_LINE = re.compile(
    rb"\r\n(content-encoding|transfer-encoding|content-length):([^\r\n]*)", re.IGNORECASE
)


def _head(block: bytes) -> tuple[int, dict[str, list[str]]]:
    """The status and the framing headers of a head read in one go (``buffered_head``): the
    same verdicts as line by line, with every line checked by one regular expression."""
    first = block.find(b"\r\n")
    status = _status(block if first < 0 else block[:first])
    fields: dict[str, list[str]] = {}
    if first < 0:
        return status, fields
    if _HEADER_LINES.fullmatch(block, first) is None:
        for line in block[first + 2 :].split(b"\r\n"):
            _field(line, fields)  # raises for the malformed line
        return status, fields
    for match in _FRAMING_LINE.finditer(block, first):
        name, value = match.groups()
        fields.setdefault(name.lower().decode(), []).append(value.strip().decode("latin-1"))
    return status, fields


def _field(line: bytes, fields: dict[str, list[str]]) -> None:
    """Check one header line; keep its value in ``fields`` if it is a framing header."""
    name, sep, value = line.partition(b":")
    if not sep or not name or name != name.strip() or b" " in name:
        raise Protocol("a malformed header line")
    key = name.lower()
    if key in _FRAMING:
        fields.setdefault(key.decode(), []).append(value.strip().decode("latin-1"))


def _chunked(answer: Answer, limit: int) -> Generator[None, None, bytes]:
    body = bytearray()
    while True:
        line = yield from answer.line()
        if len(line) > _CHUNK_LINE:
            raise Protocol("a chunk-size line too long")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or size_text.strip(_HEX):
            raise Protocol("an invalid chunk size")
        size = int(size_text, 16)
        if size == 0:
            yield from _headers(answer)  # trailers, bounded like headers
            return bytes(body)
        if len(body) + size > limit:
            raise BodyRefused(f"response larger than {limit} bytes")
        body += yield from answer.exactly(size)
        if (yield from answer.exactly(2)) != b"\r\n":
            raise Protocol("a chunk not followed by CRLF")
