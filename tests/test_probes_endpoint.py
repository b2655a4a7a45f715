"""Endpoint probes against real HTTP servers on loopback: the fake vLLM and small scripted ones.

Every fault mode of the fake, in every vLLM version profile it speaks (the ``vllm`` fixture is
parametrized over them), maps to the failure kind the policy relies on, each with a hint;
hung and dripping servers are cut at the caller's deadline; oversized bodies are not read to the
end; the API key never shows up in a result.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fixtures_sim import TLS
from pydantic import SecretStr

from watchdog.config import Endpoint
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes import (
    check_topology,
    probe_health,
    probe_models,
    probe_round_trip,
    probe_tool_call,
    wire,
)
from watchdog.probes.toolcall import classify_round_trip, classify_tool_call
from watchdog.probes.wire import WireClient
from watchdog.sim.vllm import HUGE_BYTES, PROFILES, FakeVllm, VllmMode

KEY = "sk-watchdog-test-7f3a9c1e-DO-NOT-LEAK"
MODEL = "nvidia/nemotron-3-super"
OK_TIMEOUT = 3.0  # generous: a healthy loopback answer takes milliseconds
HANG_TIMEOUT = 0.3
MARGIN = 0.5

Probe = Callable[..., Awaitable[ProbeResult]]
PROBES: dict[str, Probe] = {
    "health": probe_health,
    "models": probe_models,
    "tool_call": probe_tool_call,
    "round_trip": probe_round_trip,
}
F = FailureKind


def endpoint(base_url: str, *, key: str | None = KEY, **fields: Any) -> Endpoint:
    ep = Endpoint(**{"base_url": base_url, "model": MODEL, "expect_fingerprint": "tp2", **fields})
    return ep.model_copy(update={"api_key": SecretStr(key) if key else None})


@pytest.fixture(params=sorted(PROFILES))
async def vllm(request: pytest.FixtureRequest) -> AsyncIterator[FakeVllm]:
    # A dead engine's process exit is timed in its own test; here the dead server stays up.
    fake = FakeVllm(api_key=KEY, slow_delay=2.0, vllm_version=request.param, dead_exit_after=None)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client() -> AsyncIterator[WireClient]:
    async with WireClient(TLS) as c:
        yield c


async def run(probe: str, client: WireClient, ep: Endpoint, timeout: float) -> ProbeResult:
    return await PROBES[probe](client, ep, timeout=timeout, target="cluster main")


# ----------------------------------------------------------------- every mode, every probe
_ALL = ("health", "models", "tool_call", "round_trip")
_PARSER = ("tool_call", "round_trip")
EXPECTED: dict[VllmMode, dict[str, FailureKind | None]] = {
    VllmMode.HEALTHY: dict.fromkeys(_ALL),
    VllmMode.LOADING: dict.fromkeys(_ALL, F.REFUSED),
    VllmMode.ENGINE_DEAD: {**dict.fromkeys(_ALL, F.ENGINE_DEAD), "models": None},
    VllmMode.SCALING: {"health": None, **dict.fromkeys(_ALL[1:], F.SCALING)},
    VllmMode.PREAMBLE: dict.fromkeys(_ALL),
    VllmMode.AUTH: {"health": None, "models": F.AUTH, "tool_call": F.AUTH, "round_trip": F.AUTH},
    VllmMode.MODEL_MISSING: {"health": None, **dict.fromkeys(_ALL[1:], F.MODEL_MISSING)},
    VllmMode.BAD_RESPONSE: {"health": None, **dict.fromkeys(_ALL[1:], F.BAD_RESPONSE)},
    VllmMode.HUGE: {"health": None, **dict.fromkeys(_ALL[1:], F.BAD_RESPONSE)},
    VllmMode.LOOP: {"health": None, "models": None, "tool_call": None, "round_trip": F.LOOP},
    VllmMode.WRONG_TOPOLOGY: dict.fromkeys(_ALL),
    **{
        mode: {"health": None, "models": None, **dict.fromkeys(_PARSER, kind)}
        for mode, kind in [
            (VllmMode.TOOL_CHOICE_DISABLED, F.TOOL_CHOICE_DISABLED),
            (VllmMode.NO_TOOL_CALL, F.NO_TOOL_CALL),
            (VllmMode.BAD_ARGUMENTS, F.BAD_ARGUMENTS),
            (VllmMode.REASONING_LEAK, F.REASONING_LEAK),
            (VllmMode.TRUNCATED, F.TRUNCATED),
            (VllmMode.WRONG_TOOL, F.WRONG_TOOL),
            (VllmMode.BUSY, F.ENGINE_BUSY),
            (VllmMode.GENERATION_ERROR, F.GENERATION_ERROR),
            (VllmMode.CONTEXT_LENGTH, F.CONTEXT_LENGTH),
        ]
    },
}
CASES = [
    pytest.param(mode, probe, kind, id=f"{mode}-{probe}")
    for mode, row in EXPECTED.items()
    for probe, kind in row.items()
]


@pytest.mark.parametrize(("mode", "probe", "expected"), CASES)
async def test_each_probe_reports_the_failure_kind_of_each_fault_mode_with_a_hint(
    vllm: FakeVllm,
    client: WireClient,
    mode: VllmMode,
    probe: str,
    expected: FailureKind | None,
) -> None:
    await vllm.set_mode(mode)
    result = await run(probe, client, endpoint(vllm.url), OK_TIMEOUT)
    assert result.failure == expected, result
    assert result.probe == ProbeKind(probe)
    assert result.target == "cluster main"
    assert 0 <= result.latency < OK_TIMEOUT
    assert result.detail
    if expected is None:
        assert result.ok and not result.hint
    else:
        assert result.hint, "a failure must say what to fix"
    if mode is not VllmMode.LOADING:
        assert vllm.requests, "the probe must really have reached the server"


def test_the_table_covers_every_mode_of_the_fake() -> None:
    timed = {VllmMode.HANG, VllmMode.ENGINE_STUCK, VllmMode.SLOW}  # tested below, on a clock
    assert set(EXPECTED) | timed == set(VllmMode)


async def test_a_missing_model_hint_names_what_the_server_lists(
    vllm: FakeVllm, client: WireClient
) -> None:
    await vllm.set_mode(VllmMode.MODEL_MISSING)
    result = await probe_models(client, endpoint(vllm.url), timeout=OK_TIMEOUT, target="c")
    assert result.failure is F.MODEL_MISSING
    assert "meta-llama/Llama-3.1-8B-Instruct" in result.hint
    assert "--served-model-name" in result.hint


async def test_a_healthy_tool_call_hands_its_id_and_fingerprint_on(
    vllm: FakeVllm, client: WireClient
) -> None:
    result = await probe_tool_call(client, endpoint(vllm.url), timeout=OK_TIMEOUT, target="c")
    assert result.ok, result
    hex_digits = 16 if vllm.profile.fingerprint else 32
    assert len(result.data["tool_call_id"]) == len("chatcmpl-tool-") + hex_digits
    if vllm.profile.fingerprint:
        assert result.data["fingerprint"].startswith(f"vllm-{vllm.profile.version}-tp2-")
    else:
        assert result.data["fingerprint"] == ""  # null before 0.21
    assert json.loads(result.data["arguments"]) == {"location": "Zurich"}
    assert result.data["completion_tokens"] == "158"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (VllmMode.HEALTHY, None),
        (VllmMode.LOOP, F.LOOP),
        (VllmMode.TRUNCATED, F.TRUNCATED),
        (VllmMode.REASONING_LEAK, F.REASONING_LEAK),
    ],
)
async def test_the_round_trip_judges_the_tool_result_turn_with_a_given_id(
    vllm: FakeVllm, client: WireClient, mode: VllmMode, expected: FailureKind | None
) -> None:
    await vllm.set_mode(mode)
    result = await probe_round_trip(
        client,
        endpoint(vllm.url),
        timeout=OK_TIMEOUT,
        target="c",
        tool_call_id="chatcmpl-tool-given",
    )
    assert result.failure == expected, result
    assert vllm.requests == [("POST", "/v1/chat/completions", 200)]  # no tool call first
    if expected is None:
        assert "12°C" in result.data["answer"]
        assert result.data["uses_tool_result"] == "yes"


async def test_reasoning_in_reasoning_content_passes_like_reasoning(
    client: WireClient,
) -> None:
    async with FakeVllm(api_key=KEY, reasoning_field="reasoning_content") as fake:
        ep = endpoint(fake.url)
        tool = await probe_tool_call(client, ep, timeout=OK_TIMEOUT, target="c")
        trip = await probe_round_trip(client, ep, timeout=OK_TIMEOUT, target="c")
    assert tool.ok, tool
    assert trip.ok, trip


async def test_it_is_refused_while_loading_and_serves_again_on_the_same_port(
    vllm: FakeVllm, client: WireClient
) -> None:
    ep = endpoint(vllm.url)
    port = vllm.port
    await vllm.set_mode(VllmMode.LOADING)
    down = await probe_health(client, ep, timeout=OK_TIMEOUT, target="c")
    await vllm.set_mode(VllmMode.HEALTHY)
    up = await probe_health(client, ep, timeout=OK_TIMEOUT, target="c")
    assert down.failure is F.REFUSED
    assert "loading" in down.hint
    assert up.ok, up
    assert vllm.port == port


# ----------------------------------------------------------------- deadlines
@pytest.mark.parametrize(
    ("mode", "probe"),
    [(VllmMode.HANG, p) for p in _ALL]
    + [(VllmMode.ENGINE_STUCK, p) for p in _PARSER]
    + [(VllmMode.SLOW, p) for p in ("health", "round_trip")],
)
async def test_a_hung_endpoint_is_reported_as_timeout_within_the_deadline(
    vllm: FakeVllm, client: WireClient, mode: VllmMode, probe: str
) -> None:
    await vllm.set_mode(mode)
    started = time.monotonic()
    result = await run(probe, client, endpoint(vllm.url), HANG_TIMEOUT)
    wall = time.monotonic() - started
    assert result.failure is F.TIMEOUT, result
    assert HANG_TIMEOUT <= result.latency < HANG_TIMEOUT + MARGIN
    assert wall < HANG_TIMEOUT + MARGIN
    assert result.hint


async def test_a_stuck_engine_still_answers_health_and_models(
    vllm: FakeVllm, client: WireClient
) -> None:
    await vllm.set_mode(VllmMode.ENGINE_STUCK)
    ep = endpoint(vllm.url)
    assert (await probe_health(client, ep, timeout=HANG_TIMEOUT, target="c")).ok
    assert (await probe_models(client, ep, timeout=HANG_TIMEOUT, target="c")).ok
    stuck = await probe_tool_call(client, ep, timeout=HANG_TIMEOUT, target="c")
    assert stuck.failure is F.TIMEOUT
    assert ("POST", "/v1/chat/completions", 0) in vllm.requests


async def test_a_slow_endpoint_passes_when_the_deadline_allows_it(
    client: WireClient,
) -> None:
    async with FakeVllm(api_key=KEY, slow_delay=0.2) as fake:
        await fake.set_mode(VllmMode.SLOW)
        result = await probe_models(client, endpoint(fake.url), timeout=OK_TIMEOUT, target="c")
    assert result.ok, result
    assert result.latency >= 0.2


async def serve_script(
    script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    """A real loopback server that runs ``script`` per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    length = int(headers.get("content-length") or 0)
    return head[0], headers, await reader.readexactly(length) if length else b""


