"""A fake vLLM: an OpenAI-compatible HTTP server on loopback with switchable fault modes.

Owns the simulation of one serving endpoint for the tests and the demo: its listener, its
connections and the timing of each fault mode. What it answers in each mode — routing, auth and
vLLM-shaped bodies — is :class:`watchdog.sim.vllm_replies.VllmReplies`, which this builds on;
the HTTP framing is :mod:`watchdog.sim._httpserver`.

It speaks one vLLM version (``vllm_version``, default the newest profile; see
:mod:`watchdog.sim.vllm_profiles`). ENGINE_DEAD behaves like vLLM: the dead engine's answers
for ``dead_exit_after`` seconds, then the process exits and the port refuses (None: it stays up,
as with ``VLLM_KEEP_ALIVE_ON_ENGINE_DEATH``).

Plain asyncio streams, one request per connection (``Connection: close``): small, and it lets a
mode close the listening socket (model loading: refused) and re-open it on the same port, hang a
request forever, or stream a body without end — things a framework makes awkward. Hung
handlers wait on an event that :meth:`FakeVllm.stop` sets, and stop aborts every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from watchdog.sim._httpserver import _head, _read_request, _Request
from watchdog.sim.vllm_profiles import NEWEST, PROFILES, VllmProfile, profile_for
from watchdog.sim.vllm_replies import ANSWER, CHAT, VllmMode, VllmReplies

__all__ = ["ANSWER", "CHAT", "HUGE_BYTES", "NEWEST", "PROFILES", "FakeVllm", "VllmMode"]

HUGE_BYTES = 64 * 1024 * 1024


class FakeVllm(VllmReplies):
    """One fake vLLM endpoint; ``url`` is the base URL without ``/v1``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: str = "nvidia/nemotron-3-super",
        api_key: str | None = None,
        topology_tag: str = "tp2",
        vllm_version: str | VllmProfile = NEWEST,
        reasoning_field: str | None = None,
        slow_delay: float = 2.0,
        dead_exit_after: float | None = 5.0,
    ) -> None:
        profile = vllm_version if isinstance(vllm_version, VllmProfile) else None
        super().__init__(
            model=model,
            api_key=api_key,
            topology_tag=topology_tag,
            profile=profile or profile_for(str(vllm_version)),
            reasoning_field=reasoning_field,
        )
        self.dead_exit_after = dead_exit_after
        self._exit: asyncio.TimerHandle | None = None
        self.exited = False  # ENGINE_DEAD: the process has exited, the port refuses
        self._host = host
        self._port = port
        self.slow_delay = slow_delay
        self._server: asyncio.Server | None = None
        self._started = False
        self._release = asyncio.Event()
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status); hung: 0
        self.bytes_streamed = 0  # HUGE: body bytes actually handed to the socket

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def mode(self) -> VllmMode:
        return self._mode

    @property
    def open_connections(self) -> int:
        """Connections being served right now (hung ones included)."""
        return len(self._conns)

    async def start(self) -> None:
        self._release = asyncio.Event()
        await self._listen()  # binds even in LOADING, so the port is known and kept
        self._started = True
        if self._mode is VllmMode.LOADING:
            self._unlisten()

    async def stop(self) -> None:
        """Close the port and end every connection, hung ones included, within a second."""
        self._release.set()  # hung and slow handlers return
        if self._exit is not None:
            self._exit.cancel()
            self._exit = None
        self._unlisten()
        self._started = False
        for writer in self._conns.values():
            writer.transport.abort()  # a handler blocked in drain() or a read wakes with an error
        tasks = list(self._conns)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=1.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def set_version(self, vllm_version: str) -> None:
        """Speak like another vLLM version from the next request on (as after an upgrade)."""
        self.profile = profile_for(vllm_version)
        self._reasoning_field = self.profile.reasoning_field

    async def set_mode(self, mode: VllmMode) -> None:
        """Switch behaviour; LOADING closes the port, any other mode re-opens the same port.

        ENGINE_DEAD closes it ``dead_exit_after`` seconds later: the process has exited.
        """
        self._mode = VllmMode(mode)
        if self._exit is not None:
            self._exit.cancel()
            self._exit = None
        self.exited = False
        if not self._started:
            return
        if self._mode is VllmMode.LOADING:
            self._unlisten()
        elif self._server is None:
            await self._listen()
        if self._mode is VllmMode.ENGINE_DEAD and self.dead_exit_after is not None:
            loop = asyncio.get_running_loop()
            self._exit = loop.call_later(self.dead_exit_after, self._exited)

    def _exited(self) -> None:
        self._exit = None
        self.exited = True
        self._unlisten()

    async def __aenter__(self) -> FakeVllm:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    def _unlisten(self) -> None:
        # close() stops accepting at once; open connections (hung requests) live on, as in a
        # real process that is shutting down, until stop() ends them.
        if self._server is not None:
            self._server.close()
            self._server = None

    # ----------------------------------------------------------------- HTTP
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns[task] = writer
        try:
            request = await _read_request(reader)
            if request is not None:
                await self._handle(request, reader, writer)
            writer.close()  # flushes what is buffered, then closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nothing to answer
        finally:
            if task is not None:
                self._conns.pop(task, None)
            if not writer.is_closing():
                writer.transport.abort()  # cancelled or failed: never wait on the client

    async def _hold(self, reader: asyncio.StreamReader) -> None:
        """Never answer: wait until stop(), or until the client gives up and hangs up (so a
        long demo against a hung server does not pile up sockets)."""
        released = asyncio.ensure_future(self._release.wait())
        read: asyncio.Future[bytes] | None = None
        try:
            while not released.done():
                read = asyncio.ensure_future(reader.read(4096))
                await asyncio.wait({released, read}, return_when=asyncio.FIRST_COMPLETED)
                if read.done() and (read.exception() or not read.result()):
                    return  # EOF or reset: the client left
        finally:
            for waiter in (released, read):
                if waiter is not None and not waiter.done():
                    waiter.cancel()

    async def _handle(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        chat = req.path == CHAT
        self.in_flight += chat
        try:
            await self._answer(req, reader, writer)
        finally:
            self.in_flight -= chat

    async def _answer(
        self, req: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        mode = self._mode
        stuck = mode is VllmMode.ENGINE_STUCK and req.path == CHAT
        if mode is VllmMode.HANG or stuck:
            self.requests.append((req.method, req.path, 0))
            await self._hold(reader)
            return
        if mode is VllmMode.SLOW:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.slow_delay):
                    await self._release.wait()
        answer = self._route(req)
        if answer is None:
            await self._stream_huge(req, writer)
            return
        self.requests.append((req.method, req.path, answer.status))
        writer.write(_head(answer.status, answer.content_type, len(answer.body)) + answer.body)
        await writer.drain()

    async def _stream_huge(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        self.requests.append((req.method, req.path, 200))
        writer.write(_head(200, "application/json", None))
        piece = b'{"id": "padding-padding-padding", "object": "model"}, ' * 1200
        chunks = [b'{"object": "list", "data": [', *([piece] * (HUGE_BYTES // len(piece)))]
        for chunk in chunks:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()  # raises once the client hangs up: stop writing
            self.bytes_streamed += len(chunk)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
