"""``cluster-watchdog status``: what the persisted state says about each node (orchestration).

Reads the state file read-only (a corrupt file is reported, never moved aside by a status
call — that is the daemon's job) and renders, per node: class and since when, the reason,
consecutive failures, power cycles used and left in the window, the latch, maintenance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from watchdog.config import Config
from watchdog.core.errors import ControlError, StoreError
from watchdog.state import locks
from watchdog.state.store import Store


def read_status(cfg: Config, directory: Path, *, now: float) -> dict[str, Any]:
    path = directory / "state.json"
    problem = None
    nodes: dict[str, Any] = {}
    try:
        # The daemon's own strict reader: what status shows is what the daemon would load.
        state = Store(directory).read() if directory.is_dir() else None
    except StoreError as exc:
        state, problem = None, f"{exc}; the daemon will set it aside and page at its start"
    else:
        if state is None:
            problem = f"no state yet at {path} (has the daemon run?)"
    records = dict(state.nodes) if state else {}
    intents = dict(state.intents) if state else {}
    p = cfg.policy
    for cluster, node in cfg.nodes():
        rec = records.get(node.name)
        recent = [t for t in (rec.cycles if rec else ()) if now - t < p.cycle_window]
        paused = bool(rec and rec.paused and (rec.paused_until is None or rec.paused_until > now))
        nodes[node.name] = {
            "cluster": cluster.name,
            "class": rec.node_class if rec else "unknown",
            "since": rec.since if rec else None,
            "reason": rec.last_detail if rec else "",
            "consecutive_failures": rec.consecutive_failures if rec else 0,
            "cycles_in_window": len(recent),
            "cycles_left": max(0, p.max_cycles - len(recent)),
            "latched": bool(rec and rec.latched),
            "latched_reason": rec.latched_reason if rec else "",
            "maintenance": paused,
            "maintenance_until": rec.paused_until if paused and rec else None,
            "power_action_in_flight": node.name in intents,
        }
    try:
        pid = locks.daemon_running(directory)
    except ControlError:
        pid = None
    return {
        "state_dir": str(directory),
        "daemon_pid": pid,
        "problem": problem,
        "cycle_window_s": p.cycle_window,
        "max_cycles": p.max_cycles,
        "nodes": nodes,
        "at": now,
    }


def render_status(report: dict[str, Any]) -> str:
    pid = report["daemon_pid"]
    lines = [
        f"daemon: {'running, pid ' + str(pid) if pid else 'NOT running'}"
        f"   state: {report['state_dir']}"
    ]
    if report["problem"]:
        lines.append(f"warning: {report['problem']}")
    head = ("NODE", "CLASS", "SINCE", "FAILURES", "CYCLES", "LATCHED", "MAINTENANCE")
    rows = []
    for name, n in report["nodes"].items():
        cycles = f"{n['cycles_in_window']}/{report['max_cycles']} ({n['cycles_left']} left)"
        if n["maintenance"]:
            maint = "until " + _when(n["maintenance_until"]) if n["maintenance_until"] else "yes"
        else:
            maint = "-"
        rows.append(
            (
                name,
                n["class"].upper() if n["latched"] else n["class"],
                _ago(n["since"], report["at"]),
                str(n["consecutive_failures"]),
                cycles,
                "YES" if n["latched"] else "no",
                maint,
            )
        )
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, *rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for name, n in report["nodes"].items():
        if n["latched"]:
            lines.append(f"{name} is latched: {n['latched_reason']}")
            lines.append(f"  after checking it, run: cluster-watchdog clear {name}")
        elif n["reason"] and n["class"] != "healthy":
            lines.append(f"{name}: {n['reason']}")
    return "\n".join(lines)


def _ago(t: float | None, now: float) -> str:
    if not t:
        return "-"
    s = max(0, int(now - t))
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _when(t: float) -> str:
    # With the zone: the daemon's own answers are in UTC, an operator's shell may not be.
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t))