def http_response(status: str, body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
    return head.encode() + body


async def test_a_server_dripping_its_body_is_cut_at_the_deadline(
    client: WireClient,
) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10000\r\n\r\n")
        for _ in range(200):  # each byte well inside any per-read timeout
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.02)

    server, url = await serve_script(drip)
    async with server:
        result = await probe_models(client, endpoint(url), timeout=HANG_TIMEOUT, target="c")
    assert result.failure is F.TIMEOUT, result
    assert "reading the body" in result.detail
    assert result.latency < HANG_TIMEOUT + MARGIN


async def test_a_connect_that_never_completes_is_a_connect_timeout(
    client: WireClient,
) -> None:
    # A listener that never accepts, with its backlog full: Linux drops further SYNs, so the
    # handshake hangs exactly like a wedged host's.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))  # non-blocking: EINPROGRESS is expected
        fillers.append(filler)
    try:
        await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        result = await probe_health(client, endpoint(url), timeout=HANG_TIMEOUT, target="c")
    finally:
        for s in [*fillers, listener]:
            s.close()
    assert result.failure is F.CONNECT_TIMEOUT, result
    assert result.latency < HANG_TIMEOUT + MARGIN
    assert result.hint


# ----------------------------------------------------------------- bounded size
async def test_a_huge_body_is_rejected_without_reading_it_all(
    vllm: FakeVllm, client: WireClient
) -> None:
    await vllm.set_mode(VllmMode.HUGE)
    limit = 1_048_576
    tracemalloc.start()
    try:
        result = await probe_models(client, endpoint(vllm.url), timeout=OK_TIMEOUT, target="c")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await asyncio.sleep(0.2)  # let the server notice the hang-up
    assert result.failure is F.BAD_RESPONSE
    assert f"larger than {limit} bytes" in result.detail
    assert peak < 8 * limit, f"probe held {peak} bytes"
    assert vllm.bytes_streamed < HUGE_BYTES // 2, "the server was made to stream everything"


