"""The device side of KLAP v2 (TP-Link's authenticated local protocol) for the plug emulator.

Owns the HTTP endpoints newer Kasa firmware serves instead of the XOR port: ``/app/handshake1``
(client seed in; device seed and ``sha256(local_seed | remote_seed | auth_hash)`` out, plus a
``TP_SESSIONID`` cookie), ``/app/handshake2`` (the client proves it knows the same hash) and
``/app/request?seq=N`` (AES-128-CBC bodies signed with SHA-256; the IV's last four bytes are
the sequence number). ``auth_hash = sha256(sha1(username) | sha1(password))``.

The device never rejects a handshake outright: it answers with a proof made from *its*
credentials, and a client holding other credentials cannot match it. python-kasa then raises
``AuthenticationError`` — which is how wrong credentials look in the field. Written from the
protocol description, independently of python-kasa's client code, so the two check each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_SEQ = struct.Struct(">l")
_COOKIE = "TP_SESSIONID"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def auth_hash(username: str, password: str) -> bytes:
    """KLAP v2 credential hash (v1 used md5; Kasa firmware that needs credentials uses v2)."""
    sha1 = hashlib.sha1  # the protocol's choice, not ours
    return _sha256(sha1(username.encode()).digest() + sha1(password.encode()).digest())


@dataclass
class _Session:
    local_seed: bytes
    remote_seed: bytes
    auth: bytes
    verified: bool = False

    def _derive(self, label: bytes) -> bytes:
        return _sha256(label + self.local_seed + self.remote_seed + self.auth)

    def _cipher(self, seq: int) -> Cipher[modes.CBC]:
        iv = self._derive(b"iv")[:12] + _SEQ.pack(seq)
        return Cipher(algorithms.AES(self._derive(b"lsk")[:16]), modes.CBC(iv))

    def _signature(self, seq: int, ciphertext: bytes) -> bytes:
        return _sha256(self._derive(b"ldk")[:28] + _SEQ.pack(seq) + ciphertext)

    def decrypt(self, seq: int, body: bytes) -> bytes | None:
        signature, ciphertext = body[:32], body[32:]
        if not ciphertext or len(ciphertext) % 16 or signature != self._signature(seq, ciphertext):
            return None
        decryptor = self._cipher(seq).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            return None

    def encrypt(self, seq: int, plain: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        encryptor = self._cipher(seq).encryptor()
        ciphertext = encryptor.update(padder.update(plain) + padder.finalize())
        ciphertext += encryptor.finalize()
        return self._signature(seq, ciphertext) + ciphertext


class KlapServer:
    """HTTP side of one emulated KLAP device; requests go to ``handle`` once decrypted."""

    def __init__(
        self,
        handle: Callable[[Any], dict[str, Any]],
        credentials: tuple[str, str],
        fault: Callable[[], str],  # the emulator's PlugFault (a StrEnum)
    ) -> None:
        self._handle = handle
        self._auth = auth_hash(*credentials)  # the hash only: the secret itself is not kept
        self._fault = fault
        self._sessions: dict[str, _Session] = {}
        self._server: web.Server | None = None

    def __repr__(self) -> str:
        return "KlapServer()"

    async def setup(self) -> None:
        # handler_cancellation: a HANG handler ends when the client gives up and disconnects.
        self._server = web.Server(self._dispatch, handler_cancellation=True)

    def factory(self) -> asyncio.Protocol:
        assert self._server is not None, "setup() first"
        return self._server()

    def drop_connections(self) -> None:
        if self._server is not None:
            for conn in list(self._server.connections):
                conn.force_close()
        self._sessions.clear()

    async def cleanup(self) -> None:
        if self._server is not None:
            self.drop_connections()
            await self._server.shutdown(0.1)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        if self._fault() == "hang":
            await asyncio.Event().wait()  # cancelled when the client disconnects
        if request.method != "POST":
            return web.Response(status=405)
        if request.path == "/app/handshake1":
            return self._handshake1(body, reject=self._fault() == "auth")
        session = self._sessions.get(request.cookies.get(_COOKIE, ""))
        if request.path == "/app/handshake2":
            if session is None or body != _sha256(
                session.remote_seed + session.local_seed + session.auth
            ):
                return web.Response(status=403)
            session.verified = True
            return web.Response(status=200)
        if request.path == "/app/request":
            return self._request(session, request.query.get("seq", ""), body)
        return web.Response(status=404)

    def _handshake1(self, local_seed: bytes, *, reject: bool) -> web.Response:
        if len(local_seed) != 16:
            return web.Response(status=400)
        remote_seed = secrets.token_bytes(16)
        # AUTH fault: prove knowledge of credentials nobody has, so no client can match.
        auth = secrets.token_bytes(32) if reject else self._auth
        session_id = secrets.token_hex(16).upper()
        self._sessions[session_id] = _Session(local_seed, remote_seed, auth)
        if len(self._sessions) > 64:  # clients that never finish do not grow memory forever
            self._sessions.pop(next(iter(self._sessions)))
        response = web.Response(
            status=200, body=remote_seed + _sha256(local_seed + remote_seed + auth)
        )
        response.set_cookie(_COOKIE, session_id)
        response.set_cookie("TIMEOUT", "86400")
        return response

    def _request(self, session: _Session | None, seq_text: str, body: bytes) -> web.Response:
        if session is None or not session.verified:
            return web.Response(status=403)
        try:
            seq = int(seq_text)
        except ValueError:
            return web.Response(status=400)
        plain = session.decrypt(seq, body)
        if plain is None:
            return web.Response(status=400)
        try:
            query = json.loads(plain)
        except ValueError:
            return web.Response(status=400)
        answer = json.dumps(self._handle(query), separators=(",", ":")).encode()
        return web.Response(status=200, body=session.encrypt(seq, answer))
