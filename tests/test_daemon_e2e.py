"""The real daemon against the simulated cluster: dry run, SIGTERM mid-cycle (once: graceful;
twice: forced), every alert channel across a whole incident, and the standalone ``sim``
command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.config import parse_config
from watchdog.sim.harness import Harness
from watchdog.sim.harness_config import Timings
from watchdog.sim.receiver import Received
from watchdog.sim.sim_node import NodeFault

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
A = "spark-1"


async def test_in_dry_run_no_plug_ever_changes_state(tmp_path: Path) -> None:
    async with Harness(
        tmp_path, timings=Timings(max_cycles=2, boot_timeout=3.0, serve_timeout=6.0)
    ) as h:
        doc = h.config()
        doc["watchdog"]["dry_run"] = True
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        # It decides exactly as it would: wedged, "cycled" (virtually), boot grace expires,
        # again, then given up — and pages about it.
        await h.wait_until(lambda: h.is_latched(A), 40, f"{A} to be given up in dry run")
        await asyncio.sleep(0.5)
        assert h.sim.power_record(A) == [] and h.sim.power_record("spark-2") == []
        assert h.sim.nodes[A].plug.is_on(h.sim.nodes[A].outlet)
        assert h.has_alert(A, "wedged") and h.has_alert(A, "given_up")
        # The plug was still read (pre-validation works in dry run): it was never alerted on.
        assert not h.has_alert(A, "plug")


async def test_sigterm_during_a_power_cycle_waits_until_the_plug_is_back_on(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, timings=Timings(off_time=3.0), subprocess_daemon=True) as h:
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
        assert h.proc is not None
        h.proc.send_signal(signal.SIGTERM)  # between off and on
        code = await asyncio.to_thread(h.proc.wait, 30)
        h.proc = None
        record = h.sim.power_record(A)
        assert code == 0
        assert [e.on for e in record] == [False, True], record
        assert record[1].cause == "client"  # the daemon switched it on, not the device timer
        assert record[1].at - record[0].at >= 3.0  # and only after the whole off time


async def test_a_second_sigterm_forces_the_stop_and_the_plug_is_switched_back_on_first(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, timings=Timings(off_time=60.0), subprocess_daemon=True) as h:
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
        assert h.proc is not None
        h.proc.send_signal(signal.SIGTERM)  # graceful: it waits out the minute of off time
        with pytest.raises(subprocess.TimeoutExpired):
            await asyncio.to_thread(h.proc.wait, 2)
        started = asyncio.get_running_loop().time()
        h.proc.send_signal(signal.SIGTERM)  # forced: no more waiting
        code = await asyncio.to_thread(h.proc.wait, 30)
        took = asyncio.get_running_loop().time() - started
        h.proc = None
        assert code == 128 + signal.SIGTERM
        assert took < 15.0, took
        record = h.sim.power_record(A)
        assert [e.on for e in record] == [False, True], record
        assert record[1].cause == "client"  # the daemon switched it on before it exited
        assert record[1].at - record[0].at < 30.0  # long before the off time was over
        # The intent stays recorded: the next start makes sure the plug is on.
        state = yaml.safe_load((h.state_dir / "state.json").read_text())
        assert list(state["intents"]) == [A]


def _configure_all_channels(h: Harness) -> None:
    """Every channel type, with its secrets in files, into the harness's config."""
    (h.workdir / "slack-url").write_text(f"{h.rx.url}/slack/T000/B000/s3cretslack")
    (h.workdir / "ntfy-token").write_text("tk_s3cretntfy")
    (h.workdir / "pd-key").write_text("R0UTINGs3cretpd")
    doc = h.config()
    doc["alerts"]["channels"] = _all_channels(h)
    h.write_config(doc)


def _all_channels(h: Harness) -> list[dict[str, Any]]:
    base = h.rx.url
    return [
        {"type": "webhook", "name": "hook", "url": f"{base}/webhook"},
        {"type": "slack", "name": "slack", "url_file": str(h.workdir / "slack-url")},
        {
            "type": "ntfy",
            "name": "ntfy",
            "url": f"{base}/ntfy/watchdog",
            "token_file": str(h.workdir / "ntfy-token"),
        },
        {
            "type": "pagerduty",
            "name": "pd",
            "routing_key_file": str(h.workdir / "pd-key"),
            "url": f"{base}/pagerduty/v2/enqueue",
        },
        {"type": "alertmanager", "name": "am", "url": f"{base}/am"},
    ]