async def test_a_declared_oversized_body_is_rejected_before_reading(
    client: WireClient,
) -> None:
    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 50000000\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(5)  # never sends the rest: only the header can decide in time

    server, url = await serve_script(liar)
    async with server:
        result = await probe_models(client, endpoint(url), timeout=OK_TIMEOUT, target="c")
    assert result.failure is F.BAD_RESPONSE
    assert "Content-Length 50000000" in result.detail
    assert result.latency < 1.0


# ----------------------------------------------------------------- secrets
async def test_the_api_key_never_appears_in_any_result(vllm: FakeVllm, client: WireClient) -> None:
    ep = endpoint(vllm.url)
    results: list[ProbeResult] = []
    for mode in set(VllmMode) - {VllmMode.HANG, VllmMode.SLOW, VllmMode.ENGINE_STUCK}:
        await vllm.set_mode(mode)
        for probe in _ALL:
            results.append(await run(probe, client, ep, OK_TIMEOUT))
        results.append(check_topology(results[-2], ep, target="c"))
    assert any(r.failure is F.AUTH for r in results)
    for result in results:
        assert_no_key(result)


async def test_a_key_echoed_back_by_a_proxy_is_scrubbed(client: WireClient) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, _ = await read_request(reader)
        body = json.dumps({"error": f"bad gateway, you sent {headers['authorization']}"})
        writer.write(http_response("502 Bad Gateway", body.encode()))
        await writer.drain()

    server, url = await serve_script(echo)
    async with server:
        result = await probe_models(client, endpoint(url), timeout=OK_TIMEOUT, target="c")
    assert result.failure is F.HTTP_STATUS
    assert "502" in result.detail
    assert "Bearer ***" in result.detail
    assert_no_key(result)


