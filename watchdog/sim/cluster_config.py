"""The watchdog's configuration for a simulated cluster: its ``clusters:`` section.

Points ``cluster-watchdog`` at a running :class:`~watchdog.sim.cluster.SimCluster`: the
endpoint (its API key by environment reference, never the key itself), each node's sshd
port and its plug (host, port, outlet on a strip). Used by the harness, ``cluster-watchdog
sim`` and the tests.
"""

from __future__ import annotations

from typing import Any

import yaml

from watchdog.sim.cluster import SimCluster


def config_clusters(sim: SimCluster, api_key_env: str = "SIM_API_KEY") -> list[dict[str, Any]]:
    """The ``clusters:`` list as data (callers may tune probe timings before dumping)."""
    endpoint: dict[str, Any] = {"base_url": sim.endpoint_url, "model": sim.model}
    if sim.has_api_key:
        endpoint["api_key"] = f"${{{api_key_env}}}"  # by reference, never the key
    endpoint["expect_fingerprint"] = sim.topology_tag
    nodes = []
    for node in sim.nodes.values():
        plug: dict[str, Any] = {"type": "kasa", "host": node.plug.host, "port": node.plug_port}
        if node.plug.outlets > 1:
            plug["outlet"] = node.outlet
        nodes.append(
            {"name": node.name, "host": node.host, "ssh": {"port": node.ssh_port}, "plug": plug}
        )
    return [{"name": sim.name, "endpoint": endpoint, "nodes": nodes}]


def config_snippet(sim: SimCluster, api_key_env: str = "SIM_API_KEY") -> str:
    """YAML ``clusters:`` section pointing cluster-watchdog at this simulated cluster."""
    head = f"# simulated cluster {sim.name!r}: every address is on this machine's loopback\n"
    if sim.has_api_key:
        head += f"# the endpoint's API key is read from ${{{api_key_env}}}\n"
    body = yaml.safe_dump({"clusters": config_clusters(sim, api_key_env)}, sort_keys=False)
    return head + body
