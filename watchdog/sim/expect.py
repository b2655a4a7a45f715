"""Expected outcomes of the scenario catalogue, as checks on what the world recorded.

Each check reads an :class:`~watchdog.sim.harness_config.Outcome` — the plugs' own power records and
the alerts as the webhook received them, never the daemon's word — and returns ``None`` when
it holds, or one line saying what happened instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from watchdog.sim.harness_config import Outcome

Check = Callable[[Outcome], "str | None"]


def cycles(**expected: int) -> Check:
    want = {k.replace("_", "-"): v for k, v in expected.items()}

    def check(o: Outcome) -> str | None:
        got = {n: o.offs(n) for n in want}
        return None if got == want else f"power cycles per node: expected {want}, got {got}"

    return check


def powered_on_at_end(o: Outcome) -> str | None:
    off = [n for n, rec in o.records.items() if rec and not rec[-1].on]
    return f"left switched off: {off}" if off else None


def no_page(o: Outcome) -> str | None:
    pages = [_brief(a) for a in o.alerts if a.get("status") == "trigger"]
    return f"expected no page, got {pages}" if pages else None


def paged(node: str, condition: str, failure: str | None = None, once: bool = True) -> Check:
    def check(o: Outcome) -> str | None:
        hits = [
            a
            for a in o.alerts
            if a.get("node") == node
            and a.get("condition") == condition
            and a.get("status") == "trigger"
        ]
        if not hits:
            return f"expected a {condition} page for {node}; got {[_brief(a) for a in o.alerts]}"
        if once and len(hits) != 1:
            return f"expected one {condition} page for {node}, got {len(hits)}"
        if failure is not None and hits[0].get("failure") != failure:
            return f"{condition} page carries failure {hits[0].get('failure')!r}, not {failure!r}"
        if not hits[0].get("todo"):
            return f"{condition} page has no hint for the human"
        return None

    return check


def sequence(*steps: tuple[str, str, str]) -> Check:
    """These (node, condition, status) alerts arrive in this order (others may interleave)."""

    def check(o: Outcome) -> str | None:
        seen = [(a.get("node"), a.get("condition"), a.get("status")) for a in o.alerts]
        it = iter(seen)
        missing = [s for s in steps if s not in it]
        return f"alert sequence {list(steps)} not in {seen}" if missing else None

    return check


def exactly(*steps: tuple[str, str, str]) -> Check:
    """These (node, condition, status) alerts and nothing else arrived, in this order."""

    def check(o: Outcome) -> str | None:
        seen = [(a.get("node"), a.get("condition"), a.get("status")) for a in o.alerts]
        return None if seen == list(steps) else f"alerts {seen}, expected exactly {list(steps)}"

    return check


def only_pages(*allowed: tuple[str, str]) -> Check:
    def check(o: Outcome) -> str | None:
        extra = {
            (a.get("node"), a.get("condition")) for a in o.alerts if a.get("status") == "trigger"
        } - set(allowed)
        return f"unexpected pages: {sorted(map(str, extra))}" if extra else None

    return check


def latched(*nodes: str) -> Check:
    def check(o: Outcome) -> str | None:
        return None if o.latched == set(nodes) else f"latched {o.latched}, expected {set(nodes)}"

    return check


def one_at_a_time(o: Outcome) -> str | None:
    spans = []
    for node, rec in o.records.items():
        off = None
        for e in rec:
            if not e.on:
                off = e.at
            elif off is not None:
                spans.append((off, e.at, node))
                off = None
    spans.sort()
    for (_, e1, n1), (s2, _, n2) in itertools.pairwise(spans):
        if s2 < e1:
            return f"{n1} and {n2} were off at the same time"
    return None


def _brief(a: dict[str, Any]) -> str:
    return f"{a.get('node')}/{a.get('condition')}/{a.get('status')}"
