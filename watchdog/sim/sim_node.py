"""A simulated node's state and what that state implies for the servers standing in for it.

:class:`NodeFault` is the closed set of faults a node can be given, :class:`SimNodeSpec` and
:class:`SimTimings` describe a cluster to build, and :class:`SimNode` is one node's state
(powered, booted, fault) with the sshd banner mode it implies; :func:`endpoint_mode` is the
mode the shared endpoint serves in, given every node. :class:`watchdog.sim.cluster.SimCluster`
changes this state as power changes and brings the servers to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from watchdog.sim.banner import BannerMode, BannerServer
from watchdog.sim.kasa import KasaEmulator
from watchdog.sim.vllm import VllmMode


class NodeFault(StrEnum):
    NONE = "none"
    WEDGED = "wedged"  # sshd silent, endpoint hangs (the OOM wedge); cleared by a power cycle
    BOOT_LOOP = "boot_loop"  # after the next power-on sshd never comes back
    SLOW_BOOT = "slow_boot"  # boot and model load take slow_factor times longer
    SSH_DOWN = "ssh_down"  # sshd stopped (port refused) while the node serves the model


@dataclass
class SimNodeSpec:
    name: str
    ssh_host: str = "127.0.0.1"
    plug_fixture: str = "HS110(EU)_1.0_1.2.5"
    plug_outlet: int | None = None  # on a strip fixture; None: outlet 0 (or by order)


@dataclass
class SimTimings:
    boot_delay: float = 1.0  # plug on -> sshd answers
    load_delay: float = 1.5  # every node up -> endpoint serves (TP=2 spans all nodes)
    slow_factor: float = 4.0  # SLOW_BOOT multiplies both


@dataclass(eq=False)
class SimNode:
    """One node: its sshd stand-in, its plug (shared with other nodes on a strip) and outlet."""

    name: str
    host: str
    banner: BannerServer
    plug: KasaEmulator
    outlet: int
    powered: bool = True
    booted: bool = True
    fault: NodeFault = NodeFault.NONE
    _boot_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def ssh_port(self) -> int:
        return self.banner.port

    @property
    def plug_port(self) -> int:
        return self.plug.port

    @property
    def wedged(self) -> bool:
        return self.booted and self.fault is NodeFault.WEDGED

    @property
    def ready(self) -> bool:
        """Up and able to take part in serving the model."""
        return self.powered and self.booted and self.fault is not NodeFault.WEDGED

    def banner_mode(self, dark: bool = False) -> BannerMode:
        if not (self.powered and self.booted) or self.fault is NodeFault.SSH_DOWN:
            return BannerMode.CLOSED
        if dark:  # the network is dark: connections go nowhere, nothing answers
            return BannerMode.WEDGED
        return BannerMode.WEDGED if self.fault is NodeFault.WEDGED else BannerMode.SPEAK


def endpoint_mode(
    nodes: Iterable[SimNode], head: SimNode, *, loaded: bool, dark: bool, configured: VllmMode
) -> VllmMode:
    """The mode the endpoint serves in: ``configured`` while the model is loaded and no node
    is wedged; nothing while it is not loaded; a hang or a stuck engine under a wedge."""
    if dark:
        return VllmMode.HANG
    if not loaded:
        return VllmMode.LOADING  # engine dead or loading: nothing listens
    wedged = [n for n in nodes if n.wedged]
    if not wedged:
        return configured
    # A wedged head takes the API server with it; a wedged worker leaves /health up.
    return VllmMode.HANG if head in wedged else VllmMode.ENGINE_STUCK
