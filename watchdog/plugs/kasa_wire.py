"""The legacy Kasa wire protocol (TCP, XOR autokey cipher), bounded, with its one retry loop.

Owns the connection to one legacy Kasa plug or strip: an :class:`XorLink` connects on demand
and sends each request as a 4-byte big-endian length followed by the JSON text enciphered with
the XOR autokey cipher (initial key 171); the answer comes back framed the same way. The
connection stays open for the next request, as python-kasa keeps it; one the device has
closed while idle is opened again before it is used (at end of file), and a reused connection
that fails before a byte of the answer arrived is opened again at once, without counting as
an attempt: a device that drops idle connections costs a reconnect, never a retry.

Bounds, checked here at the edge:

* an answer declaring more than :data:`MAX_ANSWER` bytes is refused on its 4-byte header,
  before a byte of it is read (a real HS300's sysinfo is about 3 KB);
* each attempt (connecting if need be, sending, reading the whole answer) runs under the
  plug's timeout (``asyncio.timeout``), so a plug dripping bytes is cut like a silent one;
* the cipher runs in C: decryption is one integer XOR (:func:`decrypt`), encryption an
  ``itertools.accumulate`` of the bytes (python-kasa loops over them in Python).

Retries, python-kasa's policy (so a flaky plug is treated as it was): a request is tried up to
:data:`RETRIES` more times when the attempt timed out (after a :data:`BACKOFF` s pause), when
connecting failed other than refused or host/network unreachable, or when the answer could
not be read or decoded (connection closed or reset, garbage, declared too large); the
connection is dropped and opened again first. A refused connection, an unreachable host and a
decoded answer that is not a JSON object are not retried. Worst case for one request:
``(1 + RETRIES) × timeout + RETRIES × BACKOFF``. This is the only retry loop for the native
driver's plug I/O. A failure leaves as :class:`WireError` with its
:class:`~watchdog.core.errors.PlugFailure` kind.
"""

from __future__ import annotations

import asyncio
import errno
import json
import operator
import socket
import struct
from itertools import accumulate
from typing import Any

from watchdog.core.errors import PlugFailure

MAX_ANSWER = 256 * 1024
RETRIES = 3
BACKOFF = 1.0  # seconds, after a timed-out attempt
DEFAULT_PORT = 9999
_KEY = 171  # the cipher's initial key
_LENGTH = struct.Struct(">I")
_NOT_RETRIED = {errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED}


class WireError(Exception):
    """A request failed: ``kind`` says how, ``retry`` whether another attempt may help,
    ``stale`` that the connection failed before a byte of the answer came."""

    def __init__(
        self, kind: PlugFailure, message: str, *, retry: bool = False, stale: bool = False
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry = retry
        self.stale = stale


def encrypt(text: str) -> bytes:
    """``text`` framed for the wire: its length, then each byte XOR the cipher byte before."""
    plain = text.encode()
    cipher = bytes(accumulate(plain, operator.xor, initial=_KEY))[1:]
    return _LENGTH.pack(len(plain)) + cipher


def decrypt(ciphertext: bytes) -> str:
    """The plain text of an answer's body (without its length), as one integer XOR in C.

    Each plain byte is the cipher byte XOR the cipher byte before it (the first one XOR 171):
    so the plain text is the cipher text XOR itself shifted by one byte. Raises
    UnicodeDecodeError when the result is not UTF-8.
    """
    if not ciphertext:
        return ""
    size = len(ciphertext)
    shifted = bytes((_KEY,)) + ciphertext[:-1]
    plain = int.from_bytes(ciphertext, "big") ^ int.from_bytes(shifted, "big")
    return plain.to_bytes(size, "big").decode()


class XorLink:
    """The connection to one plug (opened on demand, kept between requests)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._host = host
        self._port = port
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def query(self, request: dict[str, Any]) -> dict[str, Any]:
        """The device's answer to ``request``; raises WireError (after the retries)."""
        frame = encrypt(json.dumps(request, separators=(",", ":")))
        attempt = 1
        while True:
            reused = self._usable()
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._exchange(frame)
            except TimeoutError as exc:  # the attempt's deadline, or the kernel's
                self.close(abort=True)
                error = WireError(
                    PlugFailure.TIMEOUT, f"no answer within {self._timeout:g} s", retry=True
                )
                error.__cause__ = exc
            except WireError as exc:
                self.close(abort=True)
                if reused and exc.stale:
                    continue  # the device had dropped the kept connection: open a new one
                error = exc
            if not error.retry or attempt > RETRIES:
                if attempt > 1:
                    error.args = (f"{error} ({attempt} attempts)",)
                raise error
            if error.kind is PlugFailure.TIMEOUT:
                await asyncio.sleep(BACKOFF)
            attempt += 1

    def _usable(self) -> bool:
        """Whether a kept connection is there to reuse (one closed by the device is dropped)."""
        if self._reader is not None and self._writer is not None:
            if not self._reader.at_eof() and not self._writer.is_closing():
                return True
            self.close(abort=True)
        return False

    def close(self, *, abort: bool = False) -> None:
        """Drop the connection (``abort``: at once, unsent bytes discarded)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            if abort:
                writer.transport.abort()
            else:
                writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._usable():
            assert self._reader is not None and self._writer is not None
            return self._reader, self._writer
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except TimeoutError:
            raise
        except OSError as exc:
            refused = isinstance(exc, ConnectionRefusedError) or exc.errno in _NOT_RETRIED
            raise WireError(
                PlugFailure.UNREACHABLE,
                f"cannot connect to {self._host}:{self._port}: {exc}",
                retry=not refused,
            ) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:  # one write per request: send it now, not after a delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader, self._writer = reader, writer
        return reader, writer

    async def _exchange(self, frame: bytes) -> dict[str, Any]:
        reader, writer = await self._connect()
        header = b""  # nothing of the answer yet: a failure now may be a stale connection
        try:
            writer.write(frame)
            await writer.drain()
            header = await reader.readexactly(_LENGTH.size)
            (length,) = _LENGTH.unpack(header)
            if length > MAX_ANSWER:
                raise WireError(
                    PlugFailure.PROTOCOL,
                    f"the plug declared a {length}-byte answer (cap {MAX_ANSWER})",
                    retry=True,
                )
            answer = json.loads(decrypt(await reader.readexactly(length)))
        except asyncio.IncompleteReadError as exc:
            raise WireError(
                PlugFailure.PROTOCOL,
                f"the plug closed the connection ({len(exc.partial)} of {exc.expected} bytes read)",
                retry=True,
                stale=not header and not exc.partial,
            ) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
            raise WireError(
                PlugFailure.PROTOCOL, "the answer is not XOR-enciphered JSON", retry=True
            ) from exc
        except TimeoutError:
            raise
        except OSError as exc:  # reset, broken pipe
            raise WireError(
                PlugFailure.UNREACHABLE, f"connection lost: {exc}", retry=True, stale=not header
            ) from exc
        if not isinstance(answer, dict):
            raise WireError(
                PlugFailure.PROTOCOL, f"the answer is a JSON {type(answer).__name__}, no object"
            )
        return answer
