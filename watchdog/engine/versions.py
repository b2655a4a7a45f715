"""Which vLLM version each cluster runs, as its health probe last read it (orchestration layer).

A version change is the first thing to compare after an image bump, so the daemon logs the
version once per cluster and again whenever it changes. :class:`VersionWatch` only decides
*when* there is something to say; the engine logs.
"""

from __future__ import annotations

from watchdog.core.model import ProbeKind, ProbeResult


class VersionWatch:
    """The last version seen per cluster; :meth:`note` returns a line to log when it is new."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def note(self, cluster: str, result: ProbeResult) -> str | None:
        version = result.data.get("version") if result.probe is ProbeKind.HEALTH else None
        if not version:
            return None  # no answer to read a version from: nothing changed that we know of
        before = self._seen.get(cluster)
        if before == version:
            return None
        self._seen[cluster] = version
        if before is None:
            return f"cluster {cluster} runs vLLM {version}"
        return f"cluster {cluster}: vLLM version changed from {before} to {version}"
