"""The real ``cluster-watchdog run`` under a real systemd 252 and its journald.

One systemd instance (``tests/fixtures_systemd.py``: PID 1 of private namespaces, with its own
``systemd-journald``) runs one copy of the shipped unit per behaviour under test,
``systemd/cluster-watchdog.service`` with the full hardening, plus a drop-in that only
adapts paths and compresses timings: ``ExecStart={python} -m watchdog run -c
/etc/cluster-watchdog/config.yaml`` (the interpreter from :func:`unit_python`), the unit's own
config directory bound read-only onto ``/etc/cluster-watchdog``, its own ``StateDirectory=``
(one daemon per state directory), ``WatchdogSec=2s`` and ``RestartSec=200ms``.

Targets: the namespace has only its own loopback, so the simulated cluster runs *inside* it, as
a sibling unit ``cw-sim.service`` (``python -m watchdog sim --nodes 2 -o FILE``: fake vLLM and
two sshd stand-ins on ephemeral ports); the test reads the ``clusters:`` section it writes and
builds each daemon's config around it. That gives healthy nodes, so ``STATUS=`` can be checked
as "2/2 nodes healthy, …" truthfully. Probe failures come from a second config whose targets
are a closed port inside the namespace (connection refused). Every plug is ``type: dry_run``
and the config says ``dry_run: true``: no daemon here can switch anything, and the probe-failure
test checks that its never-seen nodes did not even lead to a (dry-run) power cycle.

The stall test blocks the real daemon's event loop without a product hook: its unit runs
``tests/systemd_stall_launcher.py``, which patches ``Jobs.job_tick`` to ``time.sleep`` once
the process receives SIGUSR1 (``systemctl kill -s SIGUSR1``), then calls the real CLI.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need
from fixtures_systemd import (
    SystemdNS,
    start_systemd_ns,
    systemd_ns_available,
    unit_file,
    unit_python,
)

from watchdog.core.model import EventType
from watchdog.telemetry.journal import MESSAGE_IDS

pytestmark = pytest.mark.systemd

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "tests" / "systemd_stall_launcher.py"
CONFIG_IN_UNIT = "/etc/cluster-watchdog/config.yaml"
CLOSED_PORT = 1  # nothing listens on it inside the namespace: connection refused
SUMMARY = re.compile(r"^(\d+)/(\d+) nodes healthy, (\d+) cycles in 1h\b")
HEALTHY_SUMMARY = "2/2 nodes healthy, 0 cycles in 1h"
DYNAMIC_UIDS = range(61184, 65520)
METRICS = 9464  # cw-ready's metrics endpoint, on the namespace's own loopback

# unit -> which targets its config points at ("sim", "refused" or "bad") and whether it runs
# through the stall launcher.
UNITS: dict[str, tuple[str, bool]] = {
    "cw-ready": ("sim", False),
    "cw-reload": ("sim", False),
    "cw-reject": ("sim", False),
    "cw-stall": ("sim", True),
    "cw-refused": ("refused", False),
    "cw-badstart": ("bad", False),
}


@dataclass
class World:
    ns: SystemdNS
    cfg_dirs: dict[str, Path]  # unit name -> host directory bound onto /etc/cluster-watchdog
    sim_clusters: list[dict[str, Any]]

    def write_config(self, unit: str, doc: dict[str, Any]) -> None:
        path = self.cfg_dirs[unit] / "config.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.chmod(0o644)  # the unit's dynamic user reads it
        tmp.replace(path)  # a reload must never read a half-written file


def compressed(clusters: list[dict[str, Any]], **policy: Any) -> dict[str, Any]:
    """A whole config for ``clusters`` with sub-second probe timings and dry-run plugs."""
    clusters = copy.deepcopy(clusters)
    fast = {"interval": "0.5s", "timeout": "0.4s"}
    for cluster in clusters:
        endpoint = cluster["endpoint"]
        endpoint.update(health=fast, models=fast, tool_call={"interval": "1s", "timeout": "0.8s"})
        for node in cluster["nodes"]:
            node["ssh"] = {**node.get("ssh", {}), **fast}
            node["plug"] = {"type": "dry_run", "validate_interval": "1s"}
    return {
        # interface: the namespace has only lo; without it the daemon would find no link.
        "watchdog": {"dry_run": True, "interface": "lo"},
        "policy": {"cycle_window": "1h", "confirm_interval": "0.5s", **policy},
        "clusters": clusters,
    }


def refused_clusters() -> list[dict[str, Any]]:
    return [
        {
            "name": "dark",
            "endpoint": {"base_url": f"http://127.0.0.1:{CLOSED_PORT}", "model": "m"},
            "nodes": [{"name": "dark-1", "host": "127.0.0.1", "ssh": {"port": CLOSED_PORT}}],
        }
    ]


def _drop_in(unit: str, exe: str, pythonpath: str, cfg_dir: Path, launcher: bool) -> str:
    program = f"{exe} {unit_file(LAUNCHER)}" if launcher else f"{exe} -m watchdog"
    return (
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart={program} run -c {CONFIG_IN_UNIT}\n"
        f"Environment=PYTHONPATH={pythonpath}\n"
        f"BindReadOnlyPaths={cfg_dir}:/etc/cluster-watchdog\n"
        "StateDirectory=\n"
        f"StateDirectory={unit}\n"
        "WatchdogSec=2s\n"
        "RestartSec=200ms\n"
    )


def _wait_for_sim(ns: SystemdNS, path: Path, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            doc = yaml.safe_load(path.read_text())
            if isinstance(doc, dict) and doc.get("clusters"):
                return list(doc["clusters"])
        time.sleep(0.05)
    raise RuntimeError(f"the simulated cluster wrote no config: {ns.messages('cw-sim.service')}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ok, missing = systemd_ns_available()
    need(ok, f"systemd in private namespaces needs: {missing}")
    python = unit_python()
    need(python is not None, "a python outside /root and /home that a DynamicUser can run")
    assert python is not None
    exe, pythonpath = python
    work = tmp_path_factory.mktemp("daemon")
    src, nsdir = work / "src", work / "ns"
    src.mkdir()
    (nsdir / "sim").mkdir(parents=True)
    sim_file = nsdir / "sim" / "config.yaml"
    (src / "cw-sim.service").write_text(
        "[Unit]\nDescription=simulated cluster for the daemon tests\n"
        "[Service]\n"
        f"ExecStart={exe} -m watchdog sim --nodes 2 -o {sim_file}\n"
        f"Environment=PYTHONPATH={pythonpath}\n"
    )
    shipped = (ROOT / "systemd" / "cluster-watchdog.service").read_text()
    cfg_dirs: dict[str, Path] = {}
    for unit, (_, launcher) in UNITS.items():
        cfg_dir = nsdir / f"cfg-{unit}"  # inside the instance's workdir: the only /tmp it sees
        cfg_dir.mkdir()
        cfg_dir.chmod(0o755)
        cfg_dirs[unit] = cfg_dir
        (src / f"{unit}.service").write_text(shipped)
        (src / f"{unit}.service.d").mkdir()
        (src / f"{unit}.service.d" / "test.conf").write_text(
            _drop_in(unit, exe, pythonpath, cfg_dir, launcher)
        )
    ns = start_systemd_ns(src, nsdir)
    try:
        assert ns.systemctl("start", "cw-sim.service").returncode == 0
        world = World(ns, cfg_dirs, _wait_for_sim(ns, sim_file))
        for unit, (targets, _) in UNITS.items():
            if unit == "cw-ready":  # also serves its metrics, as a user would turn them on
                doc = compressed(world.sim_clusters)
                world.write_config(unit, {**doc, "metrics": {"listen": f"127.0.0.1:{METRICS}"}})
            elif targets == "sim":
                world.write_config(unit, compressed(world.sim_clusters))
            elif targets == "refused":
                world.write_config(unit, compressed(refused_clusters()))
            else:  # a threshold of 0 is out of range: load_config raises ConfigError
                world.write_config(unit, compressed(world.sim_clusters, failure_threshold=0))
        yield world
    finally:
        ns.stop()


# ---------------------------------------------------------------------------- helpers
def events(ns: SystemdNS, unit: str, event: EventType) -> list[dict[str, Any]]:
    """The unit's records of ``event``, found the operator's way: a MESSAGE_ID= match."""
    return ns.journal(unit, f"MESSAGE_ID={MESSAGE_IDS[event]}")


def wait_events(
    ns: SystemdNS,
    unit: str,
    event: EventType,
    count: int = 1,
    where: Callable[[dict[str, Any]], bool] = lambda e: True,
    timeout: float = 10,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(ns, unit, event) if where(e)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def snapshot(ns: SystemdNS, unit: str, *props: str) -> dict[str, str]:
    """Several properties read in one call (one D-Bus GetAll): a consistent snapshot."""
    out = ns.systemctl("show", "-p", ",".join(props), unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def start(world: World, unit: str) -> str:
    """Start ``unit`` (returns once systemd got READY=1); its main PID."""
    result = world.ns.systemctl("start", f"{unit}.service")
    assert result.returncode == 0, (result.stderr, world.ns.messages(f"{unit}.service")[-20:])
    return world.ns.show(f"{unit}.service", "MainPID")


# ---------------------------------------------------------------------------- tests
def test_the_unit_becomes_active_only_when_the_daemon_sends_ready(world: World) -> None:
    ns, unit = world.ns, "cw-ready.service"
    assert ns.systemctl("start", "--no-block", unit).returncode == 0
    seen: list[tuple[str, str, bool]] = []  # (ActiveState, StatusText, main process alive)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        props = snapshot(ns, unit, "ActiveState", "StatusText", "MainPID")
        sample = (props["ActiveState"], props["StatusText"], props["MainPID"] not in ("", "0"))
        if not seen or seen[-1] != sample:
            seen.append(sample)
        if sample[0] not in ("activating", "inactive"):
            break
        time.sleep(0.02)
    # The daemon runs (imports, config, state, jobs) while systemd still calls it starting...
    assert any(s == "activating" and alive and not SUMMARY.match(t) for s, t, alive in seen), seen
    # ...and it turns active with the datagram that carries READY=1 and the first summary:
    # never active without it.
    active = [s for s in seen if s[0] == "active"]
    assert active, seen
    assert all(SUMMARY.match(text) for _, text, _ in active), seen
    assert ns.show(unit, "SubState") == "running"
    [started] = wait_events(ns, unit, EventType.STARTED)
    assert SUMMARY.match(started["MESSAGE"].removeprefix("cluster-watchdog started: "))


def test_status_shows_the_healthy_summary_once_the_probes_pass(world: World) -> None:
    ns, unit = world.ns, "cw-ready.service"
    start(world, "cw-ready")
    assert ns.wait_for(unit, "StatusText", HEALTHY_SUMMARY, timeout=10), ns.show(unit, "StatusText")
    assert ns.show(unit, "ActiveState") == "active"


def test_the_hardened_unit_serves_metrics_and_healthz_on_loopback(world: World) -> None:
    start(world, "cw-ready")
    assert world.ns.wait_for("cw-ready.service", "StatusText", HEALTHY_SUMMARY)
    # A oneshot unit in the same network namespace plays the local Prometheus.
    python = unit_python()
    assert python is not None
    out = world.cfg_dirs["cw-ready"].parent / "scrape.out"
    code = (
        "import urllib.request as u; "
        f"h = u.urlopen('http://127.0.0.1:{METRICS}/healthz', timeout=5); "
        f"m = u.urlopen('http://127.0.0.1:{METRICS}/metrics', timeout=5).read().decode(); "
        "print(h.status, [l for l in m.splitlines() if l.startswith('cluster_watchdog_build')])"
    )
    world.ns.write_unit(
        "cw-scrape.service",
        f'[Service]\nType=oneshot\nExecStart={python[0]} -c "{code}"\nStandardOutput=file:{out}\n',
    )
    ran = world.ns.systemctl("start", "cw-scrape.service", timeout=60)
    assert ran.returncode == 0, (ran.stderr, world.ns.messages("cw-scrape.service"))
    assert out.read_text().startswith("200 ['cluster_watchdog_build_info{version=")


def test_the_daemons_records_reach_journald_with_their_structured_fields(world: World) -> None:
    ns, unit = world.ns, "cw-ready.service"
    start(world, "cw-ready")
    [started] = wait_events(ns, unit, EventType.STARTED)
    assert started["MESSAGE_ID"] == MESSAGE_IDS[EventType.STARTED]
    assert started["PRIORITY"] == "6"  # info
    assert started["SYSLOG_IDENTIFIER"] == "cluster-watchdog"
    assert (started["EVENT"], started["ACTION"]) == ("started", "start")
    # The native protocol (JOURNAL_STREAM matched stderr), not a stdout line journald parsed.
    assert started["_TRANSPORT"] == "journal"
    assert started["_SYSTEMD_UNIT"] == unit
    assert int(started["_UID"]) in DYNAMIC_UIDS  # DynamicUser=yes: not root
    assert "dry run" in started["MESSAGE"]


def test_a_probe_failure_is_logged_with_node_cluster_probe_and_failure(world: World) -> None:
    ns, unit = world.ns, "cw-refused.service"
    start(world, "cw-refused")
    ssh = wait_events(ns, unit, EventType.PROBE_FAILED, where=lambda e: e.get("NODE") == "dark-1")
    assert ssh, ns.messages(unit)[-20:]
    fields = {k: ssh[0].get(k) for k in ("NODE", "CLUSTER", "PROBE", "FAILURE", "PRIORITY")}
    assert fields == {
        "NODE": "dark-1",
        "CLUSTER": "dark",
        "PROBE": "ssh",
        "FAILURE": "refused",
        "PRIORITY": "4",  # warning
    }
    assert ssh[0]["SYSLOG_IDENTIFIER"] == "cluster-watchdog"
    assert ssh[0]["HINT"]  # the operator's next step travels with the record
    health = wait_events(
        ns, unit, EventType.PROBE_FAILED, where=lambda e: e.get("PROBE") == "health"
    )
    assert health and (health[0]["CLUSTER"], health[0]["FAILURE"]) == ("dark", "refused")
    assert "NODE" not in health[0]  # an endpoint probe belongs to the cluster, not a node
    # Nodes never seen up stay unknown within the start-up grace: nothing is powered, not even
    # in the dry run's imagination.
    assert ns.show(unit, "StatusText").startswith("0/1 nodes healthy")
    assert events(ns, unit, EventType.CYCLE_STARTED) == []
    assert not any("would switch" in m for m in ns.messages(unit))


def test_systemctl_reload_rereads_the_config_and_logs_the_changed_key(world: World) -> None:
    ns, unit = world.ns, "cw-reload.service"
    pid = start(world, "cw-reload")
    world.write_config("cw-reload", compressed(world.sim_clusters, failure_threshold=4))
    assert ns.systemctl("reload", unit).returncode == 0  # 252: returns once SIGHUP is sent
    [reloaded] = wait_events(ns, unit, EventType.CONFIG_RELOADED)
    assert reloaded["MESSAGE"] == "config reloaded: 1 change(s): policy.failure_threshold"
    assert (reloaded["ACTION"], reloaded["PRIORITY"]) == ("reload", "6")
    assert ns.wait_for(unit, "StatusText", lambda s: bool(SUMMARY.match(s)), timeout=5)
    # Reloaded in place: same process, no restart.
    assert (ns.show(unit, "ActiveState"), ns.show(unit, "MainPID")) == ("active", pid)
    assert ns.show(unit, "NRestarts") == "0"


def test_a_bad_config_on_reload_is_rejected_and_the_old_one_keeps_running(world: World) -> None:
    ns, unit = world.ns, "cw-reject.service"
    pid = start(world, "cw-reject")
    assert ns.wait_for(unit, "StatusText", HEALTHY_SUMMARY, timeout=10)
    world.write_config("cw-reject", compressed(world.sim_clusters, failure_threshold=0))
    assert ns.systemctl("reload", unit).returncode == 0
    [rejected] = wait_events(ns, unit, EventType.CONFIG_REJECTED)
    assert rejected["KEY"] == "policy.failure_threshold"
    assert "policy.failure_threshold" in rejected["MESSAGE"]
    assert rejected["PRIORITY"] == "3"  # error
    # The notice stays in STATUS= next to the summary until a reload succeeds.
    note = "config reload rejected (policy.failure_threshold); running the old config"
    assert ns.wait_for(unit, "StatusText", lambda s: s.endswith(f"; {note}"), timeout=5)
    assert (ns.show(unit, "ActiveState"), ns.show(unit, "MainPID")) == ("active", pid)
    assert ns.show(unit, "NRestarts") == "0"
    # Which config is running? Reload a good file that differs from the *original* in one key
    # only: the diff is taken against the running config, so it must name exactly that key.
    world.write_config(
        "cw-reject", compressed(world.sim_clusters, failure_threshold=3, backoff="7s")
    )
    assert ns.systemctl("reload", unit).returncode == 0
    [reloaded] = wait_events(ns, unit, EventType.CONFIG_RELOADED)
    assert reloaded["MESSAGE"] == "config reloaded: 1 change(s): policy.backoff"
    assert ns.show(unit, "MainPID") == pid
    assert ns.wait_for(unit, "StatusText", HEALTHY_SUMMARY, timeout=5)  # the notice is gone


def test_a_stalled_event_loop_is_killed_by_the_watchdog_and_restarted(world: World) -> None:
    ns, unit = world.ns, "cw-stall.service"
    first_pid = start(world, "cw-stall")
    time.sleep(2.5)  # longer than WatchdogSec=2s: the daemon's pings keep a healthy loop alive
    assert (ns.show(unit, "NRestarts"), ns.show(unit, "MainPID")) == ("0", first_pid)
    assert ns.systemctl("kill", "-s", "SIGUSR1", "--kill-who=main", unit).returncode == 0
    assert ns.wait_for(unit, "NRestarts", lambda v: v not in ("", "0"), timeout=10)
    assert ns.wait_for(unit, "ActiveState", "active", timeout=10)
    assert ns.show(unit, "MainPID") != first_pid
    messages = ns.messages(unit)
    assert f"{unit}: Watchdog timeout (limit 2s)!" in messages
    assert f"{unit}: Failed with result 'watchdog'." in messages
    # PYTHONFAULTHANDLER=1: the SIGABRT dumps the blocking frame (the patched tick) to the journal.
    assert any(f'{LAUNCHER.name}"' in m and "stalling_tick" in m for m in messages), messages
    # The restarted daemon is a full one again: a second start-up, READY=1 and its summary.
    assert len(wait_events(ns, unit, EventType.STARTED, count=2)) == 2
    assert SUMMARY.match(ns.show(unit, "StatusText"))


def test_a_bad_config_at_start_fails_with_status_78_and_no_restart_loop(world: World) -> None:
    ns, unit = world.ns, "cw-badstart.service"
    assert ns.systemctl("start", unit).returncode != 0
    time.sleep(0.6)  # three times RestartSec: a restart would have happened by now
    props = {p: ns.show(unit, p) for p in ("ActiveState", "Result", "ExecMainStatus", "NRestarts")}
    assert props == {
        "ActiveState": "failed",
        "Result": "exit-code",
        "ExecMainStatus": "78",
        "NRestarts": "0",
    }
    # The reason reaches the journal (stderr) and names the key's path.
    assert any(
        "config error" in m and "policy.failure_threshold" in m for m in ns.messages(unit)
    ), ns.messages(unit)


def test_stop_ends_the_real_daemon_cleanly(world: World) -> None:
    ns, unit = world.ns, "cw-ready.service"
    start(world, "cw-ready")
    assert ns.systemctl("stop", unit).returncode == 0
    props = {p: ns.show(unit, p) for p in ("ActiveState", "Result", "ExecMainStatus")}
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    assert len(events(ns, unit, EventType.STOPPING)) == 1
