"""The simulated cluster couples each node's plug to its sshd and the shared endpoint.

Everything is real and on loopback: the plugs are switched through the real python-kasa
client, sshd is judged by reading its banner over TCP, the endpoint by HTTP requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from kasa import Device, DeviceConfig
from kasa.deviceconfig import DeviceConnectionParameters, DeviceEncryptionType, DeviceFamily

from watchdog.config import parse_config
from watchdog.sim.cluster import ENDPOINT, SimCluster
from watchdog.sim.cluster_config import config_snippet
from watchdog.sim.sim_node import NodeFault, SimNodeSpec, SimTimings
from watchdog.sim.vllm import VllmMode

BOOT = 0.2
LOAD = 0.3
TIMINGS = SimTimings(boot_delay=BOOT, load_delay=LOAD, slow_factor=3.0)
CHAT_BODY = {
    "model": "nvidia/nemotron-3-super",
    "messages": [{"role": "user", "content": "What is the weather in Zurich?"}],
}


@pytest.fixture
async def cluster() -> AsyncIterator[SimCluster]:
    sim = SimCluster(timings=TIMINGS)
    await sim.start()
    yield sim
    await sim.stop()


@asynccontextmanager
async def kasa_plug(host: str, port: int) -> AsyncIterator[Device]:
    """The real python-kasa client, as the watchdog's plug adapter uses it."""
    params = DeviceConnectionParameters(DeviceFamily.IotSmartPlugSwitch, DeviceEncryptionType.Xor)
    config = DeviceConfig(host, port_override=port, timeout=2, connection_type=params)
    device = await Device.connect(config=config)
    try:
        yield device
    finally:
        await device.disconnect()


