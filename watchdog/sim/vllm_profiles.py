"""How each vLLM version speaks: the per-version shapes the fake vLLM answers with.

Owns :class:`VllmProfile` and :data:`PROFILES` — 0.10 (0.10.0), 0.20 (0.20.0) and the newest
(0.33.0, standing for every version from 0.21 on) — and the bodies that differ between them:
error shapes, the reasoning field, the fingerprint, empty ``tool_calls``, engine death,
context-length errors and the ``/metrics`` text. Every shape is the one the named release's
source sends (its file and lines are cited beside each): JSON is written the way FastAPI's
``JSONResponse`` writes it (compact, UTF-8).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from watchdog.sim._httpserver import _Answer

PROMPT_TOKENS = 212  # what the fake says the probe's prompt costs
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class VllmProfile:
    """The observable differences of one vLLM release line."""

    version: str
    flat_errors: bool  # 0.10.0 serving_engine.py:431-453; nested from 0.10.1 (protocol.py:89-97)
    reasoning_field: str  # 0.10 reasoning_content (protocol.py:1584-1594), later reasoning
    fingerprint: bool  # set from 0.21 (entrypoints/openai/fingerprint.py:48-84), else null
    omit_empty_tool_calls: bool  # >= 0.21 leaves the key out (chat_completion/protocol.py:76-93)
    tool_id_hex: int  # chatcmpl-tool-<32 hex> in 0.10, <16 hex> in 0.33
    dead_health: int  # /health of a dead engine: 500 in 0.10 (async_llm.py:543-546), 503 after
    dead_chat: str | None  # chat message of a dead engine; None: 0.10's empty 500
    context_style: str  # "0.10", "0.20" or "0.33": which context-length message
    model_aliases: bool  # 0.33 names the valid aliases and param "model" on an unknown model
    created_samples: bool  # counters also expose <name>_created

    def error(self, status: int, message: str, kind: str, param: str | None = None) -> _Answer:
        """vLLM's ErrorResponse: flat in 0.10.0, nested under ``error`` from 0.10.1."""
        info = {"message": message, "type": kind, "param": param, "code": status}
        return vjson(status, {"object": "error", **info} if self.flat_errors else {"error": info})

    def tool_call_id(self) -> str:
        return f"chatcmpl-tool-{secrets.token_hex(self.tool_id_hex // 2)}"

    def fingerprint_of(self, tag: str, build: str) -> str | None:
        """``vllm-<version>-tp<N>-<hash8>`` from 0.21; no tp tag at TP=1 or in hash mode."""
        if not self.fingerprint:
            return None
        return "-".join(p for p in ("vllm", self.version, tag, build) if p)

    def context_error(self, max_tokens: int, max_model_len: int) -> _Answer | None:
        """The 400 for prompt + ``max_tokens`` over ``max_model_len``; None when it is served."""
        total = PROMPT_TOKENS + max_tokens
        if self.context_style == "0.33":  # renderers/params.py:272-284; smaller overruns clamp
            if max_tokens <= max_model_len:
                return None
            return self.error(
                400,
                f"max_tokens={max_tokens} cannot be greater than max_model_len={max_model_len}. "
                "Please request fewer output tokens.",
                "BadRequestError",
                "max_tokens",
            )
        if total <= max_model_len:
            return None
        if self.context_style == "0.20":  # renderers/params.py:419-430
            return self.error(
                400,
                f"This model's maximum context length is {max_model_len} tokens. However, you "
                f"requested {max_tokens} output tokens and your prompt contains {PROMPT_TOKENS} "
                f"input tokens, for a total of {total} tokens. Please reduce the length of the "
                "input prompt or the number of requested output tokens.",
                "BadRequestError",
                "input_tokens",
            )
        return self.error(  # 0.10.0 serving_engine.py:619-631
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {total} tokens ({PROMPT_TOKENS} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion.",
            "BadRequestError",
        )

    def unknown_model(self, asked: object, served: str) -> _Answer:
        message = f"The model `{asked}` does not exist."
        if self.model_aliases:  # 0.33.0 serve/engine/serving.py:54-84
            return self.error(404, f"{message} Valid aliases: {served}.", "NotFoundError", "model")
        return self.error(404, message, "NotFoundError")

    def dead_chat_answer(self) -> _Answer:
        if self.dead_chat is None:  # 0.10.0 entrypoints/launcher.py:137-147
            return _Answer(500, b"")
        return self.error(500, self.dead_chat, "InternalServerError")

    def metrics(self, model: str, running: float, generated: float, prompt: float) -> _Answer:
        """``GET /metrics``: the v1 engine's Prometheus text (names in v1/metrics/loggers.py)."""
        labels = f'engine="0",model_name="{model}"'
        lines = [
            "# HELP python_gc_objects_collected_total Objects collected during gc",
            "# TYPE python_gc_objects_collected_total counter",
            'python_gc_objects_collected_total{generation="0"} 1234.0',
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {running:.1f}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} 0.0",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{labels}}} {prompt:.1f}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{labels}}} {generated:.1f}",
        ]
        if self.created_samples:
            lines.append(f"vllm:generation_tokens_created{{{labels}}} 1.7e+09")
        lines += [
            "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.",
            "# TYPE vllm:e2e_request_latency_seconds histogram",
            *(
                f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="{le}"}} 0.0'
                for le in ("0.3", "1.0", "5.0", "+Inf")
            ),
            f"vllm:e2e_request_latency_seconds_count{{{labels}}} 0.0",
            f"vllm:e2e_request_latency_seconds_sum{{{labels}}} 0.0",
        ]
        return _Answer(200, ("\n".join(lines) + "\n").encode(), METRICS_TYPE)