async def test_in_dry_run_sshd_down_while_serving_is_ssh_down_and_never_would_cycle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Harness(tmp_path) as h:
        doc = h.config()
        doc["watchdog"]["dry_run"] = True
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()
        await h.sim.set_fault(A, NodeFault.SSH_DOWN)  # port 22 refused; the model serves
        await h.wait_until(lambda: h.node_class(A) == "ssh_down", 20, f"{A} to be ssh_down")
        await h.sleep(4)  # well past the thresholds and two tool-call intervals
        assert h.node_class(A) == "ssh_down"
        assert h.has_alert(A, "ssh_down") and not h.has_alert(A, "wedged")
    lines = [r.getMessage() for r in caplog.records]
    assert not [m for m in lines if "would switch" in m or "power_cycle" in m], lines


async def test_a_network_blip_gives_each_channel_one_blind_page_and_its_resolve(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path) as h:
        _configure_all_channels(h)
        await h.start_daemon()
        await h.healthy()
        assert h.rx.received == []  # nothing was paged before the blip
        dark_at = time.time()
        await h.sim.set_dark(True)
        await h.sleep(12)
        back_at = time.time()
        await h.sim.set_dark(False)
        await h.wait_until(
            lambda: h.node_class(A) == "healthy" == h.node_class("spark-2"), 30, "both back"
        )
        await h.sleep(6)
        assert h.sim.power_record(A) == [] and h.sim.power_record("spark-2") == []
        by: dict[str, list[str]] = {}
        for r in h.rx.received:
            channel = "/" + r.path.split("/")[1]
            by.setdefault(channel, []).append(_kind(r))
        print(
            f"blip: dark for {back_at - dark_at:.1f}s; notifications (channel, kind, s after dark):"
        )
        for r in h.rx.received:
            print(f"  {r.path.split('/')[1]:10} {_kind(r):8} +{r.at - dark_at:.2f}s")
        channels = ("/webhook", "/slack", "/ntfy", "/pagerduty", "/am")
        by["/am"] = _resolve_resent_once(by.get("/am", []))
        assert by == {c: ["trigger", "resolve"] for c in channels}, by


def _resolve_resent_once(kinds: list[str]) -> list[str]:
    """The Alertmanager channel sends a resolve again, once, when the answer's Date (whole
    seconds; the test receiver's is cached for up to a second more) says its endsAt was not
    yet past: Alertmanager takes both as one. Fold that one repeat."""
    if len(kinds) >= 2 and kinds[-2:] == ["resolve", "resolve"]:
        return kinds[:-1]
    return kinds


def _kind(r: Received) -> str:
    """trigger or resolve, in each channel's own words."""
    if r.path.startswith("/pagerduty"):
        return str(r.json["event_action"])
    if r.path.startswith("/am"):  # a trigger ends a week ahead; a resolve ends now (or before)
        ends = datetime.fromisoformat(r.json[0]["endsAt"].replace("Z", "+00:00")).timestamp()
        return "resolve" if ends < r.at + 3600 else "trigger"
    if r.path.startswith("/ntfy"):
        return "resolve" if r.headers["Priority"] == "2" else "trigger"
    if r.path.startswith("/slack"):
        return "resolve" if "resolved" in r.json["text"].lower() else "trigger"
    return str(r.json["status"])


