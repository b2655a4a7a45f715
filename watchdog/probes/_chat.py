"""Pure judgement of chat-completion answers for the tool-call probes (adapter layer).

Owns the classification of the answers to steps 4b–4d (docs/design.md, "The endpoint steps")
into failure kinds: :func:`classify_tool_call` (4b/4c), :func:`classify_round_trip` (4d) and
:func:`chat_fault` for non-200 answers. No I/O: each takes what the server sent and returns a
healthy ``(detail, data)`` or raises/returns a :class:`~watchdog.probes._faults.Fault`.

Reasoning-leak rule (documented because models differ): a tool parser puts whatever the model
wrote before the call into ``content``, so prose beside a valid call is normal. A tool-call
answer leaks when the call's ``arguments`` hold reasoning — a reasoning marker (``<think>``,
``[THINK]``, a harmony analysis channel) or prose wrapped around the JSON object — or when
``content`` holds a reasoning marker while the message has no reasoning text in ``reasoning``
or ``reasoning_content`` (the chain of thought went to the wrong field: no reasoning parser).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from watchdog.config import Endpoint
from watchdog.core.model import FailureKind
from watchdog.probes._faults import Fault, Reply, one_line, status_fault

CHAT = "/v1/chat/completions"
TOOL_NAME = "get_weather"
# Lower-case markers models put around their chain of thought (DeepSeek/Qwen/Nemotron,
# Mistral's [THINK], gpt-oss's harmony channels).
_THINK_MARKERS = ("<think", "</think", "[think]", "[/think]", "<|channel|>analysis")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What one 200 completion said, in the fields the checks read."""

    finish: object
    content: str
    reasoning: str
    calls: list[Any]
    meta: dict[str, str]  # fingerprint, completion_tokens


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _thinks(text: str) -> bool:
    low = text.lower()
    return any(tag in low for tag in _THINK_MARKERS)


def _leaks(seen: _Seen) -> bool:
    """Reasoning markers in ``content`` while no reasoning field holds the reasoning."""
    return _thinks(seen.content) and not seen.reasoning.strip()


def _wrapped_json(arguments: str) -> bool:
    """Prose around a JSON object in the arguments: the model's reasoning leaked into them."""
    start, end = arguments.find("{"), arguments.rfind("}")
    if start < 0 or end < start:
        return False
    outside = (arguments[:start] + arguments[end + 1 :]).strip()
    return bool(outside) and _json_object(arguments[start : end + 1]) is not None