def vjson(status: int, payload: object) -> _Answer:
    """A JSON body the way FastAPI's JSONResponse writes it."""
    return _Answer(status, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def model_list(served: str, max_model_len: int, build: str) -> dict[str, Any]:
    """``GET /v1/models``: the same in every version."""
    now = int(time.time())
    permission = {
        "id": f"modelperm-{build}",
        "object": "model_permission",
        "created": now,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card = {
        "id": served,
        "object": "model",
        "created": now,
        "owned_by": "vllm",
        "root": served,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
    return {"object": "list", "data": [card]}


V0_10 = VllmProfile(
    version="0.10.0",
    flat_errors=True,
    reasoning_field="reasoning_content",
    fingerprint=False,
    omit_empty_tool_calls=False,
    tool_id_hex=32,
    dead_health=500,
    dead_chat=None,
    context_style="0.10",
    model_aliases=False,
    created_samples=False,
)
V0_20 = replace(
    V0_10,
    version="0.20.0",
    flat_errors=False,
    reasoning_field="reasoning",
    dead_health=503,
    # 0.20.0 v1/engine/exceptions.py:13
    dead_chat="EngineCore encountered an issue. See stack trace (above) for the root cause.",
    context_style="0.20",
    created_samples=True,
)
V0_33 = replace(
    V0_20,
    version="0.33.0",
    fingerprint=True,
    omit_empty_tool_calls=True,
    tool_id_hex=16,
    # 0.33.0 v1/engine/exceptions.py CLIENT_MESSAGE (handlers/vllm_error.py:28-66)
    dead_chat="The server had an error while processing your request.",
    context_style="0.33",
    model_aliases=True,
)
PROFILES: dict[str, VllmProfile] = {"0.10": V0_10, "0.20": V0_20, "0.33": V0_33}
NEWEST = "0.33"


def profile_for(version: str) -> VllmProfile:
    """The profile that speaks like ``version`` (``0.10``, ``0.20.0``, ``0.21``, ``0.33.0``…).

    Versions before 0.20 speak like 0.10, 0.20.x like 0.20, and 0.21 or later like the newest;
    a full version (three parts) is reported as given by ``/version`` and the fingerprint.
    """
    parts = version.strip().split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(
            f"not a vLLM version: {version!r} (write e.g. 0.10, 0.20 or 0.33)"
        ) from None
    if (major, minor) < (0, 10):
        raise ValueError(f"vLLM {version} is older than any profile (0.10 is the oldest)")
    base = V0_10 if (major, minor) < (0, 20) else V0_20 if (major, minor) < (0, 21) else V0_33
    if len(parts) < 3:
        return base
    nested = base.flat_errors and (major, minor, parts[2]) != (0, 10, "0")  # 0.10.1 nests
    return replace(base, version=version.strip(), flat_errors=base.flat_errors and not nested)