def assert_no_key(result: ProbeResult) -> None:
    texts = [repr(result), result.detail, result.hint, result.target, *result.data.values()]
    for text in texts:
        assert KEY not in text
        assert KEY[:12] not in text, "not even part of it"


# ----------------------------------------------------------------- what is sent
async def test_it_sends_the_article_request_with_the_configured_sampling(
    client: WireClient,
) -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []
    answer = {
        "choices": [{"finish_reason": "stop", "message": {"content": "It is 12°C, cloudy."}}],
    }

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, headers, body = await read_request(reader)
        seen.append((line, headers, json.loads(body)))
        writer.write(http_response("200 OK", json.dumps(answer).encode()))
        await writer.drain()

    server, url = await serve_script(capture)
    ep = endpoint(url, sampling={"temperature": 0.6, "top_p": 0.9, "max_tokens": 2048})
    async with server:
        await probe_tool_call(client, ep, timeout=OK_TIMEOUT, target="c")
        trip = await probe_round_trip(
            client, ep, timeout=OK_TIMEOUT, target="c", tool_call_id="chatcmpl-tool-abc"
        )
    assert trip.ok, trip
    (line1, headers, first), (_, _, second) = seen
    assert line1 == "POST /v1/chat/completions HTTP/1.1"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert (first["model"], first["temperature"], first["top_p"], first["max_tokens"]) == (
        MODEL,
        0.6,
        0.9,
        2048,
    )
    assert first["tool_choice"] == "auto"
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert "Zurich" in first["messages"][0]["content"]
    assistant, tool = second["messages"][1:]
    assert assistant["content"] is None
    assert "reasoning" not in assistant and "reasoning_content" not in assistant
    assert assistant["tool_calls"][0]["id"] == "chatcmpl-tool-abc"
    assert tool == {
        "role": "tool",
        "tool_call_id": "chatcmpl-tool-abc",
        "content": '{"location": "Zurich", "temp_c": 12, "condition": "cloudy"}',
    }


