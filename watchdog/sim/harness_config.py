"""What a harness run is set up with and what it reports, apart from running it.

:class:`Timings` are the compressed timings of a run (divided by its speed);
:func:`daemon_config` writes the daemon's config document for the simulated cluster, the
webhook receiver and the witness; :class:`Outcome` is what happened, read from the world's
side (the plugs' own records, the alerts as received). :mod:`watchdog.sim.harness` runs the
cluster and the daemon with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.sim.cluster import SimCluster
from watchdog.sim.cluster_config import config_clusters
from watchdog.sim.kasa import PowerEvent


@dataclass(frozen=True)
class Timings:
    """Compressed timings at speed 1; every duration is divided by the speed."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    tool_call_interval: float = 2.0
    tool_call_timeout: float = 1.5
    failure_threshold: int = 3
    failure_duration: float = 2.0
    confirm_interval: float = 0.5
    startup_timeout: float = 20.0
    boot_timeout: float = 8.0
    serve_timeout: float = 16.0
    off_time: float = 2.0
    max_cycles: int = 3
    backoff: float = 1.0
    plug_validate: float = 5.0
    boot_delay: float = 2.0
    load_delay: float = 2.0
    slow_factor: float = 3.0

    def scaled(self, speed: float) -> Timings:
        out = {}
        for name, value in self.__dict__.items():
            is_count = name in ("failure_threshold", "max_cycles", "slow_factor")
            out[name] = value if is_count else value / speed
        return Timings(**out)


@dataclass
class Outcome:
    """What happened, from the world's side."""

    records: dict[str, list[PowerEvent]]
    alerts: list[dict[str, Any]]
    classes: dict[str, str]
    latched: set[str]
    elapsed: float
    notes: list[str] = field(default_factory=list)

    def offs(self, node: str) -> int:
        return sum(1 for e in self.records.get(node, []) if not e.on)


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}s"


def daemon_config(
    t: Timings,
    speed: float,
    sim: SimCluster,
    *,
    state_dir: Path,
    witness_port: int,
    receiver_url: str,
) -> dict[str, Any]:
    """The daemon's config document: every probe, policy and alert timing from ``t``."""
    clusters = config_clusters(sim)
    for c in clusters:
        ep = c["endpoint"]
        ep["health"] = {"interval": _fmt(t.probe_interval), "timeout": _fmt(t.probe_timeout)}
        ep["models"] = {"interval": _fmt(t.probe_interval), "timeout": _fmt(t.probe_timeout)}
        ep["tool_call"] = {
            "interval": _fmt(t.tool_call_interval),
            "timeout": _fmt(t.tool_call_timeout),
        }
        for n in c["nodes"]:
            n["ssh"] = {
                **n["ssh"],
                "interval": _fmt(t.probe_interval),
                "timeout": _fmt(t.probe_timeout),
            }
            n["plug"]["timeout"] = "1s"  # whole seconds, as python-kasa would take them
            n["plug"]["validate_interval"] = _fmt(t.plug_validate)
    return {
        "watchdog": {
            "state_dir": str(state_dir),
            "interface": "lo",
            "witnesses": [
                {
                    "host": "127.0.0.1",
                    "port": witness_port,
                    "timeout": _fmt(t.probe_timeout),
                }
            ],
        },
        "policy": {
            "failure_threshold": t.failure_threshold,
            "failure_duration": _fmt(t.failure_duration),
            "confirm_interval": _fmt(t.confirm_interval),
            "startup_timeout": _fmt(t.startup_timeout),
            "boot_timeout": _fmt(t.boot_timeout),
            "serve_timeout": _fmt(t.serve_timeout),
            "off_time": _fmt(t.off_time),
            "max_cycles": t.max_cycles,
            "cycle_window": "1h",
            "backoff": _fmt(t.backoff),
            "plug_confirm_timeout": _fmt(max(2.0, 5.0 / speed)),
            "plug_poll_interval": _fmt(0.2 / speed),
        },
        "alerts": {
            "channels": [{"type": "webhook", "name": "on-call", "url": f"{receiver_url}/hook"}],
            "renotify": "0s",
            "retry_backoff": "0.1s",
        },
        "clusters": clusters,
    }
