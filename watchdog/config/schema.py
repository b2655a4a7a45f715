"""The top of the config schema: ``Config`` with its ``policy`` and ``watchdog`` sections.

``Config`` also checks what spans clusters (unique cluster and node names, one node per plug
outlet) and answers lookups (``nodes()``, ``node(name)``, ``state_path()``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from watchdog.config.alerts import Alerts
from watchdog.config.base import _Problem, _Strict
from watchdog.config.durations import Duration, PositiveDuration, format_duration
from watchdog.config.metrics import Metrics
from watchdog.config.nodes import Cluster, Node, PlugType


class Policy(_Strict):
    """Thresholds and limits of the decision rules (docs/design.md, "Decision rules")."""

    failure_threshold: int = Field(3, ge=1, le=100)
    failure_duration: Duration = 60.0
    confirm_interval: PositiveDuration = 5.0
    startup_timeout: PositiveDuration = 600.0
    boot_timeout: PositiveDuration = 600.0
    serve_timeout: PositiveDuration = 1800.0
    off_time: PositiveDuration = 60.0
    max_cycles: int = Field(3, ge=1, le=20)
    cycle_window: PositiveDuration = 21600.0
    backoff: Duration = 300.0  # wait before cycle n+1: backoff * 2**(n-1)
    max_in_flight: int = Field(1, ge=1, le=16)
    fleet_max_cycles: int = Field(4, ge=1, le=100)
    fleet_window: PositiveDuration = 3600.0
    power_on_if_off: bool = False
    # Fence-agent style confirmation of each switch: poll the relay until it reads as asked.
    plug_confirm_timeout: PositiveDuration = 20.0
    plug_poll_interval: PositiveDuration = 1.0

    @model_validator(mode="after")
    def _sane(self) -> Policy:
        # The model can only start loading once the node has booted: serve grace ⊇ boot grace.
        if self.serve_timeout < self.boot_timeout:
            raise _Problem(
                f"shorter than boot_timeout ({format_duration(self.serve_timeout)} < "
                f"{format_duration(self.boot_timeout)})",
                "make serve_timeout at least boot_timeout",
                "serve_timeout",
            )
        return self


class Witness(_Strict):
    """A reference target (gateway, switch) proving the watchdog's own network works."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # TCP connect; None: ICMP echo
    timeout: PositiveDuration = 2.0


class Watchdog(_Strict):
    state_dir: str | None = None  # default: $STATE_DIRECTORY, else ./state
    dry_run: bool = False
    interface: str | None = None  # the watchdog's own link; None: any non-loopback up
    witnesses: list[Witness] = []  # noqa: RUF012 - pydantic copies a default per instance
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Strict):
    watchdog: Watchdog = Watchdog()
    policy: Policy = Policy()
    alerts: Alerts = Alerts()
    metrics: Metrics | None = None  # the Prometheus endpoint; off unless set
    clusters: list[Cluster] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        clusters: set[str] = set()
        nodes: set[str] = set()
        plugs: dict[tuple[str, int | None, int | str | None], str] = {}
        for ci, cluster in enumerate(self.clusters):
            if cluster.name in clusters:
                raise _Problem(
                    f"duplicate cluster name {cluster.name!r}",
                    "give every cluster a unique name",
                    f"clusters[{ci}].name",
                )
            clusters.add(cluster.name)
            for ni, node in enumerate(cluster.nodes):
                at = f"clusters[{ci}].nodes[{ni}]"
                # Node names are the operator's handle (`cycle NODE`): unique across clusters.
                if node.name in nodes:
                    raise _Problem(
                        f"duplicate node name {node.name!r}",
                        "give every node a unique name",
                        f"{at}.name",
                    )
                nodes.add(node.name)
                # Two nodes on one outlet: cycling one would cut the other too.
                plug = (node.plug.host, node.plug.port, node.plug.outlet)
                if node.plug.type is not PlugType.DRY_RUN and plug in plugs:
                    raise _Problem(
                        f"same plug outlet as node {plugs[plug]!r}",
                        "give each node its own plug, or its own outlet of a strip",
                        f"{at}.plug",
                    )
                plugs[plug] = node.name
        return self

    def nodes(self) -> list[tuple[Cluster, Node]]:
        return [(c, n) for c in self.clusters for n in c.nodes]

    # Lookup tables, built on first use (the policy asks for a node's settings at every
    # evaluation); the model is frozen, so they never go stale.
    @cached_property
    def _by_node(self) -> dict[str, tuple[Cluster, Node]]:
        return {n.name: (c, n) for c in self.clusters for n in c.nodes}

    @cached_property
    def _by_cluster(self) -> dict[str, Cluster]:
        return {c.name: c for c in self.clusters}

    def node(self, name: str) -> tuple[Cluster, Node]:
        return self._by_node[name]

    def cluster(self, name: str) -> Cluster | None:
        return self._by_cluster.get(name)

    def state_path(self, env: Mapping[str, str] | None = None) -> Path:
        env = os.environ if env is None else env
        if self.watchdog.state_dir:
            return Path(self.watchdog.state_dir)
        if env.get("STATE_DIRECTORY"):
            # systemd may pass several, colon-separated; the first is ours.
            return Path(env["STATE_DIRECTORY"].split(":")[0])
        return Path("state")
