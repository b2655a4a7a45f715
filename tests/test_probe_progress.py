"""The engine-progress probe: /metrics read with prometheus-client, judged on a clock.

The judgement is pure and tested with time as a value; the probe is tested against the fake
vLLM of every version profile; and end to end, the real daemon sees a stalled engine (requests
running, no token generated, /health 200, no completion spent) as degraded — alerted, never
powered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.config import Endpoint
from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind
from watchdog.probes._http import Fault
from watchdog.probes.progress import (
    Progress,
    ProgressTracker,
    Sample,
    _wanted_lines,
    judge_progress,
    parse_sample,
    probe_progress,
)
from watchdog.probes.wire import WireClient
from watchdog.sim.harness import Harness
from watchdog.sim.vllm import PROFILES, FakeVllm, VllmMode

STALL = 120.0
A = "spark-1"


# ------------------------------------------------------------------ the judgement (pure)
def test_the_first_sample_is_never_a_stall() -> None:
    verdict = judge_progress(None, Sample(running=3, generated=10), now=0.0, stall_after=STALL)
    assert not verdict.stalled
    assert verdict.state == Progress(10, 0.0)


def test_a_counter_frozen_with_requests_running_stalls_after_stall_after() -> None:
    first = judge_progress(None, Sample(2, 500), 0.0, STALL).state
    early = judge_progress(first, Sample(2, 500), STALL - 1, STALL)
    late = judge_progress(early.state, Sample(2, 500), STALL, STALL)
    assert not early.stalled and early.still_for == STALL - 1
    assert late.stalled and late.still_for == STALL


def test_an_idle_engine_is_never_stalled() -> None:
    first = judge_progress(None, Sample(0, 500), 0.0, STALL).state
    idle = judge_progress(first, Sample(0, 500), 10 * STALL, STALL)
    assert not idle.stalled
    assert idle.state.since == 10 * STALL  # the still time starts only once requests run


def test_a_moving_counter_resets_the_still_time() -> None:
    state = judge_progress(None, Sample(1, 500), 0.0, STALL).state
    state = judge_progress(state, Sample(1, 500), 100.0, STALL).state
    moved = judge_progress(state, Sample(1, 501), 110.0, STALL)
    after = judge_progress(moved.state, Sample(1, 501), 200.0, STALL)
    assert not moved.stalled and moved.state.since == 110.0
    assert not after.stalled and after.still_for == 90.0


def test_a_counter_that_went_down_means_a_restart_not_a_stall() -> None:
    state = judge_progress(None, Sample(1, 500), 0.0, STALL).state
    restarted = judge_progress(state, Sample(1, 0), 500.0, STALL)
    assert not restarted.stalled and restarted.state == Progress(0, 500.0)


# ------------------------------------------------------------------ parsing
BODY = b"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 1.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 100.0
vllm:generation_tokens_total{engine="1",model_name="m"} 50.0
vllm:generation_tokens_created{engine="0",model_name="m"} 1.7e+09
"""


def test_samples_are_summed_over_engines_and_created_samples_ignored() -> None:
    assert parse_sample(BODY) == Sample(running=3, generated=150)


def test_other_metrics_are_never_parsed() -> None:
    # A broken line in a metric the probe does not read costs nothing and breaks nothing.
    noise = b"# TYPE other gauge\nother{le=broken 1 2 3 x\n" * 1000
    assert parse_sample(noise + BODY) == Sample(3, 150)


def test_a_metrics_body_without_the_vllm_metrics_is_unknown() -> None:
    assert parse_sample(b"# TYPE up gauge\nup 1\n") is None


def test_garbage_in_the_wanted_lines_is_a_bad_response() -> None:
    with pytest.raises(Fault) as caught:
        parse_sample(b"vllm:num_requests_running{engine=0 1\nvllm:generation_tokens_total 1\n")
    assert caught.value.kind is FailureKind.BAD_RESPONSE


# ------------------------------------------------------------------ against the fake vLLM
@pytest.fixture(params=sorted(PROFILES))
async def vllm(request: pytest.FixtureRequest) -> AsyncIterator[FakeVllm]:
    async with FakeVllm(vllm_version=request.param) as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[WireClient]:
    async with WireClient() as c:
        yield c


