"""A fake vLLM: an OpenAI-compatible HTTP server on loopback with switchable fault modes.

Owns the simulation of one serving endpoint for the tests and the demo. Responses are shaped
like vLLM's (field notes): ``/health`` is open and has an empty body, only ``/v1/*`` is guarded
by the API key with ``401 {"error": "Unauthorized"}``, other errors use the OpenAI shape
``{"error": {"message", "type", "param", "code"}}``, tool-call ids are ``chatcmpl-tool-<hex>``
and ``system_fingerprint`` carries the topology tag.

Plain asyncio streams, one request per connection (``Connection: close``): small, and it lets a
mode close the listening socket (model loading: refused) and re-open it on the same port, hang a
request forever, or stream a body without end — things a framework makes awkward. Hung
handlers wait on an event that :meth:`FakeVllm.stop` sets, and stop aborts every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from types import TracebackType
from typing import Any

CHAT = "/v1/chat/completions"
ANSWER = "It is 12°C and cloudy in Zurich."
HUGE_BYTES = 64 * 1024 * 1024
_MAX_REQUEST_BODY = 4 * 1024 * 1024
_OTHER_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
_TOOL_CHOICE_ERROR = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)
_HTML = b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body></body></html>"
_REASONING = "The user wants the current weather in Zurich, so I call get_weather."
_WEATHER_ARGS = '{"location": "Zurich"}'


class VllmMode(StrEnum):
    """What the fake server does; one per failure the watchdog must tell apart."""

    HEALTHY = "healthy"
    LOADING = "loading"  # listening socket closed: connection refused
    HANG = "hang"  # accepts, reads the request, never answers
    ENGINE_STUCK = "engine_stuck"  # /health and /v1/models fine, completions hang (vllm #49210)
    SLOW = "slow"  # every answer delayed by slow_delay
    UNAVAILABLE = "unavailable"  # 503 everywhere: dead engine
    AUTH = "auth"  # server key differs from anything a client sends
    MODEL_MISSING = "model_missing"  # serves another model id
    TOOL_CHOICE_DISABLED = "tool_choice_disabled"  # started without --enable-auto-tool-choice
    NO_TOOL_CALL = "no_tool_call"  # prose, tool_calls []
    BAD_ARGUMENTS = "bad_arguments"  # arguments '{location: Zurich'
    REASONING_LEAK = "reasoning_leak"  # <think> in content and arguments
    TRUNCATED = "truncated"  # finish_reason length, no tool call
    WRONG_TOOL = "wrong_tool"  # calls get_time
    LOOP = "loop"  # the tool-result turn calls get_weather again
    WRONG_TOPOLOGY = "wrong_topology"  # fingerprint says tp1
    BAD_RESPONSE = "bad_response"  # 200 with an HTML page (a proxy's default site)
    HUGE = "huge"  # 200 with a body streamed far beyond 1 MiB


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


def _error(status: int, message: str, kind: str) -> _Answer:
    return _json(
        status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
    )


class FakeVllm:
    """One fake vLLM endpoint; ``url`` is the base URL without ``/v1``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: str = "nvidia/nemotron-3-super",
        api_key: str | None = None,
        topology_tag: str = "tp2",
        reasoning_field: str = "reasoning",
        slow_delay: float = 2.0,
    ) -> None:
        self._host = host
        self._port = port
        self.model = model
        self._api_key = api_key
        self._tag = topology_tag
        self._reasoning_field = reasoning_field
        self.slow_delay = slow_delay
        self._mode = VllmMode.HEALTHY
        self._server: asyncio.Server | None = None
        self._started = False
        self._release = asyncio.Event()
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._auth_mode_key = secrets.token_hex(16)  # AUTH: nobody knows it
        self._build = secrets.token_hex(4)
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

    async def set_mode(self, mode: VllmMode) -> None:
        """Switch behaviour; LOADING closes the port, any other mode re-opens the same port."""
        self._mode = VllmMode(mode)
        if not self._started:
            return
        if self._mode is VllmMode.LOADING:
            self._unlisten()
        elif self._server is None:
            await self._listen()

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

    def _route(self, req: _Request) -> _Answer | None:
        """The answer to ``req`` in the current mode; None means "stream a huge body"."""
        mode = self._mode
        if mode is VllmMode.BAD_RESPONSE:
            return _Answer(200, _HTML, "text/html")
        if req.path == "/health":
            if req.method != "GET":
                return _json(405, {"detail": "Method Not Allowed"})
            return _Answer(503 if mode is VllmMode.UNAVAILABLE else 200)
        if mode is VllmMode.UNAVAILABLE:
            return _error(503, "EngineDeadError: engine core died", "ServiceUnavailableError")
        if req.path.startswith("/v1/"):
            key = self._auth_mode_key if mode is VllmMode.AUTH else self._api_key
            if key and req.headers.get("authorization") != f"Bearer {key}":
                return _json(401, {"error": "Unauthorized"})
            if mode is VllmMode.HUGE:
                return None
        if req.path == "/v1/models" and req.method == "GET":
            return _json(200, self._model_list())
        if req.path == CHAT and req.method == "POST":
            return self._chat(req)
        if req.path in ("/v1/models", CHAT):
            return _json(405, {"detail": "Method Not Allowed"})
        return _json(404, {"detail": "Not Found"})

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

    # ----------------------------------------------------------------- OpenAI API
    def _served(self) -> str:
        return _OTHER_MODEL if self._mode is VllmMode.MODEL_MISSING else self.model

    def _model_list(self) -> dict[str, Any]:
        served = self._served()
        return {
            "object": "list",
            "data": [
                {
                    "id": served,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "vllm",
                    "root": served,
                    "parent": None,
                    "max_model_len": 262144,
                }
            ],
        }

    def _chat(self, req: _Request) -> _Answer:
        try:
            payload = json.loads(req.body)
        except ValueError:
            return _error(400, "JSON decode error", "BadRequestError")
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages: Field required", "BadRequestError")
        if payload.get("model") != self._served():
            return _error(
                404, f"The model `{payload.get('model')}` does not exist.", "NotFoundError"
            )
        if self._mode is VllmMode.TOOL_CHOICE_DISABLED and payload.get("tools"):
            return _error(400, _TOOL_CHOICE_ERROR, "BadRequestError")
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "tool":
            if not last.get("tool_call_id"):
                return _error(400, "tool message: tool_call_id Field required", "BadRequestError")
            return _json(200, self._completion(*self._after_tool()))
        max_tokens = payload.get("max_tokens")
        return _json(
            200,
            self._completion(
                *self._first_turn(max_tokens if isinstance(max_tokens, int) else 1024)
            ),
        )

    def _first_turn(self, max_tokens: int) -> tuple[dict[str, Any], str, int]:
        mode = self._mode
        if mode is VllmMode.NO_TOOL_CALL:
            prose = f"To answer, I would call get_weather with {_WEATHER_ARGS}."
            return self._message(prose, [], _REASONING), "stop", 96
        if mode is VllmMode.TRUNCATED:
            return self._message(None, [], _REASONING[:40]), "length", max_tokens
        if mode is VllmMode.REASONING_LEAK:
            leaked = f"<think>{_REASONING}</think>{_WEATHER_ARGS}"
            content = f"<think>{_REASONING}</think>"
            return self._message(content, [_call("get_weather", leaked)], None), "tool_calls", 171
        name, args = {
            VllmMode.BAD_ARGUMENTS: ("get_weather", "{location: Zurich"),
            VllmMode.WRONG_TOOL: ("get_time", '{"timezone": "Europe/Zurich"}'),
        }.get(mode, ("get_weather", _WEATHER_ARGS))
        return self._message(None, [_call(name, args)], _REASONING), "tool_calls", 158

    def _after_tool(self) -> tuple[dict[str, Any], str, int]:
        mode = self._mode
        if mode is VllmMode.LOOP:
            return (
                self._message(None, [_call("get_weather", _WEATHER_ARGS)], _REASONING),
                "tool_calls",
                150,
            )
        if mode is VllmMode.TRUNCATED:
            return self._message(None, [], "The tool says"), "length", 1024
        if mode is VllmMode.REASONING_LEAK:
            return self._message(f"<think>Got it.</think>{ANSWER}", [], None), "stop", 40
        return self._message(ANSWER, [], "The tool returned 12 and cloudy."), "stop", 42

    def _message(
        self, content: str | None, calls: list[dict[str, Any]], reasoning: str | None
    ) -> dict[str, Any]:
        return {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": calls,
            self._reasoning_field: reasoning,
        }

    def _completion(self, message: dict[str, Any], finish: str, tokens: int) -> dict[str, Any]:
        tag = "tp1" if self._mode is VllmMode.WRONG_TOPOLOGY else self._tag
        return {
            "id": f"chatcmpl-{secrets.token_hex(16)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self._served(),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": 212,
                "total_tokens": 212 + tokens,
                "completion_tokens": tokens,
                "prompt_tokens_details": None,
            },
            "prompt_logprobs": None,
            "system_fingerprint": f"vllm-0.21.0+sim-{tag}-{self._build}",
        }


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-tool-{secrets.token_hex(16)}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


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
