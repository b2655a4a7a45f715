"""The synthetic tool call, the tool-result round trip and the topology check (adapter layer).

Only a real completion proves an endpoint serves (design §2): these send the seed article's
``get_weather`` requests (steps 4b–4d) and classify the answer into the failure kinds of its
"Gotchas" table. The classification functions are pure and tested on their own.

Reasoning-leak rule (documented because models differ): a tool-call answer leaks when a
think-tag (``<think``, ``</think``) appears in ``content`` or in the arguments, or when
``content`` holds text next to the tool calls while neither ``reasoning`` nor
``reasoning_content`` holds any — the chain of thought went to the wrong field. Text in
``content`` next to a populated reasoning field is a model's preamble and tolerated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from watchdog.config import Endpoint
from watchdog.hints import hint_for
from watchdog.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._http import Exchange, Fault, Reply, one_line, run_probe, status_fault

CHAT = "/v1/chat/completions"
TOOL_NAME = "get_weather"
TOOL_PROMPT = "What is the current weather in Zurich? Call the get_weather tool to find out."
ROUND_TRIP_PROMPT = "What is the current weather in Zurich? Call the get_weather tool."
DEFAULT_ARGUMENTS = '{"location": "Zurich"}'
TOOL_RESULT = json.dumps({"location": "Zurich", "temp_c": 12, "condition": "cloudy"})
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Zurich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
_THINK_TAGS = ("<think", "</think")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What one 200 completion said, in the fields the checks read."""

    finish: object
    content: str
    reasoning: str
    calls: list[Any]
    meta: dict[str, str]  # fingerprint, completion_tokens


def _sampling(ep: Endpoint) -> dict[str, Any]:
    s = ep.sampling
    return {
        "model": ep.model,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
    }


def tool_call_request(ep: Endpoint) -> dict[str, Any]:
    """Article 4b: a prompt that forces one ``get_weather`` call."""
    return {
        **_sampling(ep),
        "tool_choice": "auto",
        "messages": [{"role": "user", "content": TOOL_PROMPT}],
        "tools": [WEATHER_TOOL],
    }


def round_trip_request(ep: Endpoint, call_id: str, arguments: str) -> dict[str, Any]:
    """Article 4d: the assistant turn echoed back without its reasoning, then the tool result."""
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": arguments},
    }
    return {
        **_sampling(ep),
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": ROUND_TRIP_PROMPT},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
        ],
    }


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _thinks(text: str) -> bool:
    low = text.lower()
    return any(tag in low for tag in _THINK_TAGS)


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
        kind = FailureKind.REASONING_LEAK if _thinks(seen.content) else FailureKind.NO_TOOL_CALL
        raise _fail(seen, kind, f"no tool_calls (finish_reason {seen.finish!r}); {said}")
    call = seen.calls[0]
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(function, dict):
        raise _fail(seen, FailureKind.BAD_RESPONSE, "tool_calls[0] has no function")
    name, arguments = function.get("name"), function.get("arguments")
    args_text = _text(arguments)
    if _thinks(args_text):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"think-tag in arguments: {args_text}")
    if _thinks(seen.content) or (seen.content.strip() and not seen.reasoning):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"reasoning in content: {said}")
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
    # The article's 4c check: arguments is a string that parses to an object.
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
    if _thinks(seen.content):
        raise _fail(seen, FailureKind.REASONING_LEAK, f"think-tag in the answer: {answer}")
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
    if reply.status == 404 and "model" in low and ("does not exist" in low or "not found" in low):
        return Fault(
            FailureKind.MODEL_MISSING,
            f"HTTP 404: {message}",
            f"the server does not serve {ep.model!r}: set endpoint.model to its "
            "--served-model-name (listed by GET /v1/models)",
        )
    return status_fault(reply, CHAT)


async def _tool_call(ex: Exchange, ep: Endpoint) -> tuple[str, dict[str, str]]:
    ex.step = "tool call"
    reply = await ex.request("POST", CHAT, auth=True, json_body=tool_call_request(ep))
    if reply.status != 200:
        raise chat_fault(reply, ep)
    return classify_tool_call(reply.json())


async def probe_tool_call(
    client: httpx.AsyncClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline (design §4)
    target: str,
) -> ProbeResult:
    """Article 4b/4c: one ``get_weather`` call with well-formed JSON-object arguments."""

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        return await _tool_call(ex, ep)

    return await run_probe(
        ProbeKind.TOOL_CALL, client, ep, timeout=timeout, target=target, body=body
    )


async def probe_round_trip(
    client: httpx.AsyncClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline (design §4)
    target: str,
    tool_call_id: str | None = None,
) -> ProbeResult:
    """Article 4d: feed a tool result back; the model must answer in text, not call again.

    Without ``tool_call_id`` a tool call is made first, inside the same deadline, so the id
    echoed back is one the server really issued.
    """

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        call_id, arguments = tool_call_id, DEFAULT_ARGUMENTS
        if call_id is None:
            try:
                _, first = await _tool_call(ex, ep)
            except Fault as fault:
                raise Fault(
                    fault.kind,
                    f"tool call before the round trip: {fault.detail}",
                    fault.hint,
                    fault.data,
                ) from None
            call_id, arguments = first["tool_call_id"], first["arguments"]
        ex.step = "tool-result turn"
        request = round_trip_request(ep, call_id, arguments)
        reply = await ex.request("POST", CHAT, auth=True, json_body=request)
        if reply.status != 200:
            raise chat_fault(reply, ep)
        detail, data = classify_round_trip(reply.json())
        return detail, {**data, "tool_call_id": call_id}

    return await run_probe(
        ProbeKind.ROUND_TRIP, client, ep, timeout=timeout, target=target, body=body
    )


def check_topology(tool_call: ProbeResult, ep: Endpoint, *, target: str) -> ProbeResult:
    """``system_fingerprint`` of the tool call carries ``ep.expect_fingerprint`` (e.g. ``tp2``).

    Pure. A tool call that failed before any completion was read leaves the topology unknown
    (PROBE_ERROR); one that read a completion but failed its own checks still carries a
    fingerprint (in ``data``), which is judged.
    """
    tag = ep.expect_fingerprint

    def result(failure: FailureKind | None, detail: str, hint: str = "") -> ProbeResult:
        return ProbeResult(
            ProbeKind.TOPOLOGY, target, failure, 0.0, detail, hint or hint_for(failure)
        )

    if tag is None:
        return result(None, "not configured")
    if "fingerprint" not in tool_call.data:
        return result(
            FailureKind.PROBE_ERROR,
            "no tool-call response to read the fingerprint from",
            f"fix the tool call first ({tool_call.failure})",
        )
    fingerprint = tool_call.data["fingerprint"]
    if not fingerprint:
        return result(
            FailureKind.WRONG_TOPOLOGY,
            f"the response carries no system_fingerprint; expected {tag!r}",
        )
    if tag in fingerprint:
        return result(None, f"fingerprint {fingerprint} carries {tag!r}")
    return result(FailureKind.WRONG_TOPOLOGY, f"fingerprint {fingerprint} lacks {tag!r}")
