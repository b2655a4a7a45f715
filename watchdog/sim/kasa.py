"""Kasa smart-plug emulator speaking the real local protocol, built from recorded device dumps.

Owns the network side of one emulated plug or power strip: its listener, fault modes and
transports. It serves the legacy protocol that python-kasa's ``XorTransport`` speaks (TCP,
4-byte big-endian length prefix, XOR autokey cipher with key 171) or, when ``credentials`` are
given, KLAP v2 over HTTP (:mod:`watchdog.sim.klap`), as newer firmware does. The device behind
it — relays, energy meter, device-side ``count_down`` rules (which really fire) — is
:class:`watchdog.sim.kasa_device.KasaDevice`. ``record`` is the plug's own log of every relay
change: tests and scenarios assert on it, never on what the watchdog believes it did.

Answers follow real firmware: a module the model lacks gets ``{"err_code": -1, "err_msg":
"module not support"}`` (python-kasa then drops that module), an unknown method of a known
module gets ``-2 "member not support"``. python-kasa's own ``Countdown`` module asks for
``countdown`` (the firmware's service is ``count_down``) and so is told "module not support",
exactly as a real plug does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from enum import StrEnum
from typing import Any

from watchdog.sim.kasa_countdown import CountdownRule
from watchdog.sim.kasa_device import KasaDevice, PowerEvent
from watchdog.sim.kasa_firmware import Json, load_fixture
from watchdog.sim.klap import KlapServer

__all__ = [
    "CountdownRule",
    "Json",
    "KasaEmulator",
    "PlugFault",
    "PowerEvent",
    "load_fixture",
    "xor_decrypt",
    "xor_encrypt",
]

_LOG = logging.getLogger("watchdog.sim.kasa")
_LEN = struct.Struct(">I")
_MAX_REQUEST = 64 * 1024  # real firmware has a few KiB of buffer; anything larger is garbage


class PlugFault(StrEnum):
    """What is wrong with the emulated plug's network side (its relays keep working)."""

    NONE = "none"
    DOWN = "down"  # listening socket closed: connections are refused
    HANG = "hang"  # accepts and reads requests, never answers
    AUTH = "auth"  # KLAP only: handshakes are answered with a proof no credentials match


def xor_encrypt(plain: bytes) -> bytes:
    key, out = 171, bytearray(_LEN.pack(len(plain)))
    for byte in plain:
        key ^= byte
        out.append(key)
    return bytes(out)


def xor_decrypt(cipher: bytes) -> bytes:
    key, out = 171, bytearray()
    for byte in cipher:
        out.append(key ^ byte)
        key = byte
    return bytes(out)


class KasaEmulator(KasaDevice):
    """One emulated Kasa plug or strip on ``host:port`` (port 0: pick a free one at start)."""

    def __init__(
        self,
        fixture: str = "HS110(EU)_1.0_1.2.5",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_watts: float = 90.0,
        credentials: tuple[str, str] | None = None,
        initial_on: bool | None = None,
        alias: str | None = None,
    ) -> None:
        super().__init__(fixture, on_watts=on_watts, initial_on=initial_on, alias=alias)
        self.host = host
        self.port = port
        self._fault = PlugFault.NONE
        self._klap = (
            KlapServer(self.handle, credentials, lambda: self._fault) if credentials else None
        )
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._relisten: asyncio.Task[None] | None = None
        self._started = False

    def __repr__(self) -> str:  # never shows credentials
        return f"KasaEmulator({self.fixture!r}, {self.host}:{self.port}, fault={self._fault})"

    # ------------------------------------------------------------------ network side
    @property
    def fault(self) -> PlugFault:
        return self._fault

    @fault.setter
    def fault(self, value: PlugFault) -> None:
        old, self._fault = self._fault, PlugFault(value)
        if not self._started:
            return
        if self._fault is PlugFault.DOWN and old is not PlugFault.DOWN:
            self._close_listener()
        elif old is PlugFault.DOWN and self._fault is not PlugFault.DOWN:
            # Bind now, so connections from here on queue instead of being refused.
            self._relisten = asyncio.get_running_loop().create_task(self._serve(self._bind()))

    async def set_fault(self, value: PlugFault) -> None:
        self.fault = value
        if self._relisten is not None:
            await self._relisten
            self._relisten = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._klap is not None:
            await self._klap.setup()
        sock = self._bind()
        if self._fault is PlugFault.DOWN:
            sock.close()  # the port is known; nothing listens until the fault clears
            return
        await self._serve(sock)

    async def stop(self) -> None:
        self._started = False
        if self._relisten is not None:
            with contextlib.suppress(Exception):
                await self._relisten
        self._close_listener()
        if self._handlers:  # their sockets are closed: let them see EOF and finish
            await asyncio.wait(list(self._handlers), timeout=1.0)
        self._countdown.cancel_timers()
        if self._klap is not None:
            await self._klap.cleanup()

    async def __aenter__(self) -> KasaEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(32)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def _serve(self, sock: socket.socket) -> None:
        if self._klap is not None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._klap.factory, sock=sock)
        else:
            self._server = await asyncio.start_server(self._serve_xor, sock=sock)

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()  # closes the listening socket now: connects are refused
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        if self._klap is not None:
            self._klap.drop_connections()

    async def _serve_xor(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                if length > _MAX_REQUEST:
                    break
                payload = await reader.readexactly(length)
                if self._fault is PlugFault.HANG:
                    continue  # read it, never answer
                try:
                    request = json.loads(xor_decrypt(payload))
                except ValueError:
                    break  # firmware drops the connection on garbage
                answer = json.dumps(self.handle(request), separators=(",", ":"))
                writer.write(xor_encrypt(answer.encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            _LOG.exception("emulated plug failed on a request")
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()