async def test_health_sends_no_key_and_does_not_follow_redirects(
    client: WireClient,
) -> None:
    seen: list[dict[str, str]] = []

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, headers, _ = await read_request(reader)
        seen.append(headers)
        writer.write(
            http_response("301 Moved Permanently", b"", "location: http://127.0.0.1:9/\r\n")
        )
        await writer.drain()

    server, url = await serve_script(redirect)
    async with server:
        result = await probe_health(client, endpoint(url), timeout=OK_TIMEOUT, target="c")
    assert result.failure is F.HTTP_STATUS
    assert "redirect" in result.hint
    assert len(seen) == 1
    assert "authorization" not in seen[0]


# ----------------------------------------------------------------- topology (pure)
def tool_result(failure: FailureKind | None, **data: str) -> ProbeResult:
    return ProbeResult(ProbeKind.TOOL_CALL, "c", failure, 0.1, "seen", data=data)


@pytest.mark.parametrize(
    ("expect", "tool", "expected"),
    [
        (None, tool_result(F.TIMEOUT), None),
        ("tp2", tool_result(None, fingerprint="vllm-0.33.0-tp2-ab12cd34"), None),
        ("tp2", tool_result(None, fingerprint="vllm-0.33.0-tp1-ab12cd34"), F.WRONG_TOPOLOGY),
        ("tp2", tool_result(None, fingerprint="vllm-0.33.0-tp12-ab12cd34"), F.WRONG_TOPOLOGY),
        ("tp2", tool_result(None, fingerprint=""), None),
        ("tp2", tool_result(None, fingerprint="vllm-0.33.0-ab12cd34"), None),
        ("tp2", tool_result(F.TIMEOUT), F.PROBE_ERROR),
        ("tp2", tool_result(F.TRUNCATED, fingerprint="vllm-0.21.0-tp1-ab12cd34"), F.WRONG_TOPOLOGY),
    ],
    ids=[
        "not-configured",
        "match",
        "other-tp",
        "tp12-is-not-tp2",
        "null-is-unknown",
        "tagless-is-unknown",
        "no-response",
        "judged-anyway",
    ],
)
def test_topology_reads_the_fingerprint_of_the_tool_call(
    expect: str | None, tool: ProbeResult, expected: FailureKind | None
) -> None:
    ep = endpoint("http://127.0.0.1:8000", expect_fingerprint=expect)
    result = check_topology(tool, ep, target="cluster main")
    assert result.probe is ProbeKind.TOPOLOGY
    assert result.failure == expected
    assert result.detail
    assert bool(result.hint) == (expected is not None)
    if expected is None and tool.data.get("fingerprint") in ("", "vllm-0.33.0-ab12cd34"):
        assert result.detail.startswith("unknown")
        assert "--fingerprint-mode full" in result.detail and "0.21" in result.detail


async def test_topology_is_judged_only_where_the_version_sends_a_tp_tag(
    vllm: FakeVllm, client: WireClient
) -> None:
    ep = endpoint(vllm.url)
    healthy = await probe_tool_call(client, ep, timeout=OK_TIMEOUT, target="c")
    await vllm.set_mode(VllmMode.WRONG_TOPOLOGY)
    other = await probe_tool_call(client, ep, timeout=OK_TIMEOUT, target="c")
    assert check_topology(healthy, ep, target="c").ok
    verdict = check_topology(other, ep, target="c")
    if vllm.profile.fingerprint:
        assert verdict.failure is F.WRONG_TOPOLOGY
        assert "tp1" in verdict.detail
    else:  # 0.10 and 0.20 never send a fingerprint: unknown, never a failure
        assert verdict.ok and verdict.detail.startswith("unknown")


async def test_a_fingerprint_without_a_tp_tag_is_unknown(client: WireClient) -> None:
    async with FakeVllm(api_key=KEY, topology_tag="") as fake:  # TP=1 or --fingerprint-mode hash
        call = await probe_tool_call(client, endpoint(fake.url), timeout=OK_TIMEOUT, target="c")
    verdict = check_topology(call, endpoint(fake.url), target="c")
    assert call.data["fingerprint"].startswith("vllm-0.33.0-")
    assert verdict.ok and "no tp tag" in verdict.detail


