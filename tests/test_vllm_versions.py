"""Every shape real vLLM sends, per version, and what the probes make of it.

One table: each case of the vLLM reference (healthy answers, errors a watchdog meets, tool-call
parsing) served by the fake vLLM in the version that sends it, probed as ``check`` probes it,
with the failure kind and hint expected. ``pytest -s`` prints it as a Markdown table. Also: the
daemon logs the vLLM version once and again when it changes, and the policy makes none of the
new kinds a power action.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr

from watchdog.config import Config, Endpoint, parse_config
from watchdog.core.evidence import (
    initial_fleet,
    observe_endpoint,
    observe_link,
    observe_node,
    observe_plug,
    observe_witness,
)
from watchdog.core.hints import hint_for
from watchdog.core.model import (
    FailureKind,
    NodeClass,
    PlugReading,
    PowerAction,
    ProbeKind,
    ProbeResult,
)
from watchdog.core.policy import evaluate
from watchdog.engine.suite import ProbeSuite
from watchdog.engine.versions import VersionWatch
from watchdog.probes import check_topology, probe_health, probe_models
from watchdog.probes.progress import ProgressTracker, probe_progress
from watchdog.probes.toolcall import probe_round_trip, probe_tool_call
from watchdog.probes.wire import WireClient
from watchdog.sim.harness import Harness
from watchdog.sim.vllm import FakeVllm, VllmMode

KEY = "sk-shape-test"
F = FailureKind


@dataclass(frozen=True)
class Shape:
    what: str
    version: str
    mode: VllmMode
    probe: str
    kind: FailureKind | None
    tag: str = "tp2"  # the fingerprint's tp tag ("" = TP=1 or --fingerprint-mode hash)
    key: str = KEY  # what the watchdog sends


SHAPES = [
    *(
        Shape(f"healthy {v}: /health 200 empty, /version", v, VllmMode.HEALTHY, "health", None)
        for v in ("0.10", "0.20", "0.33")
    ),
    Shape("system_fingerprint null (0.10)", "0.10", VllmMode.HEALTHY, "topology", None),
    Shape("system_fingerprint null (0.20)", "0.20", VllmMode.HEALTHY, "topology", None),
    Shape("fingerprint vllm-0.33.0-tp2-<hash>", "0.33", VllmMode.HEALTHY, "topology", None),
    Shape(
        "fingerprint without tp tag (TP=1, hash mode)",
        "0.33",
        VllmMode.HEALTHY,
        "topology",
        None,
        tag="",
    ),
    Shape(
        "fingerprint with another tp tag",
        "0.33",
        VllmMode.WRONG_TOPOLOGY,
        "topology",
        F.WRONG_TOPOLOGY,
    ),
    Shape(
        "empty tool_calls [] (0.10), reasoning_content",
        "0.10",
        VllmMode.HEALTHY,
        "round_trip",
        None,
    ),
    Shape("empty tool_calls omitted (0.33)", "0.33", VllmMode.HEALTHY, "round_trip", None),
    Shape(
        '401 {"error":"Unauthorized"}', "0.33", VllmMode.HEALTHY, "models", F.AUTH, key="sk-wrong"
    ),
    Shape(
        "unknown model, flat error (0.10.0)",
        "0.10",
        VllmMode.MODEL_MISSING,
        "tool_call",
        F.MODEL_MISSING,
    ),
    Shape(
        "unknown model, nested error (0.20)",
        "0.20",
        VllmMode.MODEL_MISSING,
        "tool_call",
        F.MODEL_MISSING,
    ),
    Shape(
        "unknown model, Valid aliases (0.33)",
        "0.33",
        VllmMode.MODEL_MISSING,
        "tool_call",
        F.MODEL_MISSING,
    ),
    Shape(
        "auto tool choice without the flags",
        "0.33",
        VllmMode.TOOL_CHOICE_DISABLED,
        "tool_call",
        F.TOOL_CHOICE_DISABLED,
    ),
    *(
        Shape(
            f"context length 400 ({v})", v, VllmMode.CONTEXT_LENGTH, "tool_call", F.CONTEXT_LENGTH
        )
        for v in ("0.10", "0.20", "0.33")
    ),
    Shape(
        "engine dead: /health 500 empty (0.10)",
        "0.10",
        VllmMode.ENGINE_DEAD,
        "health",
        F.ENGINE_DEAD,
    ),
    Shape(
        "engine dead: chat 500 empty (0.10)",
        "0.10",
        VllmMode.ENGINE_DEAD,
        "tool_call",
        F.ENGINE_DEAD,
    ),
    Shape("engine dead: /v1/models still 200 (0.10)", "0.10", VllmMode.ENGINE_DEAD, "models", None),
    Shape(
        "engine dead: /health 503 empty (0.20)",
        "0.20",
        VllmMode.ENGINE_DEAD,
        "health",
        F.ENGINE_DEAD,
    ),
    Shape(
        "engine dead: chat 500 EngineCore encountered… (0.20)",
        "0.20",
        VllmMode.ENGINE_DEAD,
        "tool_call",
        F.ENGINE_DEAD,
    ),
    Shape(
        "engine dead: /health 503 empty (0.33)",
        "0.33",
        VllmMode.ENGINE_DEAD,
        "health",
        F.ENGINE_DEAD,
    ),
    Shape(
        "engine dead: chat 500 The server had an error… (0.33)",
        "0.33",
        VllmMode.ENGINE_DEAD,
        "tool_call",
        F.ENGINE_DEAD,
    ),
    Shape("engine busy: 503 queue full", "0.33", VllmMode.BUSY, "tool_call", F.ENGINE_BUSY),
    Shape("elastic scaling: 503 on /v1", "0.33", VllmMode.SCALING, "models", F.SCALING),
    Shape("elastic scaling: /health stays 200", "0.33", VllmMode.SCALING, "health", None),
    Shape(
        "generation error: 500 Internal server error",
        "0.33",
        VllmMode.GENERATION_ERROR,
        "tool_call",
        F.GENERATION_ERROR,
    ),
    Shape("model loading / process exited: refused", "0.33", VllmMode.LOADING, "health", F.REFUSED),
    Shape("prose before a valid call (tool parser)", "0.33", VllmMode.PREAMBLE, "tool_call", None),
    Shape(
        "parser did not match: text, no tool_calls, stop",
        "0.33",
        VllmMode.NO_TOOL_CALL,
        "tool_call",
        F.NO_TOOL_CALL,
    ),
    Shape(
        "budget spent reasoning: length, content null",
        "0.33",
        VllmMode.TRUNCATED,
        "tool_call",
        F.TRUNCATED,
    ),
    Shape(
        "no reasoning parser: <think> in content and arguments",
        "0.10",
        VllmMode.REASONING_LEAK,
        "tool_call",
        F.REASONING_LEAK,
    ),
    Shape(
        "/health 200, requests running, no token generated",
        "0.33",
        VllmMode.ENGINE_STUCK,
        "progress",
        F.ENGINE_STALLED,
    ),
]
SPECIFIC_HINTS = {F.MODEL_MISSING}  # the probe names the served ids in its own hint


@pytest.fixture
async def client() -> AsyncIterator[WireClient]:
    async with WireClient() as c:
        yield c


async def observe(shape: Shape, client: WireClient) -> ProbeResult:
    async with FakeVllm(
        api_key=KEY, vllm_version=shape.version, topology_tag=shape.tag, dead_exit_after=None
    ) as fake:
        fake.background = 2
        await fake.set_mode(shape.mode)
        ep = Endpoint(
            base_url=fake.url,
            model="nvidia/nemotron-3-super",
            expect_fingerprint="tp2",
            progress={"stall_after": "1s"},
        ).model_copy(update={"api_key": SecretStr(shape.key)})
        kw = {"timeout": 2.0, "target": "cluster main"}
        if shape.probe == "health":
            return await probe_health(client, ep, **kw)
        if shape.probe == "models":
            return await probe_models(client, ep, **kw)
        if shape.probe == "round_trip":
            return await probe_round_trip(client, ep, **kw)
        if shape.probe == "progress":
            tracker = ProgressTracker()
            await probe_progress(client, ep, tracker, now=0.0, **kw)
            return await probe_progress(client, ep, tracker, now=1.0, **kw)
        call = await probe_tool_call(client, ep, **kw)
        return (
            check_topology(call, ep, target="cluster main") if shape.probe == "topology" else call
        )


SEEN: list[tuple[Shape, ProbeResult]] = []


@pytest.mark.parametrize("shape", SHAPES, ids=[s.what for s in SHAPES])
async def test_each_reference_shape_gets_its_kind_and_hint(
    shape: Shape, client: WireClient
) -> None:
    result = await observe(shape, client)
    SEEN.append((shape, result))
    assert result.probe is ProbeKind(shape.probe)
    assert result.failure == shape.kind, result
    if shape.kind is None:
        assert not result.hint
    elif shape.kind not in SPECIFIC_HINTS:
        assert result.hint == hint_for(shape.kind)
    if shape.probe == "health" and shape.kind is None:
        scaling = shape.mode is VllmMode.SCALING  # /version answers 503 too: unknown
        assert result.data["version"] == ("unknown" if scaling else f"{shape.version}.0")
    if shape.probe == "topology" and shape.mode is VllmMode.HEALTHY and shape.version != "0.33":
        assert "unknown" in result.detail and "--fingerprint-mode full" in result.detail


def test_print_the_shape_table() -> None:
    """Run with ``-s`` after the shapes: the table of the closing note."""
    print("\n| shape (vLLM) | probe | kind | detail | hint |\n|---|---|---|---|---|")
    for shape, r in SEEN:
        kind = r.failure.value if r.failure else "ok"
        detail = r.detail.replace("|", "\\|")
        print(f"| {shape.what} | {r.probe} | {kind} | {detail} | {r.hint or '–'} |")


# ------------------------------------------------------------------ the daemon's version log
def test_the_version_is_noted_once_and_again_when_it_changes() -> None:
    watch = VersionWatch()

    def health(version: str | None) -> ProbeResult:
        data = {"version": version} if version else {}
        return ProbeResult(ProbeKind.HEALTH, "cluster a", None, 0.0, data=data)

    assert watch.note("a", health("0.20.0")) == "cluster a runs vLLM 0.20.0"
    assert watch.note("a", health("0.20.0")) is None
    assert watch.note("a", health(None)) is None  # a failed health probe changes nothing
    assert watch.note("b", health("0.20.0")) == "cluster b runs vLLM 0.20.0"
    assert watch.note("a", health("0.33.0")) == (
        "cluster a: vLLM version changed from 0.20.0 to 0.33.0"
    )


async def test_the_version_is_asked_at_the_first_health_probe_every_sixth_and_after_a_failure() -> (
    None
):
    async with FakeVllm(api_key=KEY, vllm_version="0.33", dead_exit_after=None) as fake:
        cfg = parse_config(
            yaml.safe_dump(
                {
                    "clusters": [
                        {
                            "name": "c",
                            "endpoint": {"base_url": fake.url, "model": "nvidia/nemotron-3-super"},
                            "nodes": [
                                {"name": "n", "host": "127.0.0.1", "plug": {"type": "dry_run"}}
                            ],
                        }
                    ]
                }
            ),
            env={},
        )
        suite = ProbeSuite(cfg)
        try:

            async def health() -> ProbeResult:
                (result,) = await suite.endpoint(cfg.clusters[0], ProbeKind.HEALTH)
                return result

            seen = [(await health()).data.get("version") for _ in range(7)]
            assert seen == ["0.33.0", None, None, None, None, None, "0.33.0"]
            await fake.set_mode(VllmMode.ENGINE_DEAD)
            assert not (await health()).ok
            await fake.set_mode(VllmMode.HEALTHY)
            assert (await health()).data.get("version") == "0.33.0"  # at once after a failure
            asked = [p for _, p, _ in fake.requests if p == "/version"]
            assert len(asked) == 3
        finally:
            await suite.aclose()


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_the_daemon_logs_the_vllm_version_and_its_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchdog.engine")
    async with Harness(tmp_path) as h:
        await h.start_daemon()
        await h.healthy()

        def said(text: str) -> int:
            return sum(text in r.getMessage() for r in caplog.records)

        await h.wait_until(lambda: said("cluster sim runs vLLM 0.33.0") == 1, 10, "the version")
        h.sim.vllm.set_version("0.20")  # an image bump
        await h.wait_until(
            lambda: said("cluster sim: vLLM version changed from 0.33.0 to 0.20.0") == 1,
            10,
            "the change",
        )
        await h.sleep(2.0)
        assert said("cluster sim runs vLLM") == 1
        assert said("vLLM version changed") == 1


# ------------------------------------------------------------------ sim and demo: --vllm-version
@pytest.mark.e2e  # runs cluster-watchdog as a real process
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("asked", "spoken"), [("0.10", "0.10.0"), (None, "0.33.0")])
def test_the_sim_command_speaks_the_version_asked_for(
    tmp_path: Path, asked: str | None, spoken: str
) -> None:
    out_cfg = tmp_path / "sim.yaml"
    argv = [sys.executable, "-m", "watchdog", "sim", "-o", str(out_cfg)]
    argv += ["--vllm-version", asked] if asked else []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Ctrl-C stops it" in line:
                break
        doc = yaml.safe_load(out_cfg.read_text())
        base = doc["clusters"][0]["endpoint"]["base_url"]
        version = httpx.get(f"{base}/version", trust_env=False, timeout=5).json()
        assert version == {"version": spoken}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0


@pytest.mark.e2e  # runs cluster-watchdog as a real process
@pytest.mark.parametrize("command", ["sim", "demo"])
def test_a_version_no_profile_speaks_is_a_usage_error(command: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "watchdog", command, "--vllm-version", "0.9"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "--vllm-version" in run.stderr and "0.10" in run.stderr


# ------------------------------------------------------------------ the policy's view of them
def _policy_cfg() -> Config:
    doc = {
        "watchdog": {"witnesses": [{"host": "127.0.0.9", "port": 53}]},
        "policy": {"failure_threshold": 3, "failure_duration": "60s", "startup_timeout": "10m"},
        "clusters": [
            {
                "name": "spark",
                "endpoint": {"base_url": "http://127.0.0.1:8000", "model": "m"},
                "nodes": [
                    {
                        "name": n,
                        "host": f"127.0.0.{i}",
                        "plug": {"type": "kasa", "host": f"127.0.1.{i}"},
                    }
                    for i, n in ((2, "a"), (4, "b"))
                ],
            }
        ],
    }
    return parse_config(yaml.safe_dump(doc), env={})


@pytest.mark.parametrize(
    ("probe", "kind", "cls"),
    [
        (ProbeKind.HEALTH, F.ENGINE_DEAD, NodeClass.DEGRADED),
        (ProbeKind.TOOL_CALL, F.ENGINE_DEAD, NodeClass.DEGRADED),
        (ProbeKind.TOOL_CALL, F.ENGINE_BUSY, NodeClass.DEGRADED),
        (ProbeKind.MODELS, F.SCALING, NodeClass.DEGRADED),
        (ProbeKind.TOOL_CALL, F.GENERATION_ERROR, NodeClass.DEGRADED),
        (ProbeKind.PROGRESS, F.ENGINE_STALLED, NodeClass.DEGRADED),
        (ProbeKind.TOOL_CALL, F.CONTEXT_LENGTH, NodeClass.MISCONFIGURED),
    ],
)
def test_the_new_kinds_with_sshd_fine_are_alerted_and_never_powered(
    probe: ProbeKind, kind: FailureKind, cls: NodeClass
) -> None:
    cfg = _policy_cfg()
    t0 = 1_000_000.0

    def seen(p: ProbeKind, failure: FailureKind | None = None) -> ProbeResult:
        return ProbeResult(p, "t", failure, 0.01, detail="d", hint=hint_for(failure))

    f = observe_link(initial_fleet({"a": "spark", "b": "spark"}, t0), True)
    f = observe_witness(f, seen(ProbeKind.WITNESS), t0)
    for n in ("a", "b"):
        f = observe_plug(f, n, PlugReading(reachable=True, is_on=True), t0)
    for t in (t0, t0 + 30, t0 + 61, t0 + 92):
        for n in ("a", "b"):
            f = observe_node(f, n, seen(ProbeKind.SSH), t)
        for p in (ProbeKind.HEALTH, ProbeKind.MODELS, ProbeKind.TOOL_CALL, ProbeKind.PROGRESS):
            f = observe_endpoint(f, "spark", seen(p, kind if p is probe and t > t0 else None), t)
        decision = evaluate(f, t, cfg)
        f = decision.fleet
        assert not [a for a in decision.actions if isinstance(a, PowerAction)]
    assert {n.cls for n in f.nodes.values()} == {cls}
