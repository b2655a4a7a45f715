"""A simulated fleet of N nodes in one process, for the fleet benchmark (simulation layer).

Owns many nodes at once, on loopback only: per node an sshd stand-in (a banner listener that
stamps every accepted connection), a :class:`~watchdog.sim.kasa.KasaEmulator` speaking the
real Kasa protocol, and per cluster of ``per_cluster`` nodes one
:class:`~watchdog.sim.vllm.FakeVllm`. Each listener has its own port on 127.0.0.1.

A share of the nodes can be *hung*: from :meth:`FleetSim.hang` on, their sshd accepts TCP and
never sends the banner (the wedge signature). The banner connection times are what the
benchmark measures lateness from: the gap between two probes of a node, seen from the node.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from watchdog.sim.kasa import KasaEmulator
from watchdog.sim.vllm import FakeVllm

BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


class _Sshd(asyncio.Protocol):
    """One accepted connection: stamped, then answered with the banner unless hung."""

    def __init__(self, node: FleetNode) -> None:
        self.node = node
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.node.connects.append(time.monotonic())
        if self.node.hung:
            self.transport = transport
            self.node.held.add(transport)  # held silent, as a SIGSTOPped sshd does
            return
        transport.write(BANNER)
        transport.close()  # the probe reads the line and hangs up; no need to hold it

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.node.held.discard(self.transport)


@dataclass(eq=False)
class FleetNode:
    name: str
    cluster: str
    plug: KasaEmulator
    ssh_port: int = 0
    hung: bool = False
    connects: list[float] = field(default_factory=list)  # monotonic time of each banner probe
    held: set[asyncio.Transport] = field(default_factory=set)
    server: asyncio.Server | None = None


class FleetSim:
    """N nodes in clusters of ``per_cluster``; nodes whose index is in ``hung`` can hang."""

    def __init__(self, n: int, *, per_cluster: int = 2, host: str = "127.0.0.1") -> None:
        self.host = host
        self.nodes: dict[str, FleetNode] = {}
        self.endpoints: dict[str, FakeVllm] = {}
        self.members: dict[str, list[str]] = {}
        for i in range(n):
            cluster = f"c{i // per_cluster:04d}"
            name = f"n{i:04d}"
            self.nodes[name] = FleetNode(name, cluster, KasaEmulator(host=host))
            self.members.setdefault(cluster, []).append(name)
        for cluster in self.members:
            self.endpoints[cluster] = FakeVllm(host=host)
        self.plug_requests = 0
        for node in self.nodes.values():
            node.plug.handle = self._counting(node.plug.handle)  # type: ignore[method-assign]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for node in self.nodes.values():
            node.server = await loop.create_server(
                lambda node=node: _Sshd(node),  # type: ignore[misc]
                self.host,
                0,
                backlog=64,
            )
            node.ssh_port = node.server.sockets[0].getsockname()[1]
            await node.plug.start()
        for ep in self.endpoints.values():
            await ep.start()

    async def stop(self) -> None:
        for node in self.nodes.values():
            if node.server is not None:
                node.server.close()
            for t in list(node.held):
                t.abort()
            await node.plug.stop()
        for ep in self.endpoints.values():
            await ep.stop()

    def hang(self, names: list[str]) -> None:
        """From now on these nodes' sshd accepts and stays silent."""
        for name in names:
            self.nodes[name].hung = True

    def http_requests(self) -> Counter[str]:
        """Requests every endpoint answered, by path."""
        out: Counter[str] = Counter()
        for ep in self.endpoints.values():
            out.update(path for _, path, _ in ep.requests)
        return out

    def _counting(self, handle: Any) -> Any:
        def counted(request: Any) -> Any:
            self.plug_requests += 1
            return handle(request)

        return counted

    def config(
        self,
        state_dir: str,
        *,
        ssh: tuple[str, str] = ("10s", "5s"),
        health: tuple[str, str] = ("10s", "5s"),
        models: tuple[str, str] = ("60s", "10s"),
        tool_call: tuple[str, str] = ("300s", "60s"),
        plug_validate: str = "5m",
    ) -> dict[str, Any]:
        """A dry-run config watching every simulated node with the given timings."""
        clusters = []
        for cluster, names in self.members.items():
            ep = self.endpoints[cluster]
            clusters.append(
                {
                    "name": cluster,
                    "endpoint": {
                        "base_url": ep.url,
                        "model": ep.model,
                        "expect_fingerprint": "tp2",
                        "health": {"interval": health[0], "timeout": health[1]},
                        "models": {"interval": models[0], "timeout": models[1]},
                        "tool_call": {"interval": tool_call[0], "timeout": tool_call[1]},
                    },
                    "nodes": [
                        {
                            "name": n,
                            "host": self.host,
                            "ssh": {
                                "port": self.nodes[n].ssh_port,
                                "interval": ssh[0],
                                "timeout": ssh[1],
                            },
                            "plug": {
                                "type": "kasa",
                                "host": self.host,
                                "port": self.nodes[n].plug.port,
                                "validate_interval": plug_validate,
                            },
                        }
                        for n in names
                    ],
                }
            )
        return {
            "watchdog": {"state_dir": state_dir, "interface": "lo", "dry_run": True},
            "clusters": clusters,
        }