async def test_health_shows_the_version_the_server_reports(
    vllm: FakeVllm, client: WireClient
) -> None:
    result = await probe_health(client, endpoint(vllm.url), timeout=OK_TIMEOUT, target="c")
    assert result.ok, result
    assert result.data["version"] == vllm.profile.version
    assert f"vLLM {vllm.profile.version}" in result.detail
    assert ("GET", "/version", 200) in vllm.requests


async def test_a_dead_engine_is_followed_by_the_process_exiting(
    client: WireClient,
) -> None:
    async with FakeVllm(api_key=KEY, vllm_version="0.10", dead_exit_after=0.3) as fake:
        ep = endpoint(fake.url)
        await fake.set_mode(VllmMode.ENGINE_DEAD)
        dead = await probe_health(client, ep, timeout=OK_TIMEOUT, target="c")
        await asyncio.sleep(0.6)
        gone = await probe_health(client, ep, timeout=OK_TIMEOUT, target="c")
        assert fake.exited
    assert dead.failure is F.ENGINE_DEAD
    assert "EngineDeadError" in dead.hint and "VLLM_KEEP_ALIVE_ON_ENGINE_DEATH" in dead.hint
    assert gone.failure is F.REFUSED


# ----------------------------------------------------------------- classification (pure)
def completion(message: dict[str, Any], finish: str = "tool_calls") -> dict[str, Any]:
    return {
        "choices": [{"message": message, "finish_reason": finish}],
        "system_fingerprint": "vllm-tp2",
    }


def call(arguments: object, name: str = "get_weather") -> list[dict[str, Any]]:
    return [
        {
            "id": "chatcmpl-tool-1",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
    ]


WEATHER = '{"location": "Zurich"}'


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (completion({"content": None, "tool_calls": call(WEATHER), "reasoning": "x"}), None),
        (
            completion(
                {
                    "content": "Let me check.",
                    "tool_calls": call(WEATHER),
                    "reasoning_content": "thinking",
                }
            ),
            None,
        ),
        (
            completion(
                {
                    "content": "The user wants weather, I will call the tool.",
                    "tool_calls": call(WEATHER),
                }
            ),
            None,
        ),
        (
            completion(
                {"content": "weather please</think>", "tool_calls": call(WEATHER), "reasoning": "x"}
            ),
            None,
        ),
        (
            completion({"content": "<think>the user wants</think>", "tool_calls": call(WEATHER)}),
            F.REASONING_LEAK,
        ),
        (
            completion({"content": None, "tool_calls": call(f"<think>hmm</think>{WEATHER}")}),
            F.REASONING_LEAK,
        ),
        (
            completion({"content": None, "tool_calls": call(f"I should pass Zurich. {WEATHER}")}),
            F.REASONING_LEAK,
        ),
        (
            completion({"content": "[THINK]hmm[/THINK]", "tool_calls": call(WEATHER)}),
            F.REASONING_LEAK,
        ),
        (completion({"content": "<think>hmm</think>"}, "stop"), F.REASONING_LEAK),
        (
            completion({"content": "<think>hmm</think>", "reasoning_content": "hmm"}, "stop"),
            F.NO_TOOL_CALL,
        ),
        (
            completion({"content": None, "tool_calls": call({"location": "Zurich"})}),
            F.BAD_ARGUMENTS,
        ),
        (completion({"content": None, "tool_calls": call('["Zurich"]')}), F.BAD_ARGUMENTS),
        (completion({"content": None, "tool_calls": None}, "stop"), F.NO_TOOL_CALL),
        (completion({"content": None, "tool_calls": call(WEATHER)}, "length"), F.TRUNCATED),
        (completion({"content": None, "tool_calls": call(WEATHER)}, "stop"), F.BAD_RESPONSE),
        ({"object": "error"}, F.BAD_RESPONSE),
        ({"choices": []}, F.BAD_RESPONSE),
    ],
    ids=[
        "clean",
        "preamble-with-reasoning",
        "prose-beside-a-call-passes",
        "marker-beside-a-reasoning-field-passes",
        "marker-in-content-without-reasoning",
        "marker-in-arguments",
        "prose-around-the-arguments",
        "mistral-marker",
        "think-only",
        "think-only-with-reasoning",
        "args-object",
        "args-array",
        "null-calls",
        "length-with-call",
        "stop-with-call",
        "no-choices",
        "empty-choices",
    ],
)
def test_tool_call_answers_are_classified_like_the_gotchas_table(
    payload: object, expected: FailureKind | None
) -> None:
    from watchdog.probes._http import Fault

    try:
        _, data = classify_tool_call(payload)
    except Fault as fault:
        assert fault.kind == expected
        assert fault.hint
    else:
        assert expected is None
        assert data["tool_call_id"] == "chatcmpl-tool-1"


