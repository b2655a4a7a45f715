"""Hostile peers on loopback: every answer bounded in bytes and time, every fault classified.

Real servers speaking real HTTP and the real Kasa XOR framing, against the real httpx client
and both Kasa drivers (the native XOR one and python-kasa): decompression bombs, endless
bodies, a plug declaring a 1 GB answer, garbage, a dripping or hanging-up plug, wrong-typed
answers, lone surrogates and deep nesting. Memory is checked with tracemalloc
(what Python allocated while the exchange ran), time against the probe's own deadline.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from watchdog.alerts.base import DeliveryError, post
from watchdog.alerts.heartbeat import Heartbeat
from watchdog.commands.check import render_table, run_check
from watchdog.config import Endpoint, parse_config
from watchdog.config import Plug as PlugConfig
from watchdog.core.errors import PlugError, PlugFailure
from watchdog.core.model import FailureKind
from watchdog.plugs.cycle import power_cycle
from watchdog.plugs.cycle_steps import CycleStep
from watchdog.plugs.kasa import KasaPlug
from watchdog.plugs.kasa_wire import MAX_ANSWER
from watchdog.plugs.kasa_xor import XorKasaPlug
from watchdog.probes import make_client, probe_models, probe_tool_call
from watchdog.probes.wire import WireClient
from watchdog.sim.hostile import HostileHttp, HostileKasa, HttpAnswer, stacked_gzip
from watchdog.sim.kasa import xor_decrypt, xor_encrypt
from watchdog.sim.kasa_device import KasaDevice

KEY = "sk-hostile-test-9d2e7c41b8a0"
_LEN = struct.Struct(">I")
TIMEOUT = 2.0
MIB = 1024 * 1024


def endpoint(base_url: str) -> Endpoint:
    ep = Endpoint(base_url=base_url, model="m")
    return ep.model_copy(update={"api_key": SecretStr(KEY)})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[HttpAnswer], Any]]:
    servers: list[HostileHttp] = []

    async def start(answer: HttpAnswer) -> HostileHttp:
        server = HostileHttp(answer)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture
async def probes() -> AsyncIterator[WireClient]:
    async with WireClient() as c:
        yield c


class Peak:
    """Peak Python allocation while the block ran (tracemalloc), in bytes."""

    def __enter__(self) -> Peak:
        tracemalloc.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        self.seconds = time.monotonic() - self.started
        tracemalloc.stop()


# --------------------------------------------------------------------------- endpoint bodies
@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip", "deflate", "br"])
async def test_an_encoding_the_probe_did_not_ask_for_is_a_bad_response_and_never_inflated(
    serve: Any, probes: WireClient, encoding: str
) -> None:
    bomb = stacked_gzip(64 * MIB, layers=encoding.count("gzip") or 1)
    server = await serve(HttpAnswer(body=bomb, encoding=encoding))
    with Peak() as peak:
        result = await probe_models(
            probes, endpoint(server.url), timeout=TIMEOUT, target="cluster c"
        )
    assert result.failure is FailureKind.BAD_RESPONSE, result
    assert "Content-Encoding" in result.detail and "identity" in result.detail
    assert server.requests[0]["accept-encoding"] == "identity"
    assert peak.bytes < 8 * MIB, peak.bytes
    assert peak.seconds < TIMEOUT + 1


async def test_an_endless_body_is_cut_at_the_cap(serve: Any, probes: WireClient) -> None:
    server = await serve(HttpAnswer(endless=True))
    with Peak() as peak:
        result = await probe_tool_call(
            probes, endpoint(server.url), timeout=TIMEOUT, target="cluster c"
        )
    assert result.failure is FailureKind.BAD_RESPONSE, result
    assert "larger than" in result.detail
    assert peak.bytes < 8 * MIB


async def test_json_nested_beyond_the_parser_is_a_bad_response_not_a_probe_error(
    serve: Any, probes: WireClient
) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    server = await serve(HttpAnswer(body=deep))
    result = await probe_models(probes, endpoint(server.url), timeout=TIMEOUT, target="cluster c")
    assert result.failure is FailureKind.BAD_RESPONSE, result
    assert "nested too deeply" in result.detail


async def test_a_lone_surrogate_in_a_servers_json_is_made_printable_and_the_table_renders(
    serve: Any, tmp_path: Path
) -> None:
    body = b'{"data": [{"id": "evil\\ud800\\u001b[2J\\u0007model"}]}'
    server = await serve(HttpAnswer(body=body))
    cfg = parse_config(
        "clusters:\n  - name: c\n"
        f"    endpoint: {{base_url: '{server.url}', model: m, round_trip: false}}\n"
        "    nodes: [{name: n1, host: 127.0.0.1, ssh: {port: 1}, plug: {type: dry_run}}]\n"
    )
    rows = await run_check(cfg)
    models = next(r for r in rows if r.probe == "models")
    assert models.failure == FailureKind.MODEL_MISSING.value
    assert "\ud800" not in models.detail and "\x1b" not in models.detail
    assert "\ufffd" in models.detail
    table = render_table(rows)
    table.encode("utf-8")  # strict: a lone surrogate here would raise UnicodeEncodeError


# --------------------------------------------------------------------------- alert receivers
async def test_a_heartbeat_answering_without_end_fails_the_ping_in_bounded_memory(
    serve: Any, client: httpx.AsyncClient
) -> None:
    server = await serve(HttpAnswer(endless=True))
    beat = Heartbeat(SecretStr(server.url + "/ping/abc"), client, timeout=TIMEOUT)
    with Peak() as peak:
        assert await beat.ping() is False
    assert beat.failures == 1
    assert peak.bytes < 8 * MIB
    assert peak.seconds < TIMEOUT + 1


async def test_a_heartbeat_that_drips_is_cut_at_its_timeout(client: httpx.AsyncClient) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        try:
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.2)
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        beat = Heartbeat(SecretStr(f"http://127.0.0.1:{port}/p"), client, timeout=1.0)
        started = time.monotonic()
        assert await beat.ping() is False
        assert time.monotonic() - started < 2.0
    finally:
        server.close()


@pytest.mark.parametrize(
    "answer",
    [
        HttpAnswer(status=500, endless=True),
        HttpAnswer(status=502, body=stacked_gzip(64 * MIB), encoding="gzip"),
    ],
    ids=["endless error body", "gzip bomb as error body"],
)
async def test_an_alert_channels_error_answer_is_bounded(
    serve: Any, client: httpx.AsyncClient, answer: HttpAnswer
) -> None:
    server = await serve(answer)
    with Peak() as peak, pytest.raises(DeliveryError) as caught:
        await post(client, "webhook", server.url + "/hook", request_timeout=TIMEOUT, json={})
    assert caught.value.retryable
    assert f"HTTP {answer.status}" in str(caught.value) and "not read" in str(caught.value)
    assert peak.bytes < 8 * MIB
    assert peak.seconds < TIMEOUT + 1


@pytest.mark.parametrize(
    "answer",
    [
        HttpAnswer(status=202, endless=True),
        HttpAnswer(body=stacked_gzip(64 * MIB), encoding="gzip"),
    ],
    ids=["endless body", "gzip bomb"],
)
async def test_an_accepted_alert_is_delivered_without_reading_its_answer(
    serve: Any, client: httpx.AsyncClient, answer: HttpAnswer
) -> None:
    server = await serve(answer)
    with Peak() as peak:
        response = await post(
            client, "webhook", server.url + "/hook", request_timeout=TIMEOUT, json={}
        )
    assert response.is_success  # delivered once: a retry would page twice
    assert peak.bytes < 8 * MIB
    assert peak.seconds < TIMEOUT + 1


# --------------------------------------------------------------------------- plugs
AnyKasa = XorKasaPlug | KasaPlug
DRIVERS: dict[str, type[AnyKasa]] = {"native": XorKasaPlug, "python-kasa": KasaPlug}


def kasa(port: int, driver: type[AnyKasa] = KasaPlug, timeout: float = 2) -> AnyKasa:
    cfg = PlugConfig.model_validate(
        {"type": "kasa", "host": "127.0.0.1", "port": port, "timeout": timeout, "encryption": "xor"}
    )
    return driver(cfg, label="spark-1")


@pytest.fixture(params=sorted(DRIVERS))
async def hostile_plug(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Any]]:
    """``await hostile_plug(answer, declare=…)``: a HostileKasa and the driver under test."""
    driver = DRIVERS[request.param]
    made: list[tuple[HostileKasa, AnyKasa]] = []

    async def make(
        answer: Any = None, *, declare: int | None = None
    ) -> tuple[HostileKasa, AnyKasa]:
        device = HostileKasa(answer, declare=declare)
        await device.start()
        plug = kasa(device.port, driver)
        made.append((device, plug))
        return device, plug

    yield make
    for device, plug in made:
        await plug.close()
        await device.stop()


async def test_a_plug_declaring_a_1gb_answer_is_refused_before_it_is_read(
    hostile_plug: Callable[..., Any],
) -> None:
    device, plug = await hostile_plug(declare=1 << 30)
    with Peak() as peak, pytest.raises(PlugError) as caught:
        await plug.is_on()
    assert caught.value.kind is PlugFailure.PROTOCOL
    assert str(1 << 30) in str(caught.value) and str(MAX_ANSWER) in str(caught.value)
    assert peak.bytes < 8 * MIB
    assert peak.seconds < 2.0  # refused on the header: no timeout waited for
    assert device.queries >= 1


SYSINFO_NO_RELAY = {
    "system": {
        "get_sysinfo": {
            "alias": "x",
            "model": "HS110(EU)",
            "mic_type": "IOT.SMARTPLUGSWITCH",
            "sw_ver": "1.2.5",
            "hw_ver": "1.0",
            "deviceId": "1",
            "mac": "00:00:00:00:00:00",
            "feature": "TIM",
        }
    }
}


@pytest.mark.parametrize(
    "answer",
    [
        {"system": {"get_sysinfo": "a string"}},
        SYSINFO_NO_RELAY,
        ["not", "an", "object"],
        {"system": {"get_sysinfo": {"err_code": 0, "relay_state": {"deep": [1, 2]}}}},
    ],
    ids=["sysinfo is a string", "no relay_state", "a list", "relay_state an object"],
)
async def test_a_wrong_typed_plug_answer_is_a_plug_error_never_a_crash(
    hostile_plug: Callable[..., Any], answer: Any
) -> None:
    _, plug = await hostile_plug(answer)
    reading = await plug.read()
    assert not reading.reachable
    assert reading.failure is FailureKind.PLUG_ERROR, reading
    with pytest.raises(PlugError) as caught:
        await plug.is_on()
    assert caught.value.kind in (PlugFailure.PROTOCOL, PlugFailure.NO_OUTLET)


class ScriptedKasa:
    """A legacy Kasa plug (an emulated HS110's firmware) whose n-th connection does what
    ``script(n)`` says to each request: "answer", "once" (answer, then close the connection),
    "garbage" (framed bytes that are no enciphered JSON), "close" (hang up without a word) or
    "drip" (declare 1000 bytes, send one every 50 ms)."""

    def __init__(self, script: Callable[[int], str]) -> None:
        self.script = script
        self.device = KasaDevice("HS110(EU)_1.0_1.2.5", initial_on=True)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        how = self.script(self.connections)
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                request = json.loads(xor_decrypt(await reader.readexactly(length)))
                if how == "close":
                    return
                if how == "garbage":
                    writer.write(_LEN.pack(64) + b"\xfe" * 64)
                elif how == "drip":
                    writer.write(_LEN.pack(1000))
                    for _ in range(1000):
                        writer.write(b"\x01")
                        await writer.drain()
                        await asyncio.sleep(0.05)
                else:
                    writer.write(xor_encrypt(json.dumps(self.device.handle(request)).encode()))
                await writer.drain()
                if how == "once":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Any]]:
    made: list[ScriptedKasa] = []

    async def make(script: Callable[[int], str]) -> ScriptedKasa:
        peer = ScriptedKasa(script)
        await peer.start()
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.stop()


@pytest.mark.parametrize("driver", DRIVERS.values(), ids=DRIVERS.keys())
@pytest.mark.parametrize("how", ["garbage", "close"])
async def test_a_plug_answering_garbage_or_hanging_up_is_a_plug_error_after_the_same_retries(
    scripted: Callable[..., Any], driver: type[AnyKasa], how: str
) -> None:
    peer = await scripted(lambda n: how)
    plug = kasa(peer.port, driver)
    with Peak() as peak, pytest.raises(PlugError) as caught:
        await plug.is_on()
    assert caught.value.kind is PlugFailure.PROTOCOL, caught.value
    assert peer.connections == 4  # python-kasa's policy: the request and 3 retries
    assert peak.seconds < 2.0  # no timeout waited for
    reading = await plug.read()
    assert not reading.reachable and reading.failure is FailureKind.PLUG_ERROR
    await plug.close()


@pytest.mark.parametrize("driver", DRIVERS.values(), ids=DRIVERS.keys())
async def test_a_plug_that_drops_one_connection_is_switched_on_the_retry(
    scripted: Callable[..., Any], driver: type[AnyKasa]
) -> None:
    peer = await scripted(lambda n: "close" if n == 0 else "answer")
    plug = kasa(peer.port, driver)
    await plug.turn_off()
    assert [(e.on, e.cause) for e in peer.device.record] == [(False, "client")]
    reading = await plug.read()
    assert reading.reachable and reading.is_on is False and reading.watts == 0
    await plug.close()


@pytest.mark.parametrize("driver", DRIVERS.values(), ids=DRIVERS.keys())
async def test_a_plug_that_closes_each_connection_after_one_answer_keeps_being_read(
    scripted: Callable[..., Any], driver: type[AnyKasa]
) -> None:
    peer = await scripted(lambda n: "once")
    plug = kasa(peer.port, driver)
    for _ in range(3):
        reading = await plug.read()
        assert reading.reachable and reading.is_on is True, reading
        await asyncio.sleep(0.05)  # idle: the close arrives before the next read
    await plug.turn_off()  # at once: the close may not have arrived yet
    assert await plug.is_on() is False
    assert [(e.on, e.cause) for e in peer.device.record] == [(False, "client")]
    await plug.close()


async def test_a_dripping_plug_is_cut_at_the_timeout_by_both_drivers(
    scripted: Callable[..., Any],
) -> None:
    """SLOW (~7 s): 4 attempts of 1 s and 3 pauses of 1 s, both drivers at once."""
    peer = await scripted(lambda n: "drip")
    plugs = [kasa(peer.port, driver, timeout=1) for driver in DRIVERS.values()]
    with Peak() as peak:
        readings = await asyncio.gather(*(plug.read() for plug in plugs))
    for reading in readings:
        assert reading.failure is FailureKind.PLUG_UNREACHABLE and "timeout" in reading.detail
    assert peak.seconds < 4 * 1 + 3 + 2.5
    assert peak.bytes < 8 * MIB
    for plug in plugs:
        await plug.close()


class _BreaksAfterOff:
    """A plug driver whose poll after the off command raises a non-PlugError (a bug)."""

    label = "spark-1"
    supports_timer = False

    def __init__(self) -> None:
        self.on = True
        self.calls: list[str] = []

    async def is_on(self) -> bool:
        self.calls.append("is_on")
        if not self.on and "turn_on" not in self.calls:
            raise KeyError("relay_state")
        return self.on

    async def turn_off(self) -> None:
        self.calls.append("turn_off")
        self.on = False

    async def turn_on(self) -> None:
        self.calls.append("turn_on")
        self.on = True

    async def arm_on_timer(self, delay: float) -> bool:
        return False

    async def disarm_timer(self) -> None:
        return None


async def test_an_unexpected_error_after_the_off_command_still_switches_the_plug_on() -> None:
    plug = _BreaksAfterOff()

    async def no_wait(_: float) -> None:
        return None

    clock = iter(range(10_000))
    outcome = await power_cycle(
        plug,  # type: ignore[arg-type]
        off_time=60,
        confirm_timeout=3,
        poll_interval=1,
        sleep=no_wait,
        clock=lambda: float(next(clock)),
    )
    assert "turn_on" in plug.calls and plug.on, plug.calls
    assert outcome.failed_step is CycleStep.CONFIRM_OFF


async def test_an_exception_escaping_a_step_after_off_is_re_raised_only_after_switch_on() -> None:
    plug = _BreaksAfterOff()

    async def broken_sleep(_: float) -> None:
        if not plug.on:
            raise RuntimeError("a bug in the hold")

    async def reads_off_then_fine() -> bool:
        plug.calls.append("is_on")
        return plug.on

    plug.is_on = reads_off_then_fine  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await power_cycle(plug, off_time=60, sleep=broken_sleep)  # type: ignore[arg-type]
    assert plug.calls.count("turn_on") >= 1 and plug.on, plug.calls


async def test_the_http_plug_transport_caps_an_answer_and_never_inflates_one(serve: Any) -> None:
    """KLAP and AES plugs talk HTTP through python-kasa's HttpClient: the bounded one caps."""
    from kasa import DeviceConfig, KasaException
    from yarl import URL

    from watchdog.plugs.kasa_bounded import BoundedHttpClient

    endless = await serve(HttpAnswer(endless=True, content_type="application/octet-stream"))
    declared = await serve(HttpAnswer(body=b"x", declared_length=1 << 30))
    bomb = stacked_gzip(64 * MIB, layers=1)
    gzipped = await serve(HttpAnswer(body=bomb, encoding="gzip"))
    http = BoundedHttpClient(DeviceConfig(host="127.0.0.1", timeout=3))
    try:
        with Peak() as peak:
            for server in (endless, declared):
                with pytest.raises(KasaException, match=r"answer|bytes"):
                    await http.post(URL(server.url + "/app"), data=b"q")
            status, body = await http.post(URL(gzipped.url + "/app"), data=b"q")
        assert status == 200 and body == bomb  # raw: the imposed encoding is not undone
        assert peak.bytes < 8 * MIB
    finally:
        await http.close()
