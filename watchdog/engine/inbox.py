"""The operator inbox: takes the operator's requests (orchestration layer).

Requests arrive as files in the state directory (:mod:`watchdog.state.control`) and go
through the same lifecycle functions and budget bookkeeping as automatic decisions: a manual
cycle is a decision applied by the fleet keeper; pause, resume and clear are state edits
(:func:`apply_request`, shared with the CLI's offline edit). Each gets its answer file.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from watchdog.core import lifecycle
from watchdog.core.evidence import FleetState
from watchdog.core.model import EventType
from watchdog.engine.context import Context
from watchdog.engine.fleet import Fleet
from watchdog.state import control
from watchdog.telemetry.journal import log_event

log = logging.getLogger("watchdog.engine")


class Inbox:
    """Answers every waiting operator request, in order, once per tick."""

    def __init__(self, ctx: Context, fleet: Fleet) -> None:
        self._ctx = ctx
        self._fleet = fleet

    def take_requests(self) -> None:
        state_dir = self._ctx.state_dir
        for req in control.take_requests(state_dir):
            now = self._ctx.clock()
            try:
                if req.op is control.Op.CYCLE:
                    self._fleet.apply(
                        lifecycle.manual_cycle(
                            self._fleet.state, req.node, now=now, cfg=self._ctx.cfg
                        )
                    )
                    message = f"{req.node}: power cycle started"
                else:
                    self._fleet.state, message = apply_request(
                        self._fleet.state, req.op, req.node, until=req.until, now=now
                    )
            except lifecycle.Refused as exc:
                control.respond(state_dir, control.Response(req.id, False, str(exc)))
                continue
            log_event(
                log,
                EventType.OPERATOR,
                f"operator: {message}",
                node=req.node,
                action=f"operator_{req.op.value}",
            )
            control.respond(state_dir, control.Response(req.id, True, message))


def apply_request(
    fleet: FleetState, op: control.Op, node: str, *, until: float | None, now: float
) -> tuple[FleetState, str]:
    """Pause, resume or clear ``node``: the one mapping of an operator request onto the
    lifecycle, for the daemon and for the CLI's offline edit. Raises ``lifecycle.Refused``.
    A cycle is not a state edit: only the daemon's procedure may carry it out."""
    if op is control.Op.PAUSE:
        until_text = f" until {_iso(until)}" if until else " until resumed"
        return lifecycle.pause(fleet, node, until=until, now=now), f"{node} paused{until_text}"
    if op is control.Op.RESUME:
        return lifecycle.resume(fleet, node, now=now), f"{node} resumed"
    if op is control.Op.CLEAR:
        return lifecycle.clear(fleet, node), f"{node} un-latched; its budget is reset"
    raise ValueError(f"{op} is not a state edit")


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
