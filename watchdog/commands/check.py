"""``cluster-watchdog check``: every probe of every node and endpoint once, concurrently.

Orchestration layer. The four endpoint steps (4a models, 4b/4c tool call, 4d round trip;
docs/design.md, "The endpoint steps") plus health, topology, sshd banner, optional ping, the
plug (pre-validated: reachable, credentials accepted, relay state) and the witnesses, as one
table or JSON.
Every probe runs under its own configured timeout, all at once, so a hung endpoint is
reported after its own timeout and never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass

from watchdog.config import Config, Node, format_duration
from watchdog.core.errors import ConfigError
from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.engine.suite import ProbeSuite
from watchdog.plugs.factory import make_plug

_CLOSE_TIMEOUT = 1.0  # closing a plug connection must not hold the report back


@dataclass(frozen=True, slots=True)
class Row:
    target: str
    probe: str
    failure: str | None
    latency: float
    detail: str
    hint: str

    @property
    def ok(self) -> bool:
        return self.failure is None

    @classmethod
    def of(cls, r: ProbeResult) -> Row:
        failure = None if r.failure is None else r.failure.value
        return cls(r.target, r.probe.value, failure, r.latency, r.detail, r.hint)


async def run_check(cfg: Config, *, node: str | None = None) -> list[Row]:
    """Probe everything (or one node and its cluster's endpoint) once; never raises."""
    suite = ProbeSuite(cfg)
    try:
        jobs: list[Awaitable[list[Row]]] = []
        for cluster in cfg.clusters:
            members = [n for n in cluster.nodes if node is None or n.name == node]
            if not members:
                continue
            target = f"cluster {cluster.name}"
            for kind, _ in suite.endpoint_jobs(cluster):
                jobs.append(_guard(target, kind.value, _endpoint(suite, cluster.name, kind)))
            for n in members:
                # ssh, ping and plug are separate jobs: a silent sshd must not delay the plug.
                target = f"node {n.name}"
                if n.ssh.enabled:
                    jobs.append(_guard(target, ProbeKind.SSH.value, _rows(suite.ssh(n))))
                if n.ping.enabled:
                    jobs.append(_guard(target, ProbeKind.PING.value, _rows(suite.ping(n))))
                jobs.append(_guard(target, ProbeKind.PLUG.value, _one(_plug(n))))
        for w in cfg.watchdog.witnesses:
            target = f"witness {w.host}" + (f":{w.port}" if w.port else "")
            jobs.append(_guard(target, ProbeKind.WITNESS.value, _rows(suite.witness(w))))
        groups = await asyncio.gather(*jobs)
    finally:
        await suite.aclose()
    return [row for group in groups for row in group]


async def _guard(target: str, probe: str, job: Awaitable[list[Row]]) -> list[Row]:
    """A bug in one probe becomes its own failed row instead of hiding every other result."""
    try:
        return await job
    except ConfigError:
        raise  # a plug setting no device speaks: the CLI exits 78 and names the key
    except Exception as exc:  # reported as a row; its message may hold secrets: type only
        kind = FailureKind.PROBE_ERROR
        detail = f"the probe crashed: {type(exc).__name__}"
        return [Row(target, probe, kind.value, 0.0, detail, hint_for(kind))]


async def _rows(result: Awaitable[ProbeResult]) -> list[Row]:
    return [Row.of(await result)]


async def _one(row: Awaitable[Row]) -> list[Row]:
    return [await row]


async def _endpoint(suite: ProbeSuite, cluster: str, kind: ProbeKind) -> list[Row]:
    found = next(c for c in suite.cfg.clusters if c.name == cluster)
    return [Row.of(r) for r in await suite.endpoint(found, kind)]


async def _plug(node: Node) -> Row:
    target = f"node {node.name}"
    if node.plug.type.value == "dry_run":
        return Row(target, ProbeKind.PLUG.value, None, 0.0, "dry-run plug: never switched", "")
    plug = make_plug(node.plug, label=node.name, dry_run=True)  # check never switches
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        # The plug driver retries a silent plug itself (about 4 x timeout + 3 s); the one-shot
        # report gives the plug its configured timeout for the whole read, like every probe.
        async with asyncio.timeout(node.plug.timeout):
            reading = await plug.read()
    except TimeoutError:
        kind = FailureKind.PLUG_UNREACHABLE
        detail = f"no answer within {format_duration(node.plug.timeout)}"
        return Row(
            target, ProbeKind.PLUG.value, kind.value, loop.time() - start, detail, hint_for(kind)
        )
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await plug.close()
    latency = loop.time() - start
    if not reading.reachable:
        kind = reading.failure or FailureKind.PLUG_UNREACHABLE
        return Row(
            target, ProbeKind.PLUG.value, kind.value, latency, reading.detail, hint_for(kind)
        )
    state = {True: "on", False: "OFF", None: "state unknown"}[reading.is_on]
    watts = f", {reading.watts:.0f} W" if reading.watts is not None else ""
    off = reading.is_on is False
    failure = FailureKind.PLUG_OFF.value if off else None
    hint = hint_for(FailureKind.PLUG_OFF) if off else ""
    return Row(target, ProbeKind.PLUG.value, failure, latency, f"reachable, {state}{watts}", hint)


def render_table(rows: list[Row]) -> str:
    head = ("TARGET", "PROBE", "RESULT", "LATENCY", "DETAIL")
    body = [
        (
            r.target,
            r.probe,
            "ok" if r.ok else str(r.failure),
            f"{r.latency * 1000:.0f} ms",
            r.detail,
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(4)]
    lines = []
    for cells, row in zip((head, *body), (None, *rows), strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(cells[:4], widths, strict=True))
        lines.append(f"{line}  {cells[4]}".rstrip())
        if row is not None and not row.ok and row.hint:
            lines.append(" " * (sum(widths) + 8) + f"fix: {row.hint}")
    failed = sum(not r.ok for r in rows)
    lines.append(f"\n{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)


def render_json(rows: list[Row]) -> str:
    doc = {
        "ok": all(r.ok for r in rows),
        "results": [
            {
                "target": r.target,
                "probe": r.probe,
                "ok": r.ok,
                "failure": r.failure,
                "latency_s": round(r.latency, 4),
                "detail": r.detail,
                "hint": r.hint,
            }
            for r in rows
        ],
    }
    return json.dumps(doc, indent=2)
