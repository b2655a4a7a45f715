"""python-kasa's transports with a cap on a device's answer (adapter helper of ``kasa.py``).

Owns :func:`connect`, which builds python-kasa's own protocol for a connection type and
bounds the transport under it before the first byte is read:

* the legacy XOR transport (TCP 9999) reads a 4-byte length and then that many bytes:
  :class:`BoundedXorTransport` refuses a declared length over :data:`MAX_ANSWER` before
  reading, so a device declaring 1 GB costs nothing, and decrypts the answer with the native
  driver's cipher in C (:mod:`watchdog.plugs.kasa_wire`) rather than python-kasa's byte
  loops;
* the HTTP transports (KLAP, AES) read each answer through :class:`BoundedHttpClient`,
  whose session never decompresses and reads at most :data:`MAX_ANSWER` bytes.

These are subclasses of python-kasa's classes, not a fork: the protocol, retry loop, crypto
and device model stay python-kasa's. A real HS300's sysinfo is about 3 KB. :func:`connect`
uses two internals of python-kasa 0.12 (``device_factory._connect``, ``protocol._transport``);
the dependency is pinned below 0.13, and ``tests/test_hostile_peers.py`` fails if they move.
"""

from __future__ import annotations

import struct
from typing import Any

import aiohttp
from kasa import Device, DeviceConfig, KasaException, device_factory
from kasa.httpclient import HttpClient, get_cookie_jar
from kasa.json import loads as json_loads
from kasa.transports import XorTransport

from watchdog.plugs.kasa_wire import MAX_ANSWER, decrypt, encrypt

_LENGTH = struct.Struct(">I")


class AnswerTooLarge(KasaException):
    """The device declared or sent an answer over :data:`MAX_ANSWER` bytes."""


class BoundedXorTransport(XorTransport):
    """XOR transport whose answer length is checked before the answer is read."""

    async def _execute_send(self, request: str) -> dict[str, Any]:
        assert self.writer is not None and self.reader is not None
        self.writer.write(encrypt(request))
        await self.writer.drain()
        length = _LENGTH.unpack(await self.reader.readexactly(_LENGTH.size))[0]
        if length > MAX_ANSWER:
            raise AnswerTooLarge(f"the device declared a {length}-byte answer (cap {MAX_ANSWER})")
        buffer = await self.reader.readexactly(length)
        payload: dict[str, Any] = json_loads(decrypt(buffer))
        return payload


class _CappedResponse(aiohttp.ClientResponse):
    """An aiohttp response whose ``read()`` stops at :data:`MAX_ANSWER` bytes."""

    async def read(self) -> bytes:
        if self._body is None:
            declared = self.content_length
            if declared is not None and declared > MAX_ANSWER:
                raise AnswerTooLarge(
                    f"the device declared a {declared}-byte answer (cap {MAX_ANSWER})"
                )
            body = bytearray()
            async for chunk in self.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise AnswerTooLarge(f"the device sent more than {MAX_ANSWER} bytes")
            self._body = bytes(body)
        return self._body


class BoundedHttpClient(HttpClient):
    """python-kasa's HTTP client on a session that caps answers and never decompresses."""

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client_session is None:
            self._client_session = aiohttp.ClientSession(
                cookie_jar=get_cookie_jar(),
                response_class=_CappedResponse,
                auto_decompress=False,  # an encoding the device imposes is never inflated
            )
        return self._client_session


async def connect(config: DeviceConfig) -> Device:
    """Like ``Device.connect(config=…)``, on a transport whose answers are bounded."""
    protocol = device_factory.get_protocol(config)
    if protocol is None:
        raise KasaException(f"unsupported device family {config.connection_type}")
    transport: Any = protocol._transport
    if type(transport) is XorTransport:
        protocol._transport = BoundedXorTransport(config=config)
    elif isinstance(getattr(transport, "_http_client", None), HttpClient):
        transport._http_client = BoundedHttpClient(config)
    else:  # a transport this module does not know how to bound: refuse rather than trust
        raise KasaException(f"no bounded transport for {type(transport).__name__}")
    try:
        device: Device = await device_factory._connect(config, protocol)
    except BaseException:
        await protocol.close()
        raise
    return device