def _read(payload: object) -> _Seen:
    choices = payload.get("choices") if isinstance(payload, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if (
        not isinstance(payload, dict)
        or not isinstance(choice, dict)
        or not isinstance(message, dict)
    ):
        raise Fault(FailureKind.BAD_RESPONSE, "HTTP 200 without choices[0].message")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise Fault(FailureKind.BAD_RESPONSE, "message.tool_calls is not a list")
    meta = {"fingerprint": _text(payload.get("system_fingerprint"))}
    usage = payload.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        meta["completion_tokens"] = str(usage["completion_tokens"])
    # vLLM renamed reasoning_content to reasoning (PR #27752) and back in part: read either.
    reasoning = _text(message.get("reasoning")) or _text(message.get("reasoning_content"))
    return _Seen(choice.get("finish_reason"), _text(message.get("content")), reasoning, calls, meta)


def _fail(seen: _Seen, kind: FailureKind, detail: str, hint: str = "") -> Fault:
    # A completion was read: its fingerprint travels with the failure (see check_topology).
    return Fault(kind, detail, hint, seen.meta)


def _truncated(seen: _Seen) -> Fault:
    spent = seen.meta.get("completion_tokens", "?")
    return _fail(seen, FailureKind.TRUNCATED, f"finish_reason length after {spent} tokens")


def classify_tool_call(payload: object) -> tuple[str, dict[str, str]]:
    """Judge a 4b answer; ``(detail, data)`` if healthy, else :class:`Fault`."""
    seen = _read(payload)
    if seen.finish == "length":
        raise _truncated(seen)
    said = one_line(seen.content) or "no content"
    if not seen.calls:
        kind = FailureKind.REASONING_LEAK if _leaks(seen) else FailureKind.NO_TOOL_CALL
        raise _fail(seen, kind, f"no tool_calls (finish_reason {seen.finish!r}); {said}")
    call = seen.calls[0]
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(function, dict):
        raise _fail(seen, FailureKind.BAD_RESPONSE, "tool_calls[0] has no function")
    name, arguments = function.get("name"), function.get("arguments")
    args_text = _text(arguments)
    if _thinks(args_text):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"reasoning marker in arguments: {args_text}")
    if _wrapped_json(args_text):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"text around the arguments: {args_text}")
    if _leaks(seen):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"reasoning marker in content: {said}")
    if name != TOOL_NAME:
        raise _fail(seen, FailureKind.WRONG_TOOL, f"called {name!r} instead of {TOOL_NAME!r}")
    if _json_object(arguments) is None:
        raise _fail(seen, FailureKind.BAD_ARGUMENTS, f"arguments not a JSON object: {arguments!r}")
    if seen.finish != "tool_calls":
        raise _fail(
            seen,
            FailureKind.BAD_RESPONSE,
            f"finish_reason {seen.finish!r} with tool_calls, expected 'tool_calls'",
            "the tool-call parser did not close the call: check --tool-call-parser",
        )
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(seen, FailureKind.BAD_RESPONSE, "tool call without an id")
    data = {**seen.meta, "tool_call_id": call_id, "arguments": args_text}
    return f"{TOOL_NAME}({one_line(args_text, 80)})", data


def _json_object(arguments: object) -> dict[str, Any] | None:
    # Step 4c: arguments is a string that parses to an object.
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def classify_round_trip(payload: object) -> tuple[str, dict[str, str]]:
    """Judge a 4d answer: a text answer with ``finish_reason: stop``, not another call."""
    seen = _read(payload)
    if seen.finish == "length":
        raise _truncated(seen)
    if seen.calls:
        call = seen.calls[0]
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        raise _fail(seen, FailureKind.LOOP, f"called {name!r} again instead of answering")
    answer = one_line(seen.content)
    if _leaks(seen):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"reasoning marker in the answer: {answer}")
    if seen.finish != "stop" or not answer:
        raise _fail(
            seen,
            FailureKind.BAD_RESPONSE,
            f"finish_reason {seen.finish!r}, content {answer or 'empty'}",
            "no text answer to the tool result: check the reasoning parser (the answer may "
            "sit in the reasoning field) and the chat template",
        )
    uses = "12" in answer or "cloud" in answer.lower()
    data = {**seen.meta, "answer": answer, "uses_tool_result": "yes" if uses else "no"}
    return f"answered: {one_line(answer, 80)}", data


def chat_fault(reply: Reply, ep: Endpoint) -> Fault:
    """Classify a non-200 answer to a chat completion."""
    message = reply.error_text()
    low = message.lower()
    if reply.status == 400 and any(
        s in low for s in ("--enable-auto-tool-choice", "tool choice", "tool_choice")
    ):
        return Fault(FailureKind.TOOL_CHOICE_DISABLED, f"HTTP 400: {message}")
    # 0.10: "maximum context length is N tokens"; 0.33: "max_tokens=N cannot be greater than
    # max_model_len=M".
    if reply.status == 400 and (
        "maximum context length" in low or ("max_tokens" in low and "max_model_len" in low)
    ):
        return Fault(FailureKind.CONTEXT_LENGTH, f"HTTP 400: {message}")
    if reply.status == 404 and "model" in low and ("does not exist" in low or "not found" in low):
        return Fault(
            FailureKind.MODEL_MISSING,
            f"HTTP 404: {message}",
            f"the server does not serve {ep.model!r}: set endpoint.model to its "
            "--served-model-name (listed by GET /v1/models)",
        )
    return status_fault(reply, CHAT)