def endpoint(url: str, stall_after: float) -> Endpoint:
    return Endpoint(
        base_url=url,
        model="nvidia/nemotron-3-super",
        progress={"interval": "1s", "timeout": "1s", "stall_after": stall_after},
    )


async def test_the_probe_sees_a_stuck_engine_of_every_version_as_stalled(
    vllm: FakeVllm, client: WireClient
) -> None:
    ep = endpoint(vllm.url, stall_after=10.0)
    tracker = ProgressTracker()

    async def probe(now: float) -> tuple[FailureKind | None, str]:
        r = await probe_progress(client, ep, tracker, timeout=1.0, target="c", now=now)
        assert r.probe is ProbeKind.PROGRESS
        return r.failure, r.detail

    vllm.background = 2
    assert (await probe(0.0))[0] is None
    await asyncio.sleep(0.1)  # the background requests generate a few tokens
    assert (await probe(20.0))[0] is None  # generating: the counter moves
    await vllm.set_mode(VllmMode.ENGINE_STUCK)
    first, _ = await probe(21.0)  # still for 1 s
    still, _ = await probe(25.0)
    stalled, detail = await probe(31.0)
    assert (first, still, stalled) == (None, None, FailureKind.ENGINE_STALLED)
    assert detail.startswith("2 requests running, generation tokens stuck at")
    assert "for 11s (stall_after 10s)" in detail
    await vllm.set_mode(VllmMode.HEALTHY)
    await asyncio.sleep(0.05)
    assert (await probe(45.0))[0] is None
    assert ("GET", "/metrics", 200) in vllm.requests


async def test_the_probe_needs_no_key_and_reports_what_it_read(
    client: WireClient,
) -> None:
    async with FakeVllm(api_key="sk-secret") as fake:
        ep = endpoint(fake.url, stall_after=10.0)
        result = await probe_progress(
            client, ep, ProgressTracker(), timeout=1.0, target="c", now=0.0
        )
    assert result.ok, result
    assert result.detail == "0 running, 0 tokens generated"
    assert result.data == {"running": "0", "generated": "0"}


