"""The fake vLLM itself, seen through a plain HTTP client: shaped like vLLM, and well-behaved.

These pin the wire shapes the probes (and the demo) rely on, and the fake's own lifecycle:
the port survives mode changes, hung requests are logged and do not block stop().
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from watchdog.sim.vllm import FakeVllm, VllmMode

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
        "message": "The model `nvidia/nemotron-3-super` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    }


async def test_the_port_closes_while_loading_and_reopens_unchanged(
    fake: FakeVllm, http: httpx.AsyncClient
) -> None:
    port = fake.port
    await fake.set_mode(VllmMode.LOADING)
    with pytest.raises(httpx.ConnectError):
        await http.get(f"{fake.url}/health")
    await fake.set_mode(VllmMode.UNAVAILABLE)
    assert (await http.get(f"{fake.url}/health")).status_code == 503
    assert fake.port == port


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