@pytest.mark.parametrize(
    ("message", "finish", "expected"),
    [
        ({"content": "It is 12°C and cloudy."}, "stop", None),
        ({"content": ""}, "stop", F.BAD_RESPONSE),
        ({"content": None, "reasoning": "It is 12°C"}, "stop", F.BAD_RESPONSE),
        ({"content": None, "tool_calls": call(WEATHER)}, "tool_calls", F.LOOP),
        ({"content": "It is"}, "length", F.TRUNCATED),
    ],
    ids=["answer", "empty", "answer-in-reasoning", "loop", "length"],
)
def test_round_trip_answers_must_be_text_with_stop(
    message: dict[str, Any], finish: str, expected: FailureKind | None
) -> None:
    from watchdog.probes._http import Fault

    try:
        classify_round_trip(completion(message, finish))
    except Fault as fault:
        assert fault.kind == expected
    else:
        assert expected is None


# ----------------------------------------------------------------- transport errors (edge)
@pytest.mark.parametrize(
    ("error", "expected", "says"),
    [
        (ConnectionRefusedError(111, "refused"), F.REFUSED, "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), F.UNREACHABLE, "name resolution"),
        (OSError(113, "No route to host"), F.UNREACHABLE, "No route to host"),
        (OSError(101, "Network is unreachable"), F.UNREACHABLE, "Network is unreachable"),
        (OSError(99, "Cannot assign requested address"), F.UNREACHABLE, "cannot connect"),
    ],
    ids=["refused", "dns", "no-route", "net-unreachable", "other-os-error"],
)
async def test_connect_errors_are_translated_at_the_edge(
    error: OSError, expected: FailureKind, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS failures and unroutable hosts cannot be produced on loopback: raised by the connect.
    # A host name, not an address: a numeric host's address is known without asking.
    async def fail(*_a: object, **_k: object) -> None:
        raise error

    monkeypatch.setattr(wire, "addresses", fail)
    ep = endpoint("http://spark-9.invalid:9")
    result = await probe_health(WireClient(TLS), ep, timeout=OK_TIMEOUT, target="c")
    assert result.failure is expected
    assert says in result.detail and "GET /health" in result.detail
    assert result.hint


async def test_a_key_that_cannot_be_sent_is_a_probe_error_that_does_not_quote_it(
    vllm: FakeVllm, client: WireClient
) -> None:
    broken = f"{KEY}\n"  # a key file with a stray line break that config did not strip
    ep = endpoint(vllm.url, key=broken)
    result = await probe_models(client, ep, timeout=OK_TIMEOUT, target="c")
    assert result.failure is F.PROBE_ERROR
    assert "api_key" in result.hint
    assert_no_key(result)


async def test_a_reloaded_endpoint_is_asked_with_its_own_key_and_the_old_one_is_let_go() -> None:
    # An endpoint's requests are prepared once and kept by the client while the endpoint
    # lives; a reload brings new endpoint objects, which must not be sent the old key.
    import gc

    async with FakeVllm(api_key=KEY) as fake:
        client = WireClient()
        old = endpoint(fake.url)
        assert (await run("models", client, old, OK_TIMEOUT)).ok
        assert (await run("models", client, old, OK_TIMEOUT)).ok
        reloaded = endpoint(fake.url, key="sk-a-new-key-the-server-does-not-know")
        refused = await run("models", client, reloaded, OK_TIMEOUT)
        assert refused.failure is F.AUTH, refused
        assert len(client._memo) == 2
        del old
        gc.collect()
        assert len(client._memo) == 1  # the old endpoint's requests went with it
