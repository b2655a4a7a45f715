"""A simulated GPU cluster: each node's smart plug drives its sshd and the shared endpoint.

Owns the coupling between the simulation pieces: a :class:`KasaEmulator` relay per
node, a :class:`BannerServer` standing in for the node's sshd, and one :class:`FakeVllm`
serving the model across every node (TP=2). Power changes arrive through the emulator's
``on_change`` callback, so whatever switches the relay — the watchdog's plug driver, a
device-side ``count_down`` rule, a test calling ``set_on`` — drives the same story:

- plug off: the node's sshd is gone at once, the engine dies (nothing listens on the endpoint),
  a pending boot is cancelled and a wedge is cleared (the next boot is a fresh one);
- plug on: sshd answers after ``boot_delay`` (never, with ``BOOT_LOOP``); once every node is
  up, the model loads for ``load_delay`` and the endpoint serves its configured mode again — a
  configuration fault set with :meth:`SimCluster.set_endpoint_mode` survives power cycles.

Node state changes synchronously; one reconciler task then brings the servers to the modes
that state implies, so a burst of changes can never apply out of order. The node state and
what it implies are :mod:`watchdog.sim.sim_node`; the config pointing the watchdog here is
:mod:`watchdog.sim.cluster_config`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from watchdog.sim.banner import BannerServer
from watchdog.sim.kasa import KasaEmulator, PlugFault, PowerEvent
from watchdog.sim.sim_node import NodeFault, SimNode, SimNodeSpec, SimTimings, endpoint_mode
from watchdog.sim.vllm import NEWEST, FakeVllm, VllmMode

_LOG = logging.getLogger("watchdog.sim.cluster")
ENDPOINT = "endpoint"  # the "node" of cluster-wide events in SimCluster.events
STRIP_FIXTURE = "HS300(US)_2.0_1.0.12"
_STOP_TIMEOUT = 2.0  # per server: stop() must never hang on a peer


_DEFAULT_NODES = (SimNodeSpec("spark-1"), SimNodeSpec("spark-2"))


class SimCluster:
    """Nodes, plugs and one endpoint on loopback, coupled as real power would couple them."""

    def __init__(
        self,
        nodes: Sequence[SimNodeSpec] = _DEFAULT_NODES,
        *,
        host: str = "127.0.0.1",
        model: str = "nvidia/nemotron-3-super",
        api_key: str | None = None,
        timings: SimTimings | None = None,
        topology_tag: str = "tp2",
        shared_strip: bool = False,
        name: str = "sim",
        vllm_version: str = NEWEST,
    ) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.name = name
        self.model = model
        self.topology_tag = topology_tag
        self.timings = timings or SimTimings()
        self.vllm = FakeVllm(
            host,
            0,
            model=model,
            api_key=api_key,
            topology_tag=topology_tag,
            vllm_version=vllm_version,
        )
        self.has_api_key = api_key is not None  # the key itself is kept only by FakeVllm
        self.events: list[tuple[float, str, str]] = []
        self.on_event: Callable[[float, str, str], None] | None = None
        self.nodes: dict[str, SimNode] = {}
        strip = KasaEmulator(STRIP_FIXTURE, host, initial_on=True) if shared_strip else None
        for i, spec in enumerate(nodes):
            if spec.name in self.nodes:
                raise ValueError(f"duplicate node name {spec.name!r}")
            plug = strip or KasaEmulator(spec.plug_fixture, host, initial_on=True)
            outlet = spec.plug_outlet if spec.plug_outlet is not None else (i if strip else 0)
            if not 0 <= outlet < plug.outlets:
                raise ValueError(f"{spec.name}: {plug.fixture} has no outlet {outlet}")
            banner = BannerServer(spec.ssh_host, 0)
            self.nodes[spec.name] = SimNode(spec.name, spec.ssh_host, banner, plug, outlet)
        self._plugs = list({id(n.plug): n.plug for n in self.nodes.values()}.values())
        self._endpoint_mode = VllmMode.HEALTHY
        self._dark = False
        self._applied: VllmMode | None = None
        self._loaded = True
        self._load_task: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._dirty = False
        self._started = self._stopped = False

    @property
    def endpoint_url(self) -> str:
        return str(self.vllm.url)

    @property
    def head(self) -> SimNode:
        """The node the API server runs on (the first): its wedge hangs the whole endpoint."""
        return next(iter(self.nodes.values()))

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Power, boot and load everything at once; returns when every server answers."""
        if self._started:
            return
        self._started = True
        try:
            for plug in self._plugs:
                await plug.start()
                plug.on_change = self._plug_callback(plug)
            for node in self.nodes.values():
                await node.banner.start()
            await self.vllm.start()
            self._kick()
            await self.settle()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every timer and server; idempotent, never waits long on anything."""
        if self._stopped:
            return
        self._stopped = True
        for plug in self._plugs:
            plug.on_change = None
        tasks = [t for t in (self._reconciler, self._load_task) if t is not None]
        tasks += [n._boot_task for n in self.nodes.values() if n._boot_task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_TIMEOUT)
        stops: list[Callable[[], Coroutine[Any, Any, None]]] = [self.vllm.stop]
        stops += [n.banner.stop for n in self.nodes.values()] + [p.stop for p in self._plugs]
        for stop in stops:
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await stop()
            except Exception:
                _LOG.exception("simulated server failed to stop cleanly")

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def settle(self) -> None:
        """Wait until the servers are in the modes the current state implies."""
        while (task := self._reconciler) is not None and not task.done():
            await asyncio.wait([task])  # unlike awaiting it, never cancels or raises here
        if task is not None and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("the simulation failed to apply a state") from task.exception()

    # ------------------------------------------------------------------ faults
    async def wedge(self, node: str) -> None:
        """The OOM wedge: TCP accepted, no banner; the endpoint hangs. The plug stays on."""
        await self.set_fault(node, NodeFault.WEDGED)

    async def set_fault(self, node: str, fault: NodeFault) -> None:
        sim = self.nodes[node]
        if sim.fault is fault:
            return
        was_wedged, sim.fault = sim.wedged, NodeFault(fault)
        if sim.wedged != was_wedged:
            self._event(node, "wedged" if sim.wedged else "unwedged")
        elif fault is not NodeFault.NONE:
            self._event(node, f"fault {fault}")
        self._check_load()
        self._kick()
        await self.settle()

    async def set_endpoint_mode(self, mode: VllmMode) -> None:
        """The mode the endpoint serves in whenever the model is loaded (persists)."""
        self._endpoint_mode = VllmMode(mode)
        self._event(ENDPOINT, f"mode {mode}")
        self._kick()
        await self.settle()

    async def set_dark(self, dark: bool) -> None:
        """What a switch reboot looks like from the watchdog: every node, plug and the endpoint
        stop answering (connections hang), then all come back. Power is not touched."""
        self._dark = dark
        self._event(ENDPOINT, "network dark" if dark else "network back")
        for plug in {id(n.plug): n.plug for n in self.nodes.values()}.values():
            await plug.set_fault(PlugFault.HANG if dark else PlugFault.NONE)
        self._kick()
        await self.settle()

    def power_record(self, node: str) -> list[PowerEvent]:
        sim = self.nodes[node]
        return [e for e in sim.plug.record if e.outlet == sim.outlet]

    # ------------------------------------------------------------------ coupling
    def _plug_callback(self, plug: KasaEmulator) -> Callable[[int, bool], None]:
        by_outlet = {n.outlet: n for n in self.nodes.values() if n.plug is plug}

        def changed(outlet: int, on: bool) -> None:
            node = by_outlet.get(outlet)
            if node is not None and not self._stopped:
                self._power(node, on)

        return changed

    def _power(self, node: SimNode, on: bool) -> None:
        if on == node.powered:
            return
        node.powered = on
        self._event(node.name, "power on" if on else "power off")
        if on:
            node._boot_task = self._spawn(self._boot(node))
        else:
            if node._boot_task is not None:
                node._boot_task.cancel()  # power went away before the node finished booting
                node._boot_task = None
            node.booted = False
            if node.fault is NodeFault.WEDGED:
                node.fault = NodeFault.NONE  # the next boot is a fresh one
            if self._loaded:
                self._event(ENDPOINT, "engine down")
            self._loaded = False
            self._check_load()
        self._kick()

    async def _boot(self, node: SimNode) -> None:
        slow = self.timings.slow_factor if node.fault is NodeFault.SLOW_BOOT else 1.0
        await asyncio.sleep(self.timings.boot_delay * slow)
        node._boot_task = None
        if node.fault is NodeFault.BOOT_LOOP:
            self._event(node.name, "boot failed")  # sshd stays closed until the next cycle
            return
        node.booted = True
        self._event(node.name, "sshd up")
        self._check_load()
        self._kick()

    def _check_load(self) -> None:
        """Start loading once every node is ready; abandon a load a node dropped out of."""
        ready = all(n.ready for n in self.nodes.values())
        if ready and not self._loaded and self._load_task is None:
            self._event(ENDPOINT, "model loading")
            self._load_task = self._spawn(self._load())
        elif not ready and self._load_task is not None:
            self._load_task.cancel()
            self._load_task = None

    async def _load(self) -> None:
        slow = any(n.fault is NodeFault.SLOW_BOOT for n in self.nodes.values())
        await asyncio.sleep(self.timings.load_delay * (self.timings.slow_factor if slow else 1))
        self._load_task = None
        self._loaded = True
        self._event(ENDPOINT, "model loaded")
        self._kick()

    def _kick(self) -> None:
        self._dirty = True
        if not self._stopped and (self._reconciler is None or self._reconciler.done()):
            self._reconciler = self._spawn(self._reconcile())

    async def _reconcile(self) -> None:
        while self._dirty and not self._stopped:
            self._dirty = False
            for node in self.nodes.values():
                want = node.banner_mode(self._dark)
                if node.banner.mode is not want:
                    await node.banner.set_mode(want)
            mode = endpoint_mode(
                self.nodes.values(),
                self.head,
                loaded=self._loaded,
                dark=self._dark,
                configured=self._endpoint_mode,
            )
            if mode is not self._applied:
                await self.vllm.set_mode(mode)
                self._applied = mode

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_failure)
        return task

    def _event(self, node: str, what: str) -> None:
        entry = (time.monotonic(), node, what)
        self.events.append(entry)
        _LOG.info("%s: %s", node, what)
        if self.on_event is not None:
            try:
                self.on_event(*entry)
            except Exception:
                _LOG.exception("on_event callback failed")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOG.error("simulation task failed", exc_info=task.exception())