async def banner(host: str, port: int, wait: float = 0.3) -> bytes | None:
    """The first line sshd sends, or None if it accepts but says nothing within ``wait``.

    Raises ConnectionRefusedError when nothing listens.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return await asyncio.wait_for(reader.readline(), wait)
    except TimeoutError:
        return None
    finally:
        writer.close()


async def refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # queued while the listener was closing: not settled yet
    writer.close()
    return False


async def health(sim: SimCluster) -> int | None:
    """``/health``'s status, or None when the endpoint's port refuses connections."""
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"{sim.endpoint_url}/health")).status_code
    except httpx.ConnectError:
        return None


async def eventually(check: Callable[[], object], timeout: float = 3.0) -> float:
    """Poll an (async) check until truthy; returns when it became so (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic()
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def sshd_speaks(sim: SimCluster, node: str) -> bool:
    n = sim.nodes[node]
    try:
        line = await banner(n.host, n.ssh_port)
    except (ConnectionRefusedError, ConnectionResetError):
        return False
    return line is not None and line.startswith(b"SSH-2.0-")


async def test_it_starts_with_every_sshd_speaking_and_the_endpoint_healthy(
    cluster: SimCluster,
) -> None:
    assert set(cluster.nodes) == {"spark-1", "spark-2"}
    for node in cluster.nodes.values():
        assert node.powered and node.booted and node.plug.is_on(node.outlet)
        line = await banner(node.host, node.ssh_port)
        assert line is not None and line.startswith(b"SSH-2.0-")
    assert await health(cluster) == 200
    assert cluster.power_record("spark-1") == []


async def test_a_python_kasa_power_cycle_closes_sshd_and_endpoint_then_boots_then_loads(
    cluster: SimCluster,
) -> None:
    node, other = cluster.nodes["spark-2"], cluster.nodes["spark-1"]
    async with kasa_plug(node.plug.host, node.plug_port) as plug:
        await plug.turn_off()
        await eventually(lambda: refused(node.host, node.ssh_port))
        await eventually(lambda: refused("127.0.0.1", cluster.vllm.port))
        assert await sshd_speaks(cluster, "spark-1")  # the other node is untouched
        assert other.powered and not node.powered
        await plug.turn_on()
        on_at = time.monotonic()
        assert await refused(node.host, node.ssh_port)  # booting: nothing listens yet
    sshd_at = await eventually(lambda: sshd_speaks(cluster, "spark-2"))
    assert sshd_at - on_at >= BOOT * 0.9
    assert await health(cluster) is None  # sshd is up, the model is still loading
    serve_at = await eventually(lambda: health(cluster))
    assert await health(cluster) == 200
    assert serve_at - sshd_at >= LOAD * 0.8
    record = cluster.power_record("spark-2")
    assert [(e.on, e.cause) for e in record] == [(False, "client"), (True, "client")]
    assert cluster.power_record("spark-1") == []
    story = [(n, what) for _, n, what in cluster.events]
    assert story == [
        ("spark-2", "power off"),
        (ENDPOINT, "engine down"),
        ("spark-2", "power on"),
        ("spark-2", "sshd up"),
        (ENDPOINT, "model loading"),
        (ENDPOINT, "model loaded"),
    ]


async def test_a_wedged_node_accepts_tcp_but_sends_no_banner_and_the_endpoint_hangs(
    cluster: SimCluster,
) -> None:
    node = cluster.nodes["spark-1"]
    await cluster.wedge("spark-1")
    assert await banner(node.host, node.ssh_port) is None  # connected, never a banner
    assert node.plug.is_on(node.outlet)
    async with httpx.AsyncClient(timeout=0.4) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{cluster.endpoint_url}/v1/chat/completions", json=CHAT_BODY)
    assert await sshd_speaks(cluster, "spark-2")

    node.plug.set_on(False, node.outlet, cause="test")
    await eventually(lambda: refused(node.host, node.ssh_port))
    node.plug.set_on(True, node.outlet, cause="test")
    await eventually(lambda: health(cluster))
    assert node.fault is NodeFault.NONE
    assert await sshd_speaks(cluster, "spark-1")
    async with httpx.AsyncClient(timeout=2.0) as client:
        reply = await client.post(f"{cluster.endpoint_url}/v1/chat/completions", json=CHAT_BODY)
    assert reply.status_code == 200


async def test_a_wedged_worker_keeps_health_up_while_completions_hang(
    cluster: SimCluster,
) -> None:
    await cluster.wedge("spark-2")
    assert await health(cluster) == 200  # the API server on the head node still answers
    async with httpx.AsyncClient(timeout=0.4) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{cluster.endpoint_url}/v1/chat/completions", json=CHAT_BODY)


async def test_a_boot_looping_node_never_brings_sshd_back(cluster: SimCluster) -> None:
    node = cluster.nodes["spark-1"]
    await cluster.set_fault("spark-1", NodeFault.BOOT_LOOP)
    assert await sshd_speaks(cluster, "spark-1")  # only the next power-on fails
    node.plug.set_on(False, node.outlet)
    node.plug.set_on(True, node.outlet)
    await eventually(lambda: ("spark-1", "boot failed") in [(n, w) for _, n, w in cluster.events])
    await asyncio.sleep(BOOT + LOAD)
    assert await refused(node.host, node.ssh_port)
    assert await health(cluster) is None  # TP=2 cannot serve without this node
    assert node.powered and not node.booted


async def test_a_slow_boot_takes_slow_factor_times_longer(cluster: SimCluster) -> None:
    node = cluster.nodes["spark-2"]
    await cluster.set_fault("spark-2", NodeFault.SLOW_BOOT)
    node.plug.set_on(False, node.outlet)
    node.plug.set_on(True, node.outlet)
    on_at = time.monotonic()
    await asyncio.sleep(BOOT * 1.5)
    assert await refused(node.host, node.ssh_port)  # a normal boot would be done by now
    up_at = await eventually(lambda: sshd_speaks(cluster, "spark-2"))
    assert up_at - on_at >= BOOT * TIMINGS.slow_factor * 0.9


async def test_switching_off_during_boot_cancels_the_pending_boot(cluster: SimCluster) -> None:
    node = cluster.nodes["spark-1"]
    node.plug.set_on(False, node.outlet)
    node.plug.set_on(True, node.outlet)
    await asyncio.sleep(BOOT / 2)
    node.plug.set_on(False, node.outlet)
    await asyncio.sleep(BOOT)
    assert await refused(node.host, node.ssh_port)
    assert not node.booted
    assert ("spark-1", "sshd up") not in [(n, w) for _, n, w in cluster.events]


async def test_an_endpoint_config_fault_survives_a_power_cycle(cluster: SimCluster) -> None:
    await cluster.set_endpoint_mode(VllmMode.AUTH)
    async with httpx.AsyncClient(timeout=1.0) as client:
        assert (await client.get(f"{cluster.endpoint_url}/v1/models")).status_code == 401
        node = cluster.nodes["spark-1"]
        node.plug.set_on(False, node.outlet)
        await eventually(lambda: refused("127.0.0.1", cluster.vllm.port))
        node.plug.set_on(True, node.outlet)
        await eventually(lambda: health(cluster))
        assert (await client.get(f"{cluster.endpoint_url}/v1/models")).status_code == 401


async def test_a_device_side_countdown_rule_switches_the_node_back_on(
    cluster: SimCluster,
) -> None:
    node = cluster.nodes["spark-1"]
    async with kasa_plug(node.plug.host, node.plug_port) as plug:
        rule = {"enable": 1, "delay": 1, "act": 1, "name": "watchdog"}
        await plug.protocol.query({"count_down": {"add_rule": rule}})
        await plug.turn_off()
    await eventually(lambda: refused(node.host, node.ssh_port))
    await eventually(lambda: sshd_speaks(cluster, "spark-1"), timeout=1.0 + BOOT + 2.0)
    assert [e.cause for e in cluster.power_record("spark-1")] == ["client", "countdown"]


async def test_a_shared_strip_switches_each_node_by_its_outlet() -> None:
    sim = SimCluster(timings=TIMINGS, shared_strip=True)
    await sim.start()
    try:
        one, two = sim.nodes["spark-1"], sim.nodes["spark-2"]
        assert one.plug is two.plug and (one.outlet, two.outlet) == (0, 1)
        async with kasa_plug(one.plug.host, one.plug_port) as strip:
            await strip.children[1].turn_off()
        await eventually(lambda: refused(two.host, two.ssh_port))
        assert await sshd_speaks(sim, "spark-1")
        assert one.powered and not two.powered
        assert sim.power_record("spark-1") == []
        assert [e.on for e in sim.power_record("spark-2")] == [False]
        assert "outlet: 1" in config_snippet(sim)
    finally:
        await sim.stop()


async def test_nodes_may_listen_on_their_own_loopback_addresses() -> None:
    specs = [SimNodeSpec("a", ssh_host="127.0.0.11"), SimNodeSpec("b", ssh_host="127.0.0.12")]
    async with SimCluster(specs, timings=TIMINGS) as sim:
        assert await sshd_speaks(sim, "a") and await sshd_speaks(sim, "b")
        assert await refused("127.0.0.12", sim.nodes["a"].ssh_port)


async def test_the_config_snippet_is_valid_config_for_this_cluster() -> None:
    async with SimCluster(timings=TIMINGS, api_key="sk-sim-secret") as sim:
        text = config_snippet(sim, api_key_env="SIM_KEY")
        assert "sk-sim-secret" not in text
        config = parse_config(text, env={"SIM_KEY": "sk-sim-secret"})
    (cluster,) = config.clusters
    assert cluster.endpoint.base_url == sim.endpoint_url
    assert cluster.endpoint.api_key is not None
    assert cluster.endpoint.api_key.get_secret_value() == "sk-sim-secret"
    assert cluster.endpoint.expect_fingerprint == "tp2"
    for node in cluster.nodes:
        sim_node = sim.nodes[node.name]
        assert node.ssh.port == sim_node.ssh_port
        assert (node.plug.type, node.plug.port) == ("kasa", sim_node.plug_port)
        assert node.plug.outlet is None  # a single plug: no outlet to pick


async def test_events_are_also_reported_to_the_callback(cluster: SimCluster) -> None:
    seen: list[tuple[float, str, str]] = []
    cluster.on_event = lambda at, node, what: seen.append((at, node, what))
    await cluster.wedge("spark-2")
    assert [(n, w) for _, n, w in seen] == [("spark-2", "wedged")]
    assert seen == cluster.events[-1:]


async def test_stop_leaves_no_listening_sockets_and_no_tasks() -> None:
    before = asyncio.all_tasks()
    sim = SimCluster(timings=TIMINGS)
    await sim.start()
    await sim.wedge("spark-1")
    node = sim.nodes["spark-2"]
    node.plug.set_on(False, node.outlet)
    node.plug.set_on(True, node.outlet)  # a boot is pending while we stop
    hung = asyncio.create_task(banner(sim.nodes["spark-1"].host, sim.nodes["spark-1"].ssh_port))
    ports = [sim.vllm.port] + [p for n in sim.nodes.values() for p in (n.ssh_port, n.plug_port)]
    started = time.monotonic()
    await sim.stop()
    await sim.stop()  # idempotent
    assert time.monotonic() - started < 2.0
    await hung
    for port in ports:
        assert await refused("127.0.0.1", port), port
    assert asyncio.all_tasks() - before == set()
    assert sim.events[-1][2] == "power on"  # the pending boot never completed
