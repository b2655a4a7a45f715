"""``cluster-watchdog check`` and ``check-config`` end to end, as an operator runs them.

The CLI runs as a real subprocess against a simulated cluster on loopback — the fake vLLM,
sshd stand-ins and Kasa plug emulators of :class:`SimCluster` — and, for the sshd wedge, a real
OpenSSH server stopped with SIGSTOP. The simulation runs on its own event loop in a background
thread so it keeps serving while the subprocess probes it. One simulated cluster serves the
whole module; each test sets the faults it needs and the ``sim`` fixture clears them after.
Timeouts are compressed to about a second; the hung-endpoint tests measure wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from fixtures_sshd import RealSshd

from watchdog.commands.check import run_check
from watchdog.config import parse_config
from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind
from watchdog.sim.cluster import SimCluster
from watchdog.sim.cluster_config import config_clusters
from watchdog.sim.kasa import PlugFault
from watchdog.sim.sim_node import NodeFault
from watchdog.sim.vllm import NEWEST, PROFILES, VllmMode

pytestmark = pytest.mark.e2e  # runs cluster-watchdog check as a real process: not in the fast lane

T = TypeVar("T")
API_KEY = f"sk-test-{secrets.token_hex(12)}"  # must never show up in any output
KEY_ENV = "SIM_API_KEY"
TIMEOUT = "1s"  # every probe's timeout in the shared config
CLUSTER = "cluster sim"
RESULT_KEYS = {"target", "probe", "ok", "failure", "latency_s", "detail", "hint"}
EX_OK, EX_FAIL, EX_CONFIG = 0, 1, 78


# ------------------------------------------------------------------ the simulated cluster
class SimThread:
    """A :class:`SimCluster` serving from its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cluster: SimCluster = self.call(self._start())

    @staticmethod
    async def _start() -> SimCluster:
        sim = SimCluster(api_key=API_KEY)  # built on its loop: its servers belong there
        await sim.start()
        return sim

    def call(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def mode(self, mode: VllmMode) -> None:
        self.call(self.cluster.set_endpoint_mode(mode))

    def plug_fault(self, node: str, fault: PlugFault) -> None:
        self.call(self.cluster.nodes[node].plug.set_fault(fault))

    def node_fault(self, node: str, fault: NodeFault) -> None:
        self.call(self.cluster.set_fault(node, fault))

    def version(self, version: str) -> None:
        self.loop.call_soon_threadsafe(self.cluster.vllm.set_version, version)

    def reset(self) -> None:
        self.version(NEWEST)
        self.mode(VllmMode.HEALTHY)
        for name in self.cluster.nodes:
            self.plug_fault(name, PlugFault.NONE)
            self.node_fault(name, NodeFault.NONE)

    def close(self) -> None:
        try:
            self.call(self.cluster.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    sim = SimThread()
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
def sim(sim_thread: SimThread) -> Iterator[SimThread]:
    """The shared simulated cluster, healthy at the start and after every test."""
    sim_thread.reset()
    yield sim_thread
    sim_thread.reset()


def config_data(
    sim: SimThread, tmp_path: Path, endpoint_timeouts: dict[str, str] | None = None
) -> dict[str, Any]:
    """A whole config for the simulated cluster, with compressed timeouts."""
    clusters = config_clusters(sim.cluster, api_key_env=KEY_ENV)
    endpoint = clusters[0]["endpoint"]
    for probe in ("health", "models", "tool_call", "progress"):
        timeout = (endpoint_timeouts or {}).get(probe, TIMEOUT)
        endpoint[probe] = {"interval": "30s", "timeout": timeout}
    for node in clusters[0]["nodes"]:
        node["ssh"]["timeout"] = TIMEOUT
        node["plug"]["timeout"] = TIMEOUT
    return {
        "watchdog": {"state_dir": str(tmp_path / "state"), "dry_run": True},
        "clusters": clusters,
    }


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ the CLI
@dataclass
class Run:
    code: int
    out: str
    err: str
    wall: float


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CLUSTER_WATCHDOG_CONFIG", KEY_ENV}}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env[KEY_ENV] = API_KEY
    return env


def cli(*argvs: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[Run]:
    """Run ``python -m watchdog ARGV`` once per argv, all at the same time."""
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "watchdog", *argv],
            cwd=cwd,
            env=env or _env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        runs.append(Run(proc.returncode, out, err, time.monotonic() - started))
    for run in runs:
        assert "Traceback" not in run.err, run.err
        assert API_KEY not in run.out + run.err
    return runs


def check(cfg: Path, *extra: str) -> tuple[Run, Run]:
    """``check`` twice at once: the table and ``--json``."""
    table, as_json = cli(
        ["check", "-c", str(cfg), *extra],
        ["check", "-c", str(cfg), "--json", *extra],
        cwd=cfg.parent,
    )
    return table, as_json


@dataclass
class TableRow:
    target: str
    probe: str
    result: str
    latency_ms: int
    detail: str
    fix: str | None


# Columns are padded to at least two spaces; a target ("cluster sim") holds single ones.
_ROW = re.compile(
    r"^(?P<target>\S.*?)\s{2,}(?P<probe>\S+)\s{2,}(?P<result>\S+)\s{2,}"
    r"(?P<ms>\d+) ms(?:\s{2,}(?P<detail>.*))?$"
)


def parse_table(text: str) -> list[TableRow]:
    lines = text.rstrip("\n").splitlines()
    assert lines[0].split() == ["TARGET", "PROBE", "RESULT", "LATENCY", "DETAIL"]
    rows: list[TableRow] = []
    for line in lines[1:]:
        if not line.strip() or re.fullmatch(r"\d+ passed, \d+ failed", line):
            continue
        if line.startswith(" "):
            assert line.lstrip().startswith("fix: "), line
            assert rows and rows[-1].fix is None, f"a fix line without its row: {line!r}"
            rows[-1].fix = line.lstrip().removeprefix("fix: ")
            continue
        match = _ROW.match(line)
        assert match, f"not a table row: {line!r}"
        rows.append(
            TableRow(
                match["target"],
                match["probe"],
                match["result"],
                int(match["ms"]),
                match["detail"] or "",
                None,
            )
        )
    failed = sum(r.result != "ok" for r in rows)
    assert lines[-1] == f"{len(rows) - failed} passed, {failed} failed"
    return rows


def parse_json(text: str) -> list[dict[str, Any]]:
    """The documented shape: ``{"ok": bool, "results": [{target, probe, ok, ...}]}``."""
    doc = json.loads(text)
    assert set(doc) == {"ok", "results"}
    results: list[dict[str, Any]] = doc["results"]
    for r in results:
        assert set(r) == RESULT_KEYS
        assert isinstance(r["target"], str) and isinstance(r["probe"], str)
        assert isinstance(r["latency_s"], int | float) and r["latency_s"] >= 0
        assert isinstance(r["detail"], str) and isinstance(r["hint"], str)
        assert r["ok"] is (r["failure"] is None)
        assert r["ok"] or r["hint"], f"a failure without a hint: {r}"
    assert doc["ok"] is all(r["ok"] for r in results)
    return results


def by_key(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["target"], r["probe"]): r for r in results}


def failures(results: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["target"], r["probe"], r["failure"]) for r in results if not r["ok"]}


