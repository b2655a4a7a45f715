"""The probe suite: how each configured target is probed (orchestration layer).

One place binds the config to the probe adapters, so the daemon's jobs and the one-shot
``check`` command probe exactly the same way. Every method returns :class:`ProbeResult`
values and never raises for a target's fault. Deadlines come from the config; the probes
themselves neither retry nor choose their own deadline.
"""

from __future__ import annotations

import time

import certifi
import psutil

from watchdog.config import Cluster, Config, Node, Witness
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes.http import probe_health, probe_models
from watchdog.probes.ping import probe_ping
from watchdog.probes.progress import ProgressTracker, probe_progress
from watchdog.probes.ssh import probe_ssh
from watchdog.probes.tcp import probe_tcp
from watchdog.probes.toolcall import check_topology, probe_round_trip, probe_tool_call
from watchdog.probes.wire import WireClient

# A healthy endpoint is asked its version at every this many health probes (the first one,
# and the first answer after any failure, too: an image bump restarts vLLM).
VERSION_EVERY = 6


class ProbeSuite:
    """Probes the targets of one config; owns the probes' HTTP client.

    The endpoint probes send each request on a connection of its own
    (:class:`~watchdog.probes.wire.WireClient`: no pool, so no probe waits for a slot another
    holds, its deadline covers only its own exchange, and nothing a cancelled probe leaves
    behind outlives it). TLS trusts the certifi bundle, as httpx does, and ignores the
    environment (``SSL_CERT_FILE``), as the probes ignore proxies; the context is built at
    the first ``https`` probe.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.wire = WireClient(cafile=certifi.where())  # the CA bundle loads at the first https
        self.progress = ProgressTracker()  # the previous /metrics sample per cluster
        self._since_version: dict[str, int] = {}  # health probes since the version was read

    async def aclose(self) -> None:
        await self.wire.aclose()

    async def ssh(self, node: Node) -> ProbeResult:
        return await probe_ssh(
            node.host, node.ssh.port, timeout=node.ssh.timeout, target=f"node {node.name}"
        )

    async def ping(self, node: Node) -> ProbeResult:
        return await probe_ping(node.host, timeout=node.ping.timeout, target=f"node {node.name}")

    async def witness(self, w: Witness) -> ProbeResult:
        target = f"witness {w.host}" + (f":{w.port}" if w.port else "")
        if w.port is None:
            return await probe_ping(
                w.host, timeout=w.timeout, target=target, probe=ProbeKind.WITNESS
            )
        return await probe_tcp(w.host, w.port, timeout=w.timeout, target=target)

    async def endpoint(self, cluster: Cluster, kind: ProbeKind) -> list[ProbeResult]:
        """One endpoint job: health, models, progress, or the tool-call chain (4b–4d + topology)."""
        return await self._endpoint(self.wire, cluster, kind)

    async def _endpoint(
        self, client: WireClient, cluster: Cluster, kind: ProbeKind
    ) -> list[ProbeResult]:
        ep = cluster.endpoint
        target = f"cluster {cluster.name}"
        if kind is ProbeKind.HEALTH:
            since = self._since_version.get(cluster.name)
            due = since is None or since + 1 >= VERSION_EVERY
            health = await probe_health(
                client, ep, timeout=ep.health.timeout, target=target, with_version=due
            )
            if not health.ok:
                self._since_version.pop(cluster.name, None)  # a restart may bring another one
            elif due:
                known = health.data.get("version", "unknown") != "unknown"
                self._since_version[cluster.name] = 0 if known else VERSION_EVERY
            else:
                self._since_version[cluster.name] = (since or 0) + 1
            return [health]
        if kind is ProbeKind.MODELS:
            return [await probe_models(client, ep, timeout=ep.models.timeout, target=target)]
        if kind is ProbeKind.PROGRESS:
            return [
                await probe_progress(
                    client,
                    ep,
                    self.progress,
                    timeout=ep.progress.timeout,
                    target=target,
                    now=time.monotonic(),
                )
            ]
        if kind is not ProbeKind.TOOL_CALL:
            raise ValueError(f"not an endpoint job: {kind}")
        call = await probe_tool_call(client, ep, timeout=ep.tool_call.timeout, target=target)
        out = [call, check_topology(call, ep, target=target)]
        if ep.round_trip and call.ok:
            out.append(
                await probe_round_trip(
                    client,
                    ep,
                    timeout=ep.tool_call.timeout,
                    target=target,
                    tool_call_id=call.data.get("tool_call_id"),
                )
            )
        # A topology that could not be read (tool call failed) is not evidence of its own.
        return [
            r
            for r in out
            if r.probe is not ProbeKind.TOPOLOGY or r.failure is not FailureKind.PROBE_ERROR
        ]

    def link_up(self) -> bool | None:
        """The watchdog's own link (psutil); None when no interface can tell."""
        stats = psutil.net_if_stats()
        wanted = self.cfg.watchdog.interface
        if wanted is not None:
            st = stats.get(wanted)
            return bool(st and st.isup)
        # Any non-loopback interface up is enough; a host with none cannot tell.
        others = {name: st for name, st in stats.items() if name != "lo"}
        if not others:
            return None
        return any(st.isup for st in others.values())

    def endpoint_jobs(self, cluster: Cluster) -> list[tuple[ProbeKind, float]]:
        """The enabled endpoint jobs of a cluster with their intervals."""
        ep = cluster.endpoint
        jobs = [
            (ProbeKind.HEALTH, ep.health),
            (ProbeKind.MODELS, ep.models),
            (ProbeKind.TOOL_CALL, ep.tool_call),
            (ProbeKind.PROGRESS, ep.progress),
        ]
        return [(k, t.interval) for k, t in jobs if t.enabled]
