"""A simulated reference target (the gateway a witness probe connects to), on loopback.

``up`` accepts TCP and closes at once. ``silent`` keeps the port bound but drops every new
handshake — a listen(0) socket that never accepts, its accept queue already full — so a
connect times out as it does when the real network is gone. (Closing the port would not do:
on loopback a closed port answers with a reset, and a reset proves the path works.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class WitnessServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._silent: list[socket.socket] = []

    @property
    def silent(self) -> bool:
        return bool(self._silent)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._answer, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def go_silent(self) -> None:
        await self._close_server()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((self.host, self.port))
            fillers.append(filler)
        await asyncio.sleep(0.05)  # let the handshakes land in the accept queue
        self._silent = [listener, *fillers]

    async def answer_again(self) -> None:
        self._drop_silent()
        await self.start()

    async def stop(self) -> None:
        self._drop_silent()
        await self._close_server()

    def _drop_silent(self) -> None:
        for sock in self._silent:
            sock.close()
        self._silent = []

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