def same_rows(table: list[TableRow], results: list[dict[str, Any]]) -> None:
    """The table and the JSON report the same probes, results and hints."""
    assert [(t.target, t.probe) for t in table] == [(r["target"], r["probe"]) for r in results]
    for t, r in zip(table, results, strict=True):
        assert t.result == ("ok" if r["ok"] else r["failure"])
        assert t.fix == (None if r["ok"] else r["hint"])


ALL_PROBES = [
    (CLUSTER, "health"),
    (CLUSTER, "models"),
    (CLUSTER, "tool_call"),
    (CLUSTER, "topology"),
    (CLUSTER, "round_trip"),
    (CLUSTER, "progress"),
    ("node spark-1", "ssh"),
    ("node spark-1", "plug"),
    ("node spark-2", "ssh"),
    ("node spark-2", "plug"),
]


# ------------------------------------------------------------------ healthy
def test_it_passes_every_probe_and_exits_0_when_the_cluster_is_healthy(
    sim: SimThread, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    table, as_json = check(cfg)

    assert (table.code, as_json.code) == (EX_OK, EX_OK), table.out + table.err
    rows = parse_table(table.out)
    results = parse_json(as_json.out)
    assert [(r.target, r.probe) for r in rows] == ALL_PROBES
    assert all(r.result == "ok" and r.fix is None for r in rows), table.out
    same_rows(rows, results)
    details = {(r.target, r.probe): r.detail for r in rows}
    assert details[(CLUSTER, "models")] == "serves nvidia/nemotron-3-super"
    assert "get_weather" in details[(CLUSTER, "tool_call")]
    assert "tp2" in details[(CLUSTER, "topology")]
    assert details[("node spark-1", "ssh")].startswith("SSH-2.0-")
    for node in ("spark-1", "spark-2"):
        assert re.fullmatch(r"reachable, on, \d+ W", details[(f"node {node}", "plug")])
    assert table.out.rstrip().endswith("10 passed, 0 failed")


# ------------------------------------------------------------------ every endpoint fault
ALL_ENDPOINT = ("health", "models", "tool_call", "progress")
V1 = ("models", "tool_call")
FAULTS: list[tuple[VllmMode, tuple[str, ...], FailureKind]] = [
    (VllmMode.AUTH, V1, FailureKind.AUTH),
    (VllmMode.MODEL_MISSING, V1, FailureKind.MODEL_MISSING),
    (VllmMode.TOOL_CHOICE_DISABLED, ("tool_call",), FailureKind.TOOL_CHOICE_DISABLED),
    (VllmMode.NO_TOOL_CALL, ("tool_call",), FailureKind.NO_TOOL_CALL),
    (VllmMode.BAD_ARGUMENTS, ("tool_call",), FailureKind.BAD_ARGUMENTS),
    (VllmMode.REASONING_LEAK, ("tool_call",), FailureKind.REASONING_LEAK),
    (VllmMode.TRUNCATED, ("tool_call",), FailureKind.TRUNCATED),
    (VllmMode.WRONG_TOOL, ("tool_call",), FailureKind.WRONG_TOOL),
    (VllmMode.LOOP, ("round_trip",), FailureKind.LOOP),
    (VllmMode.WRONG_TOPOLOGY, ("topology",), FailureKind.WRONG_TOPOLOGY),
    (VllmMode.ENGINE_DEAD, ("health", "tool_call"), FailureKind.ENGINE_DEAD),
    (VllmMode.BUSY, ("tool_call",), FailureKind.ENGINE_BUSY),
    (VllmMode.SCALING, ("models", "tool_call", "progress"), FailureKind.SCALING),
    (VllmMode.GENERATION_ERROR, ("tool_call",), FailureKind.GENERATION_ERROR),
    (VllmMode.CONTEXT_LENGTH, ("tool_call",), FailureKind.CONTEXT_LENGTH),
    (VllmMode.BAD_RESPONSE, V1, FailureKind.BAD_RESPONSE),
    (VllmMode.HUGE, V1, FailureKind.BAD_RESPONSE),
    # Nothing answers: the progress probe has no sample (ok), the others report it.
    (VllmMode.LOADING, ALL_ENDPOINT[:3], FailureKind.REFUSED),
    (VllmMode.HANG, ALL_ENDPOINT[:3], FailureKind.TIMEOUT),
    (VllmMode.ENGINE_STUCK, ("tool_call",), FailureKind.TIMEOUT),
]


@pytest.mark.parametrize(
    ("mode", "probes", "kind"), FAULTS, ids=[str(mode) for mode, _, _ in FAULTS]
)
def test_it_reports_each_endpoint_fault_with_its_kind_and_fix_and_exits_1(
    sim: SimThread, tmp_path: Path, mode: VllmMode, probes: tuple[str, ...], kind: FailureKind
) -> None:
    sim.mode(mode)
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    table, as_json = check(cfg)

    assert (table.code, as_json.code) == (EX_FAIL, EX_FAIL), table.out + table.err
    rows = parse_table(table.out)
    results = parse_json(as_json.out)
    same_rows(rows, results)
    # Exactly the probes this fault breaks fail, with this kind; the nodes stay fine.
    assert failures(results) == {(CLUSTER, p, kind.value) for p in probes}, table.out
    found = by_key(results)
    for probe in probes:
        hint = found[(CLUSTER, probe)]["hint"]
        if kind is FailureKind.MODEL_MISSING:
            assert "--served-model-name" in hint  # the probe's own, more specific hint
            if probe == "models":  # names what the server does list
                assert "meta-llama/Llama-3.1-8B-Instruct" in hint
        else:
            assert hint == hint_for(kind)
        row = next(r for r in rows if (r.target, r.probe) == (CLUSTER, probe))
        assert row.result == kind.value
        assert row.fix == hint
    assert f"fix: {hint}" in table.out
    if mode in (VllmMode.LOADING, VllmMode.HANG):
        assert found[(CLUSTER, "progress")]["ok"]
        assert found[(CLUSTER, "progress")]["detail"].startswith("no sample")
    if mode is VllmMode.ENGINE_STUCK:  # the engine is stuck behind a live API server
        assert found[(CLUSTER, "health")]["ok"] and found[(CLUSTER, "models")]["ok"]


# ------------------------------------------------------------------ every vLLM version
@pytest.mark.parametrize("version", sorted(PROFILES))
@pytest.mark.parametrize("mode", [VllmMode.HEALTHY, VllmMode.WRONG_TOPOLOGY])
def test_it_shows_the_version_and_judges_topology_only_where_the_version_can_tell(
    sim: SimThread, tmp_path: Path, version: str, mode: VllmMode
) -> None:
    sim.version(version)
    sim.mode(mode)
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    (run,) = cli(["check", "-c", str(cfg), "--json"], cwd=tmp_path)
    found = by_key(parse_json(run.out))
    spoken = PROFILES[version].version
    assert found[(CLUSTER, "health")]["detail"] == f"HTTP 200, vLLM {spoken}"
    topology = found[(CLUSTER, "topology")]
    if PROFILES[version].fingerprint:  # >= 0.21 sends vllm-<version>-tp<N>-<hash>
        wrong = mode is VllmMode.WRONG_TOPOLOGY
        assert topology["failure"] == ("wrong_topology" if wrong else None), topology
        assert run.code == (EX_FAIL if wrong else EX_OK), run.out
    else:  # null fingerprint: unknown, with the way to a verifiable one
        assert topology["ok"], topology
        assert topology["detail"].startswith("unknown")
        assert "vLLM >= 0.21" in topology["detail"]
        assert "--fingerprint-mode full" in topology["detail"]
        assert run.code == EX_OK, run.out


# ------------------------------------------------------------------ --node
def test_it_checks_only_the_named_node_and_its_clusters_endpoint(
    sim: SimThread, tmp_path: Path
) -> None:
    sim.plug_fault("spark-2", PlugFault.DOWN)  # would fail the run if spark-2 were probed
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    table, as_json = check(cfg, "--node", "spark-1")

    assert (table.code, as_json.code) == (EX_OK, EX_OK), table.out
    results = parse_json(as_json.out)
    assert [(r["target"], r["probe"]) for r in results] == ALL_PROBES[:8]
    same_rows(parse_table(table.out), results)


def test_it_refuses_an_unknown_node_and_lists_the_configured_ones(
    sim: SimThread, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    (run,) = cli(["check", "-c", str(cfg), "--node", "spark-9"], cwd=tmp_path)
    assert run.code == EX_FAIL
    assert "spark-9" in run.err and "spark-1, spark-2" in run.err
    assert run.out == ""


# ------------------------------------------------------------------ real OpenSSH
def test_it_reports_no_banner_when_the_real_sshd_is_stopped(
    sim: SimThread, tmp_path: Path, real_sshd: RealSshd
) -> None:
    data = config_data(sim, tmp_path)
    spark1 = data["clusters"][0]["nodes"][0]
    spark1["host"], spark1["ssh"]["port"] = real_sshd.host, real_sshd.port
    cfg = write_config(tmp_path, data)
    argv = ["check", "-c", str(cfg), "--node", "spark-1", "--json"]

    (run,) = cli(argv, cwd=tmp_path)
    assert run.code == EX_OK, run.out
    ssh = by_key(parse_json(run.out))[("node spark-1", "ssh")]
    assert ssh["ok"] and ssh["detail"].startswith("SSH-2.0-OpenSSH")

    real_sshd.stop()  # SIGSTOP: the kernel still completes handshakes, nobody speaks
    table, as_json = check(cfg, "--node", "spark-1")
    assert (table.code, as_json.code) == (EX_FAIL, EX_FAIL)
    results = parse_json(as_json.out)
    assert failures(results) == {("node spark-1", "ssh", "no_banner")}
    ssh = by_key(results)[("node spark-1", "ssh")]
    assert ssh["hint"] == hint_for(FailureKind.NO_BANNER)
    assert 1.0 <= ssh["latency_s"] < 1.6  # reported after its own timeout (1s)
    assert f"fix: {hint_for(FailureKind.NO_BANNER)}" in table.out


# ------------------------------------------------------------------ hung endpoint timing
def test_a_hung_endpoint_is_reported_after_its_own_timeouts_and_delays_nothing_else(
    sim: SimThread, tmp_path: Path
) -> None:
    sim.mode(VllmMode.HANG)
    own = {"health": 1.0, "models": 1.25, "tool_call": 1.5}
    data = config_data(sim, tmp_path, {p: f"{t}s" for p, t in own.items()})
    cfg = write_config(tmp_path, data)

    # The CLI and run_check in-process, side by side: two clients on one hung server.
    with ThreadPoolExecutor(1) as pool:
        timed = pool.submit(_timed_run_check, data)
        (run,) = cli(["check", "-c", str(cfg), "--json"], cwd=tmp_path)
        in_process = timed.result(timeout=10)

    assert run.code == EX_FAIL
    found = by_key(parse_json(run.out))
    for probe, timeout in own.items():
        row = found[(CLUSTER, probe)]
        assert row["failure"] == "timeout"
        assert timeout <= row["latency_s"] < timeout + 0.5, (probe, row)
    for node in ("spark-1", "spark-2"):
        for probe in ("ssh", "plug"):
            row = found[(f"node {node}", probe)]
            assert row["ok"] and row["latency_s"] < 0.5, row  # not held back by the hang
    longest = max(own.values())
    # Side by side, not one after another: run_check in-process ends with the longest timeout.
    # (The subprocess's wall time includes the interpreter's start, which a loaded machine
    # stretches by seconds: it is printed, and start-up is measured in benchmarks.)
    assert in_process < longest + 0.5, in_process
    print(
        f"\nhung endpoint, tool_call timeout {longest}s: `check` subprocess wall "
        f"{run.wall:.2f}s, run_check {in_process:.2f}s; latencies "
        + ", ".join(f"{k[1]}={v['latency_s']:.3f}s" for k, v in found.items() if k[0] == CLUSTER)
    )


def test_everything_hanging_at_once_costs_one_timeout_not_their_sum(
    sim: SimThread, tmp_path: Path
) -> None:
    # spark-1 wedges (sshd accepts and stays silent, the endpoint hangs) and its plug hangs.
    sim.node_fault("spark-1", NodeFault.WEDGED)
    sim.plug_fault("spark-1", PlugFault.HANG)
    data = config_data(sim, tmp_path)
    started = time.monotonic()
    rows = asyncio.run(run_check(parse_config(yaml.safe_dump(data), env={KEY_ENV: API_KEY})))
    wall = time.monotonic() - started

    got = {(r.target, r.probe): r for r in rows}
    assert got[("node spark-1", "ssh")].failure == "no_banner"
    assert got[("node spark-1", "plug")].failure == "plug_unreachable"
    assert got[("node spark-1", "plug")].hint == hint_for(FailureKind.PLUG_UNREACHABLE)
    assert got[(CLUSTER, "health")].failure == "timeout"
    assert got[("node spark-2", "ssh")].ok and got[("node spark-2", "plug")].ok
    assert wall < 1.0 + 0.5, wall  # python-kasa alone would retry a silent plug for ~7 s


def _timed_run_check(data: dict[str, Any]) -> float:
    cfg = parse_config(yaml.safe_dump(data), env={KEY_ENV: API_KEY})
    started = time.monotonic()
    asyncio.run(run_check(cfg))
    return time.monotonic() - started


# ------------------------------------------------------------------ plugs
def test_it_reports_an_unreachable_plug_with_its_fix(sim: SimThread, tmp_path: Path) -> None:
    sim.plug_fault("spark-2", PlugFault.DOWN)  # nothing listens on the plug's port
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    table, as_json = check(cfg)

    assert (table.code, as_json.code) == (EX_FAIL, EX_FAIL)
    results = parse_json(as_json.out)
    same_rows(parse_table(table.out), results)
    assert failures(results) == {("node spark-2", "plug", "plug_unreachable")}
    assert by_key(results)[("node spark-2", "plug")]["hint"] == hint_for(
        FailureKind.PLUG_UNREACHABLE
    )
    assert f"fix: {hint_for(FailureKind.PLUG_UNREACHABLE)}" in table.out


# ------------------------------------------------------------------ bad config
def test_check_config_accepts_a_good_file_with_a_one_line_summary(
    sim: SimThread, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    (run,) = cli(["check-config", str(cfg)], cwd=tmp_path)
    assert run.code == EX_OK, run.err
    assert run.out == f"{cfg}: ok (1 cluster(s), 2 node(s), 0 alert channel(s), dry run)\n"
    assert run.err == ""


Edit = Callable[[dict[str, Any]], None]


def _typo(data: dict[str, Any]) -> None:
    plug = data["clusters"][0]["nodes"][0]["plug"]
    plug["hots"] = plug.pop("host")


def _overlong_timeout(data: dict[str, Any]) -> None:
    data["clusters"][0]["endpoint"]["tool_call"] = {"interval": "30s", "timeout": "2m"}


def _literal_secret(data: dict[str, Any]) -> None:
    data["clusters"][0]["endpoint"]["api_key"] = API_KEY


def _bad_duration(data: dict[str, Any]) -> None:
    data["clusters"][0]["nodes"][1]["ssh"]["timeout"] = "ten seconds"


BAD: list[tuple[str, Edit, str, str]] = [
    ("typo", _typo, "clusters[0].nodes[0].plug.hots: unknown key", "did you mean 'host'?"),
    (
        "timeout",
        _overlong_timeout,
        "clusters[0].endpoint.tool_call.timeout: longer than interval",
        "make timeout at most interval",
    ),
    (
        "literal_secret",
        _literal_secret,
        "clusters[0].endpoint.api_key: a literal secret is not accepted",
        "write api_key: ${ENV_VAR}",
    ),
    (
        "duration",
        _bad_duration,
        "clusters[0].nodes[1].ssh.timeout: expected a duration",
        "units are ms, s, m, h and d",
    ),
]


@pytest.mark.parametrize(("edit", "where", "fix"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_config_names_the_key_and_the_fix_and_exits_78(
    sim: SimThread, tmp_path: Path, edit: Edit, where: str, fix: str
) -> None:
    data = config_data(sim, tmp_path)
    edit(data)
    cfg = write_config(tmp_path, data, "bad.yaml")
    argvs = [["check-config", str(cfg)]]
    if edit is _typo:  # `check` validates the same way before probing anything
        argvs.append(["check", "-c", str(cfg)])
    for run in cli(*argvs, cwd=tmp_path):
        assert run.code == EX_CONFIG, run.out + run.err
        assert run.out == ""
        assert run.err.startswith(f"cluster-watchdog: config error: {where}"), run.err
        assert f"(fix: {fix}" in run.err
        assert len(run.err.strip().splitlines()) == 1


def test_an_unset_api_key_variable_is_a_config_error(sim: SimThread, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, config_data(sim, tmp_path))
    env = {k: v for k, v in _env().items() if k != KEY_ENV}
    (run,) = cli(["check", "-c", str(cfg)], cwd=tmp_path, env=env)
    assert run.code == EX_CONFIG
    assert f"clusters[0].endpoint.api_key: environment variable {KEY_ENV} is not set" in run.err


def test_a_missing_config_file_exits_78_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    validate, probe = cli(
        ["check-config", str(missing)], ["check", "-c", str(missing)], cwd=tmp_path
    )
    for run in (validate, probe):
        assert run.code == EX_CONFIG
        assert run.out == ""
        assert f"cannot read {missing}: No such file or directory" in run.err
        assert "fix: check the path" in run.err