async def test_a_metrics_body_over_the_limit_is_not_read(client: WireClient) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        line = b'vllm:num_requests_running{engine="0"} 1\n' * 1000
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for _ in range(2000):
                writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(huge, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        ep = endpoint(url, stall_after=10.0)
        result = await probe_progress(
            client, ep, ProgressTracker(), timeout=2.0, target="c", now=0.0
        )
    assert result.failure is FailureKind.BAD_RESPONSE
    assert f"larger than {ep.max_response_bytes} bytes" in result.detail


async def test_a_missing_metrics_page_says_how_to_switch_the_probe_off(
    client: WireClient,
) -> None:
    async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_found, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        result = await probe_progress(
            client, endpoint(url, 10.0), ProgressTracker(), timeout=1.0, target="c", now=0.0
        )
    assert result.failure is FailureKind.HTTP_STATUS
    assert "endpoint.progress.enabled: false" in result.hint


# ------------------------------------------------------------------ the daemon, end to end
@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_a_stalled_engine_is_alerted_as_degraded_and_never_powered(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path) as h:
        doc = h.config()
        ep = doc["clusters"][0]["endpoint"]
        # The completion probe is off: only /metrics can see this engine stall.
        ep["tool_call"] = {"enabled": False}
        ep["progress"] = {"interval": "0.3s", "timeout": "0.25s", "stall_after": "1.5s"}
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()
        h.sim.vllm.background = 3  # users' requests in flight, generating
        await asyncio.sleep(1.0)
        assert h.node_class(A) == "healthy"  # a moving counter with requests running is fine
        await h.sim.set_endpoint_mode(VllmMode.ENGINE_STUCK)
        await h.wait_until(
            lambda: h.has_alert("sim", "degraded"),  # one alert for the cluster's endpoint
            30,
            "a degraded alert for the stalled engine",
        )
        alert = next(a for a in h.alerts() if a.get("condition") == "degraded")
        assert alert["failure"] == "engine_stalled"
        assert "generation tokens stuck" in alert["seen"]
        assert alert["todo"] == hint_for(FailureKind.ENGINE_STALLED)
        print(f"\nstall probe saw: {alert['seen']}\nalert said to do: {alert['todo']}")
        assert h.node_class(A) == h.node_class("spark-2") == "degraded"
        await asyncio.sleep(1.0)
        assert h.sim.power_record(A) == [] and h.sim.power_record("spark-2") == []
        assert not h.has_alert(A, "wedged")
        await h.sim.set_endpoint_mode(VllmMode.HEALTHY)  # the engine moves again
        await h.wait_until(lambda: h.has_alert("sim", "degraded", "resolve"), 30, "the resolve")


def test_a_page_with_too_many_lines_of_the_metrics_is_refused_cheaply() -> None:
    from watchdog.probes.progress import MAX_LINES

    line = b'vllm:generation_tokens_total{engine="0"} 1.0\n'
    with pytest.raises(Fault) as caught:
        parse_sample(BODY + line * MAX_LINES)
    assert caught.value.kind is FailureKind.BAD_RESPONSE
    assert str(MAX_LINES) in caught.value.detail


async def test_a_refused_metrics_endpoint_is_no_sample_not_a_failure_of_its_own() -> None:
    # Nothing listens (a reboot, a model load): the health probe reports that; a stale
    # "refused" here must not keep a recovered node suspect until the next progress probe.
    import socket

    from watchdog.config import parse_config
    from watchdog.probes.progress import ProgressTracker, probe_progress

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cfg = parse_config(
        f"clusters:\n  - name: c\n    endpoint: {{base_url: 'http://127.0.0.1:{port}', model: m}}\n"
        "    nodes: [{name: n, host: 127.0.0.1, plug: {type: dry_run}}]\n",
        env={},
    )
    async with WireClient() as client:
        result = await probe_progress(
            client, cfg.clusters[0].endpoint, ProgressTracker(), timeout=1.0, target="c", now=0.0
        )
    assert result.ok and "no sample (refused)" in result.detail, result


def _lines_split_and_stripped(body: bytes) -> str:
    """The wanted lines found one line at a time (how the filter was first written)."""
    from watchdog.probes.progress import _WANTED

    keep: list[bytes] = []
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith((b"# HELP ", b"# TYPE ")):
            parts = line.split(None, 3)
            name = parts[2] if len(parts) > 2 else b""
        elif line.startswith(b"#") or not line:
            continue
        else:
            head = line.split(b"{", 1)[0].split(None, 1)
            name = head[0] if head else b""  # a line that starts with "{" names nothing
        if name.decode("ascii", errors="replace") in _WANTED:
            keep.append(line)
    return b"\n".join(keep).decode("utf-8", errors="replace") + "\n"


_PIECES = [
    b"vllm:num_requests_running",
    b"vllm:generation_tokens",
    b"vllm:generation_tokens_total",
    b"vllm:generation_tokens_totally",
    b"vllm:generation_tokens_created",
    b"vllm:num_requests_waiting",
    b"# HELP ",
    b"# TYPE ",
    b"#",
    b"# HELP\t",
    b'{model_name="m",engine="0"}',
    b"{",
    b" ",
    b"\t",
    b"\x0b",
    b"\x0c",
    b"3",
    b" 150.0",
    b"counter",
    b"\n",
    b"\r\n",
    b"\r",
    "é".encode(),
    b"\xff",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_the_wanted_lines_are_those_a_line_by_line_split_would_keep(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    assert _wanted_lines(body) == _lines_split_and_stripped(body)


def test_a_page_with_thousands_of_lines_naming_the_metrics_is_a_bad_response() -> None:
    from watchdog.probes.progress import _CANDIDATES

    lines = b"".join(b'vllm:generation_tokens_created{n="%d"} 1\n' % i for i in range(5000))
    with pytest.raises(Fault) as caught:
        parse_sample(BODY + lines)
    assert caught.value.kind is FailureKind.BAD_RESPONSE
    assert str(_CANDIDATES) in caught.value.detail
