"""Incidents from the history log: one row per incident, as a table or JSON (pure logic).

An incident is one (node, condition) from its first alert trigger to its resolve — the
pseudo-node ``watchdog`` for fleet-level conditions such as blindness. Power actions belong
to the node's open incident (the latest opened); one with no open incident (an operator's
``cycle``) is an incident of its own, condition ``power_cycle``. Pages delivered count
toward the incident of their (node, condition).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Incident:
    node: str
    cluster: str
    condition: str
    start: float
    end: float | None = None
    summary: str = ""
    actions: list[str] = field(default_factory=list)
    pages_sent: int = 0
    pages_resolved: int = 0
    channels: list[str] = field(default_factory=list)

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


def incidents(records: Iterable[dict[str, Any]]) -> list[Incident]:
    """Fold the log's records (oldest first) into incidents, oldest first."""
    out: list[Incident] = []
    open_: dict[tuple[str, str], Incident] = {}
    for r in sorted(records, key=lambda r: float(r["t"])):
        kind, node, t = r.get("kind"), str(r.get("node", "")), float(r["t"])
        cluster, condition = str(r.get("cluster", "")), str(r.get("condition", ""))
        if kind == "alert":
            key = (node, condition)
            if r.get("status") == "trigger":
                if key not in open_:  # later triggers of an open incident are updates
                    open_[key] = Incident(node, cluster, condition, t, None, str(r.get("summary")))
                    out.append(open_[key])
            elif key in open_:
                open_.pop(key).end = t
        elif kind == "power":
            text = _power_text(r)
            mine = [i for (n, _), i in open_.items() if n == node]
            if mine:
                max(mine, key=lambda i: i.start).actions.append(text)
            else:
                out.append(Incident(node, cluster, str(r.get("action", "")), t, t, "", [text]))
        elif kind == "page":
            found = open_.get((node, condition))
            if found is None:  # a resolve's page lands after its incident closed
                found = next(
                    (i for i in reversed(out) if (i.node, i.condition) == (node, condition)),
                    None,
                )
            if found is not None:
                if r.get("status") == "resolve":
                    found.pages_resolved += 1
                else:
                    found.pages_sent += 1
                channel = str(r.get("channel", ""))
                if channel and channel not in found.channels:
                    found.channels.append(channel)
    return out


def _power_text(r: dict[str, Any]) -> str:
    steps = r.get("steps") or []
    trail = " ".join(f"{s[0]}:{'ok' if s[1] else 'FAILED'}" for s in steps if len(s) == 2)
    verdict = "ok" if r.get("ok") else "FAILED" + (" (left off)" if r.get("left_off") else "")
    who = " by operator" if r.get("manual") else ""
    at = _clock(float(r["t"]))
    return f"{r.get('action', '?')}{who} at {at}: {verdict}" + (f" [{trail}]" if trail else "")


def select(
    found: list[Incident], *, node: str | None, since: float | None, now: float
) -> list[Incident]:
    """Incidents of ``node`` (or all) that were open at some time after ``now - since``."""
    lo = None if since is None else now - since
    return [
        i
        for i in found
        if (node is None or i.node == node) and (lo is None or i.end is None or i.end >= lo)
    ]


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _span(seconds: float) -> str:
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def render_json(rows: list[Incident], now: float) -> str:
    return json.dumps(
        [{**asdict(i), "open": i.end is None, "duration": round(i.duration(now), 3)} for i in rows],
        indent=2,
    )


def render_table(rows: list[Incident], now: float) -> str:
    if not rows:
        return "no incidents in the history"
    lines = []
    for i in rows:
        end = "open" if i.end is None else _stamp(i.end)
        pages = f"pages: {i.pages_sent} sent, {i.pages_resolved} resolved"
        if i.channels:
            pages += f" ({', '.join(i.channels)})"
        lines.append(
            f"{_stamp(i.start)}  {i.node:<12} {i.condition:<14} "
            f"until {end:<20}  {_span(i.duration(now)):>8}  {pages}"
        )
        if i.summary:
            lines.append(f"    {i.summary}")
        lines.extend(f"    action: {a}" for a in i.actions)
    return "\n".join(lines)
