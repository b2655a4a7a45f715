"""The synthetic tool call, the tool-result round trip and the topology check (adapter layer).

Only a real completion proves an endpoint serves: these send the ``get_weather`` requests of
steps 4b–4d (docs/design.md, "The endpoint steps") and classify the answer into failure
kinds. The classification functions are pure and tested on their own: they live in
:mod:`watchdog.probes._chat` (re-exported here), which also documents the reasoning-leak rule.
This module owns the requests, the probes that send them, and the topology check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from watchdog.config import Endpoint
from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._chat import (
    CHAT,
    TOOL_NAME,
    chat_fault,
    classify_round_trip,
    classify_tool_call,
)
from watchdog.probes._http import Exchange, Fault, run_probe
from watchdog.probes.wire import WireClient

__all__ = [
    "CHAT",
    "DEFAULT_ARGUMENTS",
    "ROUND_TRIP_PROMPT",
    "TOOL_NAME",
    "TOOL_PROMPT",
    "TOOL_RESULT",
    "WEATHER_TOOL",
    "chat_fault",
    "check_topology",
    "classify_round_trip",
    "classify_tool_call",
    "probe_round_trip",
    "probe_tool_call",
    "round_trip_request",
    "tool_call_request",
]

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


async def _tool_call(ex: Exchange, ep: Endpoint) -> tuple[str, dict[str, str]]:
    ex.step = "tool call"
    reply = await ex.request("POST", CHAT, auth=True, json_body=tool_call_request(ep))
    if reply.status != 200:
        raise chat_fault(reply, ep)
    return classify_tool_call(reply.json())


async def probe_tool_call(
    client: WireClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
    target: str,
) -> ProbeResult:
    """Article 4b/4c: one ``get_weather`` call with well-formed JSON-object arguments."""

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        return await _tool_call(ex, ep)

    return await run_probe(
        ProbeKind.TOOL_CALL, client, ep, timeout=timeout, target=target, body=body
    )


async def probe_round_trip(
    client: WireClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
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


_TP_TAG = re.compile(r"(?:^|-)(tp\d+)(?:-|$)")
UNVERIFIABLE = (
    "for a verifiable one run vLLM >= 0.21 with --fingerprint-mode full (the default there)"
)


def check_topology(tool_call: ProbeResult, ep: Endpoint, *, target: str) -> ProbeResult:
    """``system_fingerprint`` of the tool call carries ``ep.expect_fingerprint`` (e.g. ``tp2``).

    Pure. vLLM before 0.21 sends a null fingerprint; from 0.21 it reads
    ``vllm-<version>-tp<N>-<hash8>``, without the ``tp`` tag at TP=1 or with
    ``--fingerprint-mode hash``. So only a *present* parallelism tag that differs is
    WRONG_TOPOLOGY; a null or tag-less fingerprint leaves the topology unknown — a passing
    result whose detail says so, never a failure. A tool call that failed before any completion
    was read leaves it unknown too (PROBE_ERROR, dropped by the suite); one that read a
    completion but failed its own checks still carries a fingerprint (in ``data``), which is
    judged.
    """
    tag = ep.expect_fingerprint

    def result(failure: FailureKind | None, detail: str, hint: str = "") -> ProbeResult:
        data = {"fingerprint": tool_call.data.get("fingerprint", "")}
        return ProbeResult(
            ProbeKind.TOPOLOGY, target, failure, 0.0, detail, hint or hint_for(failure), data
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
            None,
            f"unknown: the server sends no system_fingerprint (vLLM < 0.21, or "
            f"--fingerprint-mode none); cannot verify {tag!r}; {UNVERIFIABLE}",
        )
    if tag in fingerprint:
        return result(None, f"fingerprint {fingerprint} carries {tag!r}")
    wanted_tp = _TP_TAG.search(tag)
    found_tp = _TP_TAG.search(fingerprint)
    if found_tp is None:
        return result(
            None,
            f"unknown: fingerprint {fingerprint} has no tp tag (TP=1 or --fingerprint-mode "
            f"hash); cannot verify {tag!r}; {UNVERIFIABLE}",
        )
    if wanted_tp is None:  # a non-topology expectation: plain substring
        return result(FailureKind.WRONG_TOPOLOGY, f"fingerprint {fingerprint} lacks {tag!r}")
    return result(
        FailureKind.WRONG_TOPOLOGY,
        f"fingerprint {fingerprint} says {found_tp.group(1)}, expected {tag!r}",
    )
