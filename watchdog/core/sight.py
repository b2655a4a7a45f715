"""What the watchdog can see, and the fleet-wide facts every verdict depends on (pure).

Owns the fresh-evidence rules of docs/design.md, "Decision rules": when the watchdog is blind
(its own link down, witnesses silent, no node and no plug answering), whether it sees each node
(only while its plug answers), what starts again when sight returns, which ssh failures are a
wedge signal, and when two or more of them call for a plug sweep before any power action.
:class:`FleetFacts` gathers the fleet-wide facts; :mod:`watchdog.core.incremental` judges every
node again when one of them changes. No I/O, no clock: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.config import Config
from watchdog.core.evidence import FleetState, NodeState, restart
from watchdog.core.model import FailureKind, PlugReading
from watchdog.core.records import replace

# Banner failures that mean "the node does not serve sshd"; BAD_BANNER is a wrong port, not a
# wedge, and PROBE_ERROR is our own fault.
_WEDGE_SSH = frozenset(
    {
        FailureKind.NO_BANNER,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.TIMEOUT,
        FailureKind.REFUSED,
        FailureKind.UNREACHABLE,
    }
)


# What a dark network looks like from here: no answer at all, as opposed to an answer.
_NO_ANSWER = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.CONNECT_TIMEOUT,
        FailureKind.REFUSED,
        FailureKind.UNREACHABLE,
    }
)


@dataclass(frozen=True, slots=True)
class FleetFacts:
    """The fleet-wide facts every verdict and page depends on: when one changes, every node
    must be judged again (see :mod:`watchdog.core.incremental`)."""

    blind: str | None  # why the watchdog cannot see (or cannot trust what it sees)
    witness_misses: bool  # a configured witness is failing (below the blind threshold)
    sweep: bool  # several nodes fail on ssh and not every plug was read since


def fleet_facts(
    fleet: FleetState,
    cfg: Config,
    now: float,
    hold: str | None,
    starts: Sequence[float] | None = None,
) -> FleetFacts:
    """``starts``: when each node with a wedge signal began to fail, in ascending order
    (None: scan the fleet)."""
    return FleetFacts(
        _blind_reason(fleet, cfg, now) or hold,
        bool(cfg.watchdog.witnesses and fleet.witness.failing),
        _sweep_needed(fleet, cfg, now, starts),
    )


def signal_starts(fleet: FleetState, now: float) -> list[float]:
    """When each node with a wedge signal began to fail (ascending), by a scan of the fleet."""
    return sorted(
        st.ssh.failing_since or now
        for st in fleet.nodes.values()
        if st.ssh.consecutive and _wedge_signal(st, now)
    )


def _wedge_signal(st: NodeState, now: float) -> bool:
    """sshd fails in a way that may mean a wedge, and the node is not in a power story."""
    return (
        st.ssh.failing
        and st.ssh.last_failure in _WEDGE_SSH
        and st.cycling_since is None
        and st.boot_started_at is None
        and not st.latched
        and not st.in_maintenance(now)
    )


def _sweep_needed(
    fleet: FleetState, cfg: Config, now: float, starts: Sequence[float] | None = None
) -> bool:
    """Two or more nodes turned suspect on ssh within one confirm interval, no node's sshd
    answered a probe begun since the latest of them began (that would prove the watchdog
    sees), and not every plug was read since then (a sweep, or each plug on its own).

    ``starts``: when each node with a wedge signal began to fail, ascending (None: scan the
    fleet).
    """
    if starts is None:
        starts = signal_starts(fleet, now)
    # Two or more within one confirm interval of the latest: the one just before it is.
    if len(starts) < 2 or starts[-1] - starts[-2] > cfg.policy.confirm_interval:
        return False
    latest = starts[-1]
    if fleet.swept_at is not None and fleet.swept_at >= latest:
        return False
    # A banner read by a probe begun after the burst proves the watchdog sees: no sweep.
    if fleet.banner_at is not None and fleet.banner_at >= latest:
        return False
    return any(
        st.plug_at is None or st.plug_at < latest
        for st in fleet.nodes.values()
        if st.cycling_since is None
    )


def _blind_reason(fleet: FleetState, cfg: Config, now: float) -> str | None:
    p = cfg.policy
    if fleet.link_up is False:
        return "the watchdog's own network link is down"
    if cfg.watchdog.witnesses and fleet.witness.meets(p.failure_threshold, 0.0, now):
        return f"no reference target answers ({fleet.witness.last_detail or 'witness failing'})"
    # Without witnesses, mass failure with no plug answering is blindness, not a wedge.
    all_dark = all(st.ssh.failing and not _answers(st.plug) for st in fleet.nodes.values())
    if all_dark and len(fleet.nodes) > 1:
        return "no node and no plug answers"
    return None


def _sight_returned(fleet: FleetState, now: float) -> FleetState:
    """The fleet was blind and sees again: every node is probed afresh before it is judged,
    and endpoint failures that darkness alone explains (no answer at all) start again."""
    nodes = {n: _regain(st, now) for n, st in fleet.nodes.items()}
    clusters = {
        c: replace(
            cs,
            probes={
                k: restart(ev) if ev.last_failure in _NO_ANSWER else ev
                for k, ev in cs.probes.items()
            },
        )
        for c, cs in fleet.clusters.items()
    }
    return replace(fleet, nodes=nodes, clusters=clusters)


def _sight(st: NodeState, blind: str | None, now: float) -> NodeState:
    """Track whether the watchdog sees the node; on regaining sight, restart its suspicion.
    A plug reading taken before sight returned says nothing either way."""
    stale = st.plug_at is not None and st.sight_at is not None and st.plug_at < st.sight_at
    sees = blind is None and (_answers(st.plug) or stale)
    if not sees and not st.dark:
        return replace(st, dark=True)
    if sees and st.dark:
        return _regain(st, now)
    return st


def _regain(st: NodeState, now: float) -> NodeState:
    """Sight returns: every failure streak (sshd, ping, plug misses) starts again from zero."""
    return replace(
        st,
        dark=False,
        sight_at=now,
        ssh=restart(st.ssh),
        ping=restart(st.ping),
        plug_misses=0,
        plug_missing_since=None,
    )


def _answers(plug: PlugReading | None) -> bool:
    """Something answered at the plug's address (even a refusal of our credentials proves the
    watchdog sees that far); only an unreachable plug is dark."""
    return plug is None or plug.reachable or plug.failure is not FailureKind.PLUG_UNREACHABLE
