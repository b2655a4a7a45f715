"""Serving proof: what the cluster's endpoint evidence proves about a node (pure).

docs/design.md, "Serving vetoes power": when a node's sshd fails, a real tool call that
succeeds afterwards proves the node serves, and it is never powered. Owns :class:`Proof` and
:func:`proof`, and the endpoint facts classification and recovery need: which endpoint probes
are enabled, whether each has answered since start-up, and whether all have passed since a
given time. No I/O, no clock.
"""

from __future__ import annotations

from enum import Enum
from urllib.parse import urlsplit

from watchdog.config import Cluster, Config
from watchdog.core.evidence import ClusterState
from watchdog.core.model import ProbeKind


class Proof(Enum):
    """Whether the cluster's endpoint proved it serves since a node's ssh failure began."""

    SERVING = "serving"  # a tool call succeeded since: the node is not wedged
    # No tool call configured, but the endpoint on this very node answered since: it does not
    # prove serving, yet a node whose API server answers is not the wedge power fixes.
    ANSWERING = "answering"
    NOT_SERVING = "not_serving"  # the latest tool call since then failed
    PENDING = "pending"  # no tool call answered since then: ask now, judge afterwards
    UNAVAILABLE = "unavailable"  # the tool call is disabled: nothing can prove serving


def proof(cs: ClusterState, cluster: Cluster | None, since: float, node: str = "") -> Proof:
    """Did the endpoint complete a real tool call after ``since``? Without a tool call, did
    the endpoint answer ``/health`` or ``/v1/models`` from ``node`` itself since then?"""
    if cluster is None:
        return Proof.UNAVAILABLE
    if not cluster.endpoint.tool_call.enabled:
        hosts = [n for n in cluster.nodes if n.name == node and n.host == _endpoint_host(cluster)]
        answered = any(cs.evidence(k).ok_since(since) for k in (ProbeKind.HEALTH, ProbeKind.MODELS))
        return Proof.ANSWERING if hosts and answered else Proof.UNAVAILABLE
    ev = cs.evidence(ProbeKind.TOOL_CALL)
    if ev.last_at is None or ev.last_at < since:
        return Proof.PENDING
    return Proof.NOT_SERVING if ev.failing else Proof.SERVING


def _endpoint_host(cluster: Cluster) -> str:
    return (urlsplit(cluster.endpoint.base_url).hostname or "").lower()


def _cluster(cfg: Config, name: str) -> Cluster | None:
    return cfg.cluster(name)


def _serving_since(cs: ClusterState, cluster: Cluster | None, since: float) -> bool:
    """Every enabled endpoint probe has passed since ``since`` (recovery confirmed)."""
    return all(cs.evidence(k).ok_since(since) for k in _endpoint_probes(cluster))


def _cluster_verified(cs: ClusterState, cfg: Config) -> bool:
    """Every enabled endpoint probe has answered since start-up."""
    return all(
        (ev := cs.evidence(k)).last_started is not None and ev.last_started >= cs.fresh_from
        for k in _endpoint_probes(_cluster(cfg, cs.name))
    )


def _endpoint_probes(cluster: Cluster | None) -> list[ProbeKind]:
    if cluster is None:
        return [ProbeKind.HEALTH]
    ep = cluster.endpoint
    return [
        k
        for k, on in (
            (ProbeKind.HEALTH, ep.health.enabled),
            (ProbeKind.MODELS, ep.models.enabled),
            (ProbeKind.TOOL_CALL, ep.tool_call.enabled),
        )
        if on
    ] or [ProbeKind.HEALTH]
