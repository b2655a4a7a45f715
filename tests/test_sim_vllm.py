"""The fake vLLM itself, seen through a plain HTTP client: shaped like vLLM, and well-behaved.

These pin the wire shapes the probes (and the demo) rely on — per vLLM version, byte for byte
where the version's source fixes them — and the fake's own lifecycle:
the port survives mode changes, hung requests are logged and do not block stop().
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from watchdog.sim.vllm import PROFILES, FakeVllm, VllmMode
from watchdog.sim.vllm_profiles import profile_for

KEY = "sim-key-123"
CHAT = "/v1/chat/completions"
TOOL_REQUEST = {
    "model": "nvidia/nemotron-3-super",
    "messages": [{"role": "user", "content": "weather in Zurich?"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    "tool_choice": "auto",
}
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeVllm]:
    async with FakeVllm(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        yield client


async def test_it_listens_on_loopback_and_reports_its_base_url(fake: FakeVllm) -> None:
    assert fake.url == f"http://127.0.0.1:{fake.port}"
    assert fake.port > 0
    assert fake.mode is VllmMode.HEALTHY


async def test_health_is_open_and_only_v1_needs_the_key(
    fake: FakeVllm, http: httpx.AsyncClient
) -> None:
    health = await http.get(f"{fake.url}/health")
    denied = await http.get(f"{fake.url}/v1/models")
    wrong = await http.get(f"{fake.url}/v1/models", headers={"Authorization": "Bearer nope"})
    allowed = await http.get(f"{fake.url}/v1/models", headers=AUTH)
    assert (health.status_code, health.content) == (200, b"")
    assert (denied.status_code, denied.json()) == (401, {"error": "Unauthorized"})
    assert wrong.status_code == 401
    assert allowed.status_code == 200
    assert allowed.json()["data"][0]["id"] == "nvidia/nemotron-3-super"
    assert fake.requests[0] == ("GET", "/health", 200)


async def test_a_tool_call_is_shaped_like_vllms(fake: FakeVllm, http: httpx.AsyncClient) -> None:
    body = (await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)).json()
    choice = body["choices"][0]
    call = choice["message"]["tool_calls"][0]
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning"]
    assert call["id"].startswith("chatcmpl-tool-")
    assert call["function"] == {"name": "get_weather", "arguments": '{"location": "Zurich"}'}
    assert "-tp2-" in body["system_fingerprint"]
    assert body["usage"]["completion_tokens"] > 0


async def test_errors_use_the_openai_error_shape(fake: FakeVllm, http: httpx.AsyncClient) -> None:
    await fake.set_mode(VllmMode.TOOL_CHOICE_DISABLED)
    disabled = await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
    await fake.set_mode(VllmMode.MODEL_MISSING)
    missing = await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
    assert disabled.status_code == 400
    assert "--enable-auto-tool-choice" in disabled.json()["error"]["message"]
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "The model `nvidia/nemotron-3-super` does not exist. "
        "Valid aliases: meta-llama/Llama-3.1-8B-Instruct.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


async def test_the_port_closes_while_loading_and_reopens_unchanged(
    fake: FakeVllm, http: httpx.AsyncClient
) -> None:
    port = fake.port
    await fake.set_mode(VllmMode.LOADING)
    with pytest.raises(httpx.ConnectError):
        await http.get(f"{fake.url}/health")
    await fake.set_mode(VllmMode.ENGINE_DEAD)
    assert (await http.get(f"{fake.url}/health")).status_code == 503
    assert fake.port == port


# ------------------------------------------------------------------ per version, byte for byte
DEAD = {  # (/health status, chat 500 body) of a dead engine
    "0.10": (500, b""),
    "0.20": (
        503,
        b'{"error":{"message":"EngineCore encountered an issue. See stack trace (above) for the '
        b'root cause.","type":"InternalServerError","param":null,"code":500}}',
    ),
    "0.33": (
        503,
        b'{"error":{"message":"The server had an error while processing your request.",'
        b'"type":"InternalServerError","param":null,"code":500}}',
    ),
}
UNKNOWN_MODEL = {
    "0.10": b'{"object":"error","message":"The model `x` does not exist.",'
    b'"type":"NotFoundError","param":null,"code":404}',
    "0.20": b'{"error":{"message":"The model `x` does not exist.",'
    b'"type":"NotFoundError","param":null,"code":404}}',
    "0.33": b'{"error":{"message":"The model `x` does not exist. Valid aliases: '
    b'nvidia/nemotron-3-super.","type":"NotFoundError","param":"model","code":404}}',
}
CONTEXT = {  # max_tokens 1024 against --max-model-len 512, a 212-token prompt
    "0.10": b'{"object":"error","message":"This model\'s maximum context length is 512 tokens. '
    b"However, you requested 1236 tokens (212 in the messages, 1024 in the completion). Please "
    b'reduce the length of the messages or completion.","type":"BadRequestError","param":null,'
    b'"code":400}',
    "0.20": b'{"error":{"message":"This model\'s maximum context length is 512 tokens. However, '
    b"you requested 1024 output tokens and your prompt contains 212 input tokens, for a total of "
    b"1236 tokens. Please reduce the length of the input prompt or the number of requested "
    b'output tokens.","type":"BadRequestError","param":"input_tokens","code":400}}',
    "0.33": b'{"error":{"message":"max_tokens=1024 cannot be greater than max_model_len=512. '
    b'Please request fewer output tokens.","type":"BadRequestError","param":"max_tokens",'
    b'"code":400}}',
}


@pytest.fixture(params=sorted(PROFILES))
async def each(request: pytest.FixtureRequest) -> AsyncIterator[FakeVllm]:
    async with FakeVllm(api_key=KEY, vllm_version=request.param, dead_exit_after=None) as server:
        yield server


def short(fake: FakeVllm) -> str:
    return next(k for k, p in PROFILES.items() if p == fake.profile)


async def test_each_version_shapes_its_message_fingerprint_and_ids(
    each: FakeVllm, http: httpx.AsyncClient
) -> None:
    p = each.profile
    body = (await http.post(f"{each.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)).json()
    message = body["choices"][0]["message"]
    assert message[p.reasoning_field]
    assert {"reasoning", "reasoning_content"} - {p.reasoning_field} - set(message)
    call_id = message["tool_calls"][0]["id"]
    assert len(call_id.removeprefix("chatcmpl-tool-")) == p.tool_id_hex
    if p.fingerprint:
        assert body["system_fingerprint"].startswith(f"vllm-{p.version}-tp2-")
    else:
        assert body["system_fingerprint"] is None
    await each.set_mode(VllmMode.TRUNCATED)  # no call: [] before 0.21, the key left out after
    empty = (await http.post(f"{each.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)).json()
    message = empty["choices"][0]["message"]
    if p.omit_empty_tool_calls:
        assert "tool_calls" not in message
    else:
        assert message["tool_calls"] == []
    version = await http.get(f"{each.url}/version")
    assert version.content == f'{{"version":"{p.version}"}}'.encode()


async def test_each_version_sends_its_own_error_bytes(
    each: FakeVllm, http: httpx.AsyncClient
) -> None:
    v = short(each)
    unknown = await http.post(
        f"{each.url}{CHAT}", json={**TOOL_REQUEST, "model": "x"}, headers=AUTH
    )
    assert (unknown.status_code, unknown.content) == (404, UNKNOWN_MODEL[v])
    await each.set_mode(VllmMode.CONTEXT_LENGTH)
    too_long = await http.post(
        f"{each.url}{CHAT}", json={**TOOL_REQUEST, "max_tokens": 1024}, headers=AUTH
    )
    assert (too_long.status_code, too_long.content) == (400, CONTEXT[v])
    await each.set_mode(VllmMode.ENGINE_DEAD)
    health = await http.get(f"{each.url}/health")
    chat = await http.post(f"{each.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
    models = await http.get(f"{each.url}/v1/models", headers=AUTH)
    assert (health.status_code, health.content) == (DEAD[v][0], b"")
    assert (chat.status_code, chat.content) == (500, DEAD[v][1])
    assert models.status_code == 200
    await each.set_mode(VllmMode.SCALING)
    scaling = await http.get(f"{each.url}/v1/models", headers=AUTH)
    assert (scaling.status_code, scaling.content) == (
        503,
        b'{"error":"The model is currently scaling. Please try again later."}',
    )
    assert (await http.get(f"{each.url}/health")).status_code == 200


async def test_the_33_busy_and_generation_errors_are_nested(http: httpx.AsyncClient) -> None:
    async with FakeVllm(api_key=KEY, vllm_version="0.33") as fake:
        await fake.set_mode(VllmMode.BUSY)
        busy = await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
        await fake.set_mode(VllmMode.GENERATION_ERROR)
        failed = await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
    assert (busy.status_code, busy.content) == (
        503,
        b'{"error":{"message":"The engine is currently busy and cannot accept new requests. '
        b'Please try again later or on a different instance.","type":"Service Unavailable",'
        b'"param":null,"code":503}}',
    )
    assert (failed.status_code, failed.content) == (
        500,
        b'{"error":{"message":"Internal server error","type":"InternalServerError",'
        b'"param":null,"code":500}}',
    )


async def test_a_dead_engine_exits_and_the_port_refuses(http: httpx.AsyncClient) -> None:
    async with FakeVllm(vllm_version="0.20", dead_exit_after=0.2) as fake:
        await fake.set_mode(VllmMode.ENGINE_DEAD)
        assert (await http.get(f"{fake.url}/health")).status_code == 503
        await asyncio.sleep(0.4)
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{fake.url}/health")
        await fake.set_mode(VllmMode.HEALTHY)  # restarted
        assert (await http.get(f"{fake.url}/health")).status_code == 200


def metric(text: str, name: str) -> float:
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


async def test_metrics_count_served_tokens_and_freeze_while_stuck(
    each: FakeVllm, http: httpx.AsyncClient
) -> None:
    first = (await http.get(f"{each.url}/metrics")).text
    await http.post(f"{each.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH)
    second = (await http.get(f"{each.url}/metrics")).text
    assert (
        metric(second, "vllm:generation_tokens_total")
        - metric(first, "vllm:generation_tokens_total")
        == 158
    )
    assert metric(second, "vllm:num_requests_running") == 0
    each.background = 2
    await each.set_mode(VllmMode.ENGINE_STUCK)
    stuck = [(await http.get(f"{each.url}/metrics")).text for _ in range(2)]
    await asyncio.sleep(0.05)
    stuck.append((await http.get(f"{each.url}/metrics")).text)
    assert {metric(t, "vllm:generation_tokens_total") for t in stuck} == {
        metric(stuck[0], "vllm:generation_tokens_total")
    }
    assert metric(stuck[-1], "vllm:num_requests_running") == 2
    await each.set_mode(VllmMode.HEALTHY)
    await asyncio.sleep(0.05)
    moving = (await http.get(f"{each.url}/metrics")).text
    assert metric(moving, "vllm:generation_tokens_total") > metric(
        stuck[-1], "vllm:generation_tokens_total"
    )


@pytest.mark.parametrize(
    ("asked", "spoken", "flat"),
    [
        ("0.10", "0.10.0", True),
        ("0.10.1", "0.10.1", False),
        ("0.20", "0.20.0", False),
        ("0.21.0", "0.21.0", False),
        ("0.33", "0.33.0", False),
        ("0.40.2", "0.40.2", False),
    ],
)
def test_a_version_maps_to_the_profile_that_speaks_like_it(
    asked: str, spoken: str, flat: bool
) -> None:
    p = profile_for(asked)
    assert (p.version, p.flat_errors) == (spoken, flat)
    assert p.fingerprint == (asked >= "0.21")


@pytest.mark.parametrize("bad", ["latest", "0.9", "1"])
def test_a_version_no_profile_speaks_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"0\.10"):
        profile_for(bad)


async def test_hung_requests_are_logged_and_do_not_block_stop(http: httpx.AsyncClient) -> None:
    fake = FakeVllm()
    await fake.start()
    await fake.set_mode(VllmMode.HANG)
    hung = [asyncio.create_task(http.get(f"{fake.url}/health")) for _ in range(3)]
    while len(fake.requests) < 3:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await fake.stop()
    assert time.monotonic() - started < 1.0
    assert fake.requests == [("GET", "/health", 0)] * 3
    for task in hung:  # the clients see the connection end, not an answer
        with pytest.raises(httpx.HTTPError):
            await task


async def test_the_huge_body_stops_when_the_client_hangs_up(
    fake: FakeVllm, http: httpx.AsyncClient
) -> None:
    await fake.set_mode(VllmMode.HUGE)
    async with http.stream("GET", f"{fake.url}/v1/models", headers=AUTH) as resp:
        received = 0
        async for chunk in resp.aiter_raw():
            received += len(chunk)
            if received > 2_000_000:
                break
    await asyncio.sleep(0.2)
    sent = fake.bytes_streamed
    await asyncio.sleep(0.1)
    assert received > 2_000_000
    assert fake.bytes_streamed == sent, "still writing after the client left"


async def test_a_hung_request_ends_when_its_client_gives_up(
    fake: FakeVllm, http: httpx.AsyncClient
) -> None:
    await fake.set_mode(VllmMode.ENGINE_STUCK)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(f"{fake.url}{CHAT}", json=TOOL_REQUEST, headers=AUTH, timeout=0.2)
    for _ in range(100):
        if fake.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert fake.open_connections == 0
    assert fake.requests == [("POST", CHAT, 0)]
