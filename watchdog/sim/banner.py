"""An sshd-like banner server with switchable fault modes, for the demo and the tests.

It reproduces what the ssh probe sees from a node, not SSH itself:

- SPEAK — sends the version line on connect, then holds the connection until the client closes;
- WEDGED — accepts TCP but never sends a byte (like a SIGSTOPped or out-of-memory sshd);
- CLOSED — no listener at all: connections are refused (sshd dead, node booting);
- GARBAGE — another service answers (``HTTP/1.1 400 Bad Request``) and hangs up;
- TRICKLE — the version line one byte every ``trickle_delay`` seconds (an sshd starved of
  memory or CPU);
- PARTIAL — ``SSH-`` and then nothing more (an sshd that stalled part-way).

Leaving CLOSED re-opens the listener on the SAME port, so a probe configured once keeps working
across a simulated reboot; while CLOSED the port stays bound by a socket that does not listen
(connections are refused, and no other server on the host can take the port meanwhile and
answer in the node's name). Switching WEDGED → SPEAK sends the banner to connections that were
held silent, as a SIGCONTed sshd would. :meth:`BannerServer.stop` aborts every connection and
never waits on a peer.
"""

from __future__ import annotations

import asyncio
import socket
from enum import StrEnum

GARBAGE_REPLY = b"HTTP/1.1 400 Bad Request\r\n"


class BannerMode(StrEnum):
    SPEAK = "speak"
    WEDGED = "wedged"
    CLOSED = "closed"
    GARBAGE = "garbage"
    TRICKLE = "trickle"
    PARTIAL = "partial"


class _Conn(asyncio.Protocol):
    """One accepted connection; it acts on the server's mode at the moment it connects."""

    def __init__(self, server: BannerServer) -> None:
        self._server = server
        self.transport: asyncio.Transport | None = None
        self.silent = False  # accepted while wedged, banner not yet sent
        self._trickle: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._server._conns.add(self)
        mode = self._server.mode
        if mode is BannerMode.GARBAGE:
            transport.write(GARBAGE_REPLY)
            transport.close()
        elif mode is BannerMode.WEDGED:
            self.silent = True
        elif mode is BannerMode.PARTIAL:
            transport.write(self._server.banner[:4])
        elif mode is BannerMode.TRICKLE:
            self._trickle = asyncio.ensure_future(self._drip())
        else:
            self.speak()

    async def _drip(self) -> None:
        for i in range(len(self._server.banner)):
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(self._server.banner[i : i + 1])
            await asyncio.sleep(self._server.trickle_delay)

    def speak(self) -> None:
        self.silent = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._server.banner)

    def data_received(self, data: bytes) -> None:
        """Ignore what the client says: we only imitate the banner, not the protocol."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._conns.discard(self)
        if self._trickle is not None:
            self._trickle.cancel()


class BannerServer:
    """A loopback listener whose behaviour follows :class:`BannerMode` (initially SPEAK)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        banner: bytes = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        trickle_delay: float = 1.0,
    ) -> None:
        self.host = host
        self.trickle_delay = trickle_delay
        self._port = port
        self.banner = banner
        self._mode = BannerMode.SPEAK
        self._server: asyncio.Server | None = None
        self._hold: socket.socket | None = None  # the port, bound without listening (CLOSED)
        self._conns: set[_Conn] = set()

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one chosen at the first start when port was 0)."""
        if self._port == 0:
            raise RuntimeError("BannerServer has not been started")
        return self._port

    @property
    def mode(self) -> BannerMode:
        return self._mode

    async def start(self) -> None:
        """Open the listener (unless the mode is CLOSED)."""
        if self._mode is not BannerMode.CLOSED:
            await self._listen()

    async def set_mode(self, mode: BannerMode) -> None:
        """Switch behaviour; CLOSED drops the listener, any other mode re-opens it."""
        previous, self._mode = self._mode, mode
        if mode is BannerMode.CLOSED:
            await self._close()  # sshd gone: its connections die with it
            self._hold_port()
            return
        if previous is BannerMode.CLOSED or self._server is None:
            await self._listen()
        if mode is BannerMode.SPEAK:
            for conn in list(self._conns):
                if conn.silent:
                    conn.speak()

    async def stop(self) -> None:
        """Close the listener and abort all connections; never waits on a client."""
        await self._close()
        self._release_port()

    async def __aenter__(self) -> BannerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _hold_port(self) -> None:
        """Keep the port bound, not listening: refused, and not free for another server."""
        if self._hold is not None or self._port == 0:
            return
        # Without SO_REUSEADDR, so that no server (asyncio sets it) can bind the port beside it.
        for reuse in (False, True):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                if reuse:  # a connection of the old listener lingers: hold it as we can
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self._port))
            except OSError:
                sock.close()  # best effort: the port is refused either way
                continue
            self._hold = sock
            return

    def _release_port(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.close()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._release_port()
        loop = asyncio.get_running_loop()
        # reuse_address lets the same port be bound again while old connections linger.
        self._server = await loop.create_server(
            lambda: _Conn(self), self.host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        """Stop listening, then abort every connection (no peer can hold us up)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.abort()
        self._conns.clear()
        if server is not None:
            # From Python 3.12 wait_closed() also waits for connections: bound it anyway.
            try:
                async with asyncio.timeout(1.0):
                    await server.wait_closed()
            except TimeoutError:
                pass
