"""What the fake vLLM answers, per fault mode: routing, auth, and the OpenAI-shaped bodies.

Owns :class:`VllmMode` and the pure part of :class:`watchdog.sim.vllm.FakeVllm`: given a request
and the current mode, the status and body a real vLLM would send (field notes). ``/health`` is
open and has an empty body, only ``/v1/*`` is guarded by the API key with
``401 {"error": "Unauthorized"}``, other errors use the OpenAI shape
``{"error": {"message", "type", "param", "code"}}``, tool-call ids are ``chatcmpl-tool-<hex>``
and ``system_fingerprint`` carries the topology tag. Timing (hangs, delays, endless bodies) and
the socket are the server's business, not this module's.
"""

from __future__ import annotations

import json
import secrets
import time
from enum import StrEnum
from typing import Any

from watchdog.sim._httpserver import _Answer, _json, _Request

CHAT = "/v1/chat/completions"
ANSWER = "It is 12°C and cloudy in Zurich."
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


def _error(status: int, message: str, kind: str) -> _Answer:
    return _json(
        status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
    )


class VllmReplies:
    """The answers of one fake vLLM endpoint in its current mode (``_mode``)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        topology_tag: str,
        reasoning_field: str,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._tag = topology_tag
        self._reasoning_field = reasoning_field
        self._mode = VllmMode.HEALTHY
        self._auth_mode_key = secrets.token_hex(16)  # AUTH: nobody knows it
        self._build = secrets.token_hex(4)

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
