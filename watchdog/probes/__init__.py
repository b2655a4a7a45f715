"""Probes: async observations that return a :class:`~watchdog.core.model.ProbeResult`, never raise.

Endpoint probes (``http``, ``toolcall``, ``progress``) share one bounded-request helper
(``_http``); node probes (``ssh``, ``ping``, ``tcp``) live beside them. Each probe owns its
deadline handling but not the deadline itself: the caller passes ``timeout``.
"""

from watchdog.probes.http import make_client, probe_health, probe_models
from watchdog.probes.progress import ProgressTracker, probe_progress
from watchdog.probes.toolcall import check_topology, probe_round_trip, probe_tool_call

__all__ = [
    "ProgressTracker",
    "check_topology",
    "make_client",
    "probe_health",
    "probe_models",
    "probe_progress",
    "probe_round_trip",
    "probe_tool_call",
]
