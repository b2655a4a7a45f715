"""Endpoint liveness probes: ``GET /health`` and ``GET /v1/models`` (adapter layer).

Both are cheap and both are blind to a stuck engine (vLLM issue #49210: ``/health``
stayed 200 for 17 h; ``/v1/models`` answers from config). They tell "process up, key right,
model name right" apart from "serving", which only the tool call proves (:mod:`.toolcall`).

Also owns :func:`make_client`, the httpx client the daemon's alert channels share.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING

from watchdog.config import Endpoint
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._http import Exchange, Fault, run_probe, status_fault
from watchdog.probes.wire import WireClient

if TYPE_CHECKING:
    import httpx

_VERSION_CHARS = 64  # "0.10.1.1+cu128" and the like; more is not a version
_SHOWN_MODELS = 5  # enough to spot the right id, short enough for one line


def make_client(*, verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The client every endpoint probe shares.

    No keep-alive: each probe must prove a fresh TCP connect (a wedged host can keep an old
    connection open while refusing new ones, and a pooled connection hides "refused" during a
    model load). No environment proxies (``trust_env=False``): the watchdog must reach the node
    itself, not whatever ``HTTPS_PROXY`` a shell exported. No redirects: a 3xx means the
    base URL is wrong, and we say so. No retries (httpx's transport default is 0; set anyway).
    ``verify``: a TLS context built once and shared makes a client cheap to create.
    httpx is imported here, when a client is first made: the probes themselves speak HTTP/1.1
    on their own (:mod:`.wire`), so a daemon that never pages never loads it.
    """
    import httpx

    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(retries=0, trust_env=False, verify=verify),
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        # Ask for an uncompressed body: the size limit then bounds what is decoded too.
        headers={"User-Agent": "cluster-watchdog", "Accept-Encoding": "identity"},
        timeout=httpx.Timeout(30.0),
    )


async def probe_health(
    client: WireClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
    target: str,
    with_version: bool = True,
) -> ProbeResult:
    """``GET {base}/health`` answers 200; then ``GET /version`` says which vLLM runs.

    vLLM sends no body with a healthy 200, but a dead engine's 500/503 is read (it is empty
    in vLLM, a proxy may explain itself). Neither request needs the key. A missing or odd
    ``/version`` never fails the probe: the version is then ``unknown``. With
    ``with_version`` false only ``/health`` is asked (the caller read the version recently).
    """

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        reply = await ex.request("GET", "/health", auth=False)
        if reply.status != 200:
            raise status_fault(reply, "/health")
        if not with_version:
            return "HTTP 200", {}
        ex.step = "version"
        version = await _version(ex)
        return f"HTTP 200, vLLM {version}", {"version": version}

    return await run_probe(ProbeKind.HEALTH, client, ep, timeout=timeout, target=target, body=body)


async def probe_models(
    client: WireClient,
    ep: Endpoint,
    *,
    timeout: float,  # noqa: ASYNC109 -- the caller owns every probe's deadline
    target: str,
) -> ProbeResult:
    """``GET {base}/v1/models`` lists ``ep.model`` (article step 4a)."""

    async def body(ex: Exchange) -> tuple[str, Mapping[str, str]]:
        reply = await ex.request("GET", "/v1/models", auth=True)
        if reply.status != 200:
            raise status_fault(reply, "/v1/models")
        ids = served_ids(reply.json())
        listed = ", ".join(ids)
        if ep.model not in ids:
            shown = ids[:_SHOWN_MODELS]
            more = f" and {len(ids) - len(shown)} more" if len(ids) > len(shown) else ""
            raise Fault(
                FailureKind.MODEL_MISSING,
                f"model {ep.model!r} not served; /v1/models lists {listed or 'nothing'}",
                f"server lists {shown!r}{more}; set endpoint.model to one of them "
                "(--served-model-name)",
                {"models": listed},
            )
        return f"serves {ep.model}", {"models": listed}

    return await run_probe(ProbeKind.MODELS, client, ep, timeout=timeout, target=target, body=body)


async def _version(ex: Exchange) -> str:
    """``GET /version`` -> ``{"version": "0.10.0"}``; ``unknown`` when it says anything else."""
    try:
        reply = await ex.request("GET", "/version", auth=False)
        payload = reply.json() if reply.status == 200 else None
    except Fault:
        return "unknown"
    version = payload.get("version") if isinstance(payload, dict) else None
    if not isinstance(version, str):
        return "unknown"
    shown = "".join(c for c in version if c.isprintable() and not c.isspace())[:_VERSION_CHARS]
    return shown or "unknown"


def served_ids(payload: object) -> list[str]:
    """The ids in an OpenAI model list, or BAD_RESPONSE if it is not one."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise Fault(FailureKind.BAD_RESPONSE, "/v1/models answered 200 without a data[] list")
    ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if len(ids) != len(data):
        raise Fault(FailureKind.BAD_RESPONSE, "/v1/models lists entries without a string id")
    return ids
