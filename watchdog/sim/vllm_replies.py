"""What the fake vLLM answers, per fault mode and version: routing, auth, and the bodies.

Owns :class:`VllmMode` and the pure part of :class:`watchdog.sim.vllm.FakeVllm`: given a request,
the current mode and the version profile (:mod:`watchdog.sim.vllm_profiles`), the status and
body that vLLM release would send. ``/health``, ``/version`` and ``/metrics`` are open (only
``/v1/*`` is guarded by the API key with ``401 {"error":"Unauthorized"}``); ``/health`` has an
empty body. ``/metrics`` counts the completion tokens the fake really served, plus a simulated
background load (``background`` requests generating tokens) that a stuck engine holds without
generating. Timing (hangs, delays, endless bodies, the process exiting after engine death) and
the socket are the server's business, not this module's.
"""

from __future__ import annotations

import json
import secrets
import time
from enum import StrEnum
from typing import Any

from watchdog.sim._httpserver import _Answer, _Request
from watchdog.sim.vllm_profiles import (
    NEWEST,
    PROFILES,
    PROMPT_TOKENS,
    VllmProfile,
    model_list,
    vjson,
)

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
    ENGINE_DEAD = "engine_dead"  # /health 500 (0.10) or 503, chat 500; then the process exits
    BUSY = "busy"  # 503 queue full on completions (max_num_queued_reqs)
    SCALING = "scaling"  # 503 "currently scaling" on everything but /health
    GENERATION_ERROR = "generation_error"  # 500 InternalServerError on completions
    CONTEXT_LENGTH = "context_length"  # --max-model-len 512: the probe's max_tokens is too big
    PREAMBLE = "preamble"  # healthy: text before a valid tool call in content (tool parser)
    AUTH = "auth"  # server key differs from anything a client sends
    MODEL_MISSING = "model_missing"  # serves another model id
    TOOL_CHOICE_DISABLED = "tool_choice_disabled"  # started without --enable-auto-tool-choice
    NO_TOOL_CALL = "no_tool_call"  # prose, tool_calls []
    BAD_ARGUMENTS = "bad_arguments"  # arguments '{location: Zurich'
    REASONING_LEAK = "reasoning_leak"  # <think> in arguments and content, no reasoning field
    TRUNCATED = "truncated"  # finish_reason length, no tool call
    WRONG_TOOL = "wrong_tool"  # calls get_time
    LOOP = "loop"  # the tool-result turn calls get_weather again
    WRONG_TOPOLOGY = "wrong_topology"  # fingerprint says tp1 (0.10/0.20: null, as always)
    BAD_RESPONSE = "bad_response"  # 200 with an HTML page (a proxy's default site)
    HUGE = "huge"  # 200 with a body streamed far beyond 1 MiB


_BUSY = (  # 0.33.0 exceptions.py:162-190
    "The engine is currently busy and cannot accept new requests. Please try again later or "
    "on a different instance."
)
_SCALING = {"error": "The model is currently scaling. Please try again later."}
_SMALL_CONTEXT = 512  # CONTEXT_LENGTH: --max-model-len below the probe's max_tokens
_CONTEXT = 262144
_BACKGROUND_RATE = 25.0  # tokens per second per running background request