async def test_every_channel_follows_a_whole_incident_wedged_cycling_recovered(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with Harness(tmp_path) as h:
        _configure_all_channels(h)
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        await h.wait_until(lambda: h.node_class(A) == "booting", 20, "the cycle")
        await h.wait_until(lambda: h.node_class(A) == "healthy", 30, "recovery")
        await h.wait_until(
            lambda: len([r for r in h.rx.received if r.path.startswith("/pagerduty")]) >= 3,
            10,
            "the resolve on every channel",
        )
        await asyncio.sleep(0.5)
        by = {
            p: [r for r in h.rx.received if r.path.startswith(p)]
            for p in ("/webhook", "/slack", "/ntfy", "/pagerduty", "/am")
        }
        # Three notifications each: wedged (cycle started), update (booting), resolve (the
        # Alertmanager channel may send its resolve twice: see _resolve_resent_once).
        kinds = {p: [_kind(r) for r in v] for p, v in by.items()}
        kinds["/am"] = _resolve_resent_once(kinds["/am"])
        assert kinds == {p: ["trigger", "trigger", "resolve"] for p in by}, kinds

        hook = [r.json for r in by["/webhook"]]
        assert [(j["status"], j["condition"]) for j in hook] == [
            ("trigger", "wedged"),
            ("trigger", "wedged"),
            ("resolve", "wedged"),
        ]
        assert hook[0]["failure"] == "no_banner" and hook[0]["done"] == "power cycle started"

        pd = [r.json for r in by["/pagerduty"]]
        assert [j["event_action"] for j in pd] == ["trigger", "trigger", "resolve"]
        assert len({j["dedup_key"] for j in pd}) == 1
        assert pd[0]["routing_key"] == "R0UTINGs3cretpd"
        assert pd[0]["payload"]["source"] == A and pd[0]["payload"]["severity"] == "critical"

        am = by["/am"]
        assert all(r.path == "/am/api/v2/alerts" for r in am)
        assert am[0].json[0]["labels"]["node"] == A and "endsAt" in am[-1].json[0]
        # A trigger's endsAt lies a week ahead; the resolve ends the alert now.
        assert am[-1].json[0]["endsAt"] < am[0].json[0]["endsAt"]

        ntfy = by["/ntfy"]
        assert ntfy[0].headers["Authorization"] == "Bearer tk_s3cretntfy"
        assert ntfy[0].headers["Priority"] == "5" and ntfy[-1].headers["Priority"] == "2"

        slack = [r.json for r in by["/slack"]]
        assert A in slack[0]["text"] and "blocks" in slack[0]

        # The channels' secrets reached their receivers and nothing else: not the daemon's log.
        logged = "".join(capfd.readouterr())
        assert "alert cluster-watchdog/spark-1/wedged" in logged  # the log was captured
        for secret in ("s3cretslack", "tk_s3cretntfy", "R0UTINGs3cretpd"):
            assert secret not in logged


def test_the_sim_command_serves_a_cluster_that_check_passes(tmp_path: Path) -> None:
    out_cfg = tmp_path / "sim.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "sim", "-o", str(out_cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        snippet = "".join(lines)
        assert "clusters:" in snippet and "127.0.0.1" in snippet
        cfg = parse_config(out_cfg.read_text(), env=os.environ)
        assert cfg.watchdog.dry_run and [n.name for _, n in cfg.nodes()] == ["spark-1", "spark-2"]
        doc = yaml.safe_load(out_cfg.read_text())
        doc["watchdog"]["state_dir"] = str(tmp_path / "state")
        out_cfg.write_text(yaml.safe_dump(doc))
        check = subprocess.run(
            [sys.executable, "-m", "watchdog", "check", "-c", str(out_cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0


async def test_in_dry_run_a_stop_mid_cycle_is_immediate_and_leaves_no_intent(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path, timings=Timings(off_time=60.0), subprocess_daemon=True) as h:
        doc = h.config()
        doc["watchdog"]["dry_run"] = True
        h.write_config(doc)
        await h.start_daemon()
        await h.healthy()
        await h.sim.wedge(A)
        await h.wait_until(lambda: h.node_class(A) == "cycling", 30, f"{A} to be 'cycled'")
        assert h.proc is not None
        started = asyncio.get_running_loop().time()
        h.proc.send_signal(signal.SIGTERM)  # a minute of virtual off time still to go
        code = await asyncio.to_thread(h.proc.wait, 30)
        took = asyncio.get_running_loop().time() - started
        h.proc = None
        assert code == 0
        assert took < 5.0, took
        state = yaml.safe_load((h.state_dir / "state.json").read_text())
        assert state["intents"] == {}  # a restart does not "finish" a cycle that never was
        assert h.sim.power_record(A) == []