class VllmReplies:
    """The answers of one fake vLLM endpoint in its current mode (``_mode``)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        topology_tag: str,
        profile: VllmProfile | None = None,
        reasoning_field: str | None = None,
    ) -> None:
        self.model = model
        self.profile = profile or PROFILES[NEWEST]
        self._api_key = api_key
        self._tag = topology_tag  # "" = no tp tag (TP=1, or --fingerprint-mode hash)
        self._reasoning_field = reasoning_field or self.profile.reasoning_field
        self._mode = VllmMode.HEALTHY
        self._auth_mode_key = secrets.token_hex(16)  # AUTH: nobody knows it
        self._build = secrets.token_hex(4)
        self.background = 0  # requests other clients keep running (see /metrics)
        self._generated = 0.0  # completion tokens served, background ones included
        self._prompted = 0.0
        self._bg_at = time.monotonic()
        self.in_flight = 0  # completions being answered or held right now

    def _route(self, req: _Request) -> _Answer | None:
        """The answer to ``req`` in the current mode; None means "stream a huge body"."""
        mode = self._mode
        if mode is VllmMode.BAD_RESPONSE:
            return _Answer(200, _HTML, "text/html")
        if req.path == "/health":
            if req.method != "GET":
                return vjson(405, {"detail": "Method Not Allowed"})
            # api_server.py:419-423: 200 with no body; a dead engine's status has none either.
            return _Answer(self.profile.dead_health if mode is VllmMode.ENGINE_DEAD else 200)
        if mode is VllmMode.SCALING:  # serve/elastic_ep/middleware.py:45-65
            return vjson(503, _SCALING)
        if req.path == "/version" and req.method == "GET":
            return vjson(200, {"version": self.profile.version})
        if req.path == "/metrics" and req.method == "GET":
            return self._metrics()
        if req.path.startswith("/v1/"):
            key = self._auth_mode_key if mode is VllmMode.AUTH else self._api_key
            if key and req.headers.get("authorization") != f"Bearer {key}":
                return vjson(401, {"error": "Unauthorized"})
            if mode is VllmMode.HUGE:
                return None
        if req.path == "/v1/models" and req.method == "GET":
            return vjson(200, self._model_list())
        if req.path == CHAT and req.method == "POST":
            return self._chat(req)
        if req.path in ("/v1/models", CHAT):
            return vjson(405, {"detail": "Method Not Allowed"})
        return vjson(404, {"detail": "Not Found"})

    def _metrics(self) -> _Answer:
        now = time.monotonic()
        stuck = self._mode in (VllmMode.ENGINE_STUCK, VllmMode.ENGINE_DEAD, VllmMode.HANG)
        if not stuck:
            self._generated += self.background * _BACKGROUND_RATE * (now - self._bg_at)
        self._bg_at = now
        running = self.background + self.in_flight
        if self._mode is VllmMode.ENGINE_STUCK:
            running = max(running, 1)  # a stuck engine holds the batch it was running
        tokens = float(int(self._generated))  # a token counter counts whole tokens
        return self.profile.metrics(self._served(), running, tokens, self._prompted)

    def _served(self) -> str:
        return _OTHER_MODEL if self._mode is VllmMode.MODEL_MISSING else self.model

    def _model_list(self) -> dict[str, Any]:
        return model_list(self._served(), self._max_model_len(), self._build)

    def _max_model_len(self) -> int:
        return _SMALL_CONTEXT if self._mode is VllmMode.CONTEXT_LENGTH else _CONTEXT

    def _chat(self, req: _Request) -> _Answer:
        p = self.profile
        mode = self._mode
        if mode is VllmMode.ENGINE_DEAD:
            return p.dead_chat_answer()
        try:
            payload = json.loads(req.body)
        except ValueError:
            return p.error(400, "JSON decode error", "BadRequestError")
        messages = payload.get("messages") if isinstance(payload, dict) else None
        if not isinstance(messages, list) or not messages:
            return p.error(400, "messages: Field required", "BadRequestError")
        if payload.get("model") != self._served():
            return p.unknown_model(payload.get("model"), self._served())
        # serving_chat.py:167-175: "auto" (the default with tools) needs the flags; a named
        # tool choice still works.
        auto = payload.get("tools") and payload.get("tool_choice", "auto") == "auto"
        if mode is VllmMode.TOOL_CHOICE_DISABLED and auto:
            return p.error(400, _TOOL_CHOICE_ERROR, "BadRequestError")
        max_tokens = payload.get("max_tokens")
        budget = max_tokens if isinstance(max_tokens, int) else 1024
        too_long = p.context_error(budget, self._max_model_len())
        if too_long is not None:
            return too_long
        if mode is VllmMode.BUSY:  # v1/engine/async_llm.py:325-383
            return p.error(503, _BUSY, "Service Unavailable")
        if mode is VllmMode.GENERATION_ERROR:  # generate/base/serving.py:200-207
            return p.error(500, "Internal server error", "InternalServerError")
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") == "tool":
            if not last.get("tool_call_id"):
                return p.error(400, "tool message: tool_call_id Field required", "BadRequestError")
            return vjson(200, self._completion(*self._after_tool()))
        return vjson(200, self._completion(*self._first_turn(budget)))

    def _first_turn(self, max_tokens: int) -> tuple[dict[str, Any], str, int]:
        mode = self._mode
        if mode is VllmMode.NO_TOOL_CALL:
            prose = f"To answer, I would call get_weather with {_WEATHER_ARGS}."
            return self._message(prose, [], _REASONING), "stop", 96
        if mode is VllmMode.TRUNCATED:
            return self._message(None, [], _REASONING[:40]), "length", max_tokens
        if mode is VllmMode.REASONING_LEAK:  # no --reasoning-parser: the thought goes astray
            leaked = f"<think>{_REASONING}</think>{_WEATHER_ARGS}"
            content = f"<think>{_REASONING}</think>"
            return (
                self._message(content, [self._call("get_weather", leaked)], None),
                "tool_calls",
                171,
            )
        if mode is VllmMode.PREAMBLE:  # hermes_tool_parser.py:103-108: text before the call
            preamble = "Let me look that up for you."
            call = [self._call("get_weather", _WEATHER_ARGS)]
            return self._message(preamble, call, _REASONING), "tool_calls", 166
        name, args = {
            VllmMode.BAD_ARGUMENTS: ("get_weather", "{location: Zurich"),
            VllmMode.WRONG_TOOL: ("get_time", '{"timezone": "Europe/Zurich"}'),
        }.get(mode, ("get_weather", _WEATHER_ARGS))
        return self._message(None, [self._call(name, args)], _REASONING), "tool_calls", 158

    def _after_tool(self) -> tuple[dict[str, Any], str, int]:
        mode = self._mode
        if mode is VllmMode.LOOP:
            return (
                self._message(None, [self._call("get_weather", _WEATHER_ARGS)], _REASONING),
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
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": calls,
            self._reasoning_field: reasoning,
        }
        if not calls and self.profile.omit_empty_tool_calls:
            del message["tool_calls"]
        return message

    def _call(self, name: str, arguments: str) -> dict[str, Any]:
        return {
            "id": self.profile.tool_call_id(),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    def _completion(self, message: dict[str, Any], finish: str, tokens: int) -> dict[str, Any]:
        tag = "tp1" if self._mode is VllmMode.WRONG_TOPOLOGY else self._tag
        self._generated += tokens
        self._prompted += PROMPT_TOKENS
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
                "prompt_tokens": PROMPT_TOKENS,
                "total_tokens": PROMPT_TOKENS + tokens,
                "completion_tokens": tokens,
                "prompt_tokens_details": None,
            },
            "prompt_logprobs": None,
            "system_fingerprint": self.profile.fingerprint_of(tag, self._build),
        }
