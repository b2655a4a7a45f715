"""What ``run`` loads: nothing the daemon does not use.

A fresh interpreter runs the real :class:`~watchdog.service.daemon.Daemon` against the
simulated 2-node cluster (which runs in the test process, so the child never imports the
simulator) until both nodes are healthy, then reports what is in its ``sys.modules`` and
which module first imported each library. With no page sent and no ``metrics.listen``, no
HTTP client library, web server or Prometheus client is loaded; with ``metrics.listen`` set
they are (the same report, so it can fail). A library imported late is still configured:
the chatty loggers set before httpx exists apply to httpx once it is loaded.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures_prometheus import free_port
from pydantic import SecretStr

from watchdog.alerts.client import LazyClient
from watchdog.alerts.factory import build_channels
from watchdog.alerts.heartbeat import Heartbeat
from watchdog.config import parse_config
from watchdog.core.model import AlertEvent, AlertStatus, Condition, Severity
from watchdog.probes.http import make_client
from watchdog.sim.harness import Harness
from watchdog.sim.receiver import AlertReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

WATCHED = (
    "httpx",
    "httpcore",
    "aiohttp",
    "aiohttp.web",
    "prometheus_client",
    "kasa",
    "cryptography",
)

# The child: trace who imports the watched libraries, run the daemon until every node is
# healthy, report, stop. Then import httpx (as the first page would) and report its loggers.
CHILD = r"""
import asyncio, importlib.abc, json, logging, sys

WATCHED = set(sys.argv[2].split(","))
importers = {}

class Tracer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in WATCHED and name not in importers:
            frame = sys._getframe(1)
            skip = ("importlib", "_frozen")
            while frame and frame.f_globals.get("__name__", "").startswith(skip):
                frame = frame.f_back
            importers[name] = frame.f_globals.get("__name__", "?") if frame else "?"
        return None

sys.meta_path.insert(0, Tracer())

from pathlib import Path
import watchdog.commands.cli  # what `cluster-watchdog run` loads before the daemon
from watchdog.service.daemon import Daemon
from watchdog.core.model import NodeClass

async def main():
    daemon = Daemon(Path(sys.argv[1]), install_signals=False, log_journal=False)
    serving = asyncio.create_task(daemon.serve())
    await asyncio.wait_for(daemon.started.wait(), 20)
    for _ in range(200):
        if all(n.cls is NodeClass.HEALTHY for n in daemon.engine.state.nodes.values()):
            break
        await asyncio.sleep(0.1)
    report = {
        "classes": [n.cls.value for n in daemon.engine.state.nodes.values()],
        "modules": sorted(m for m in sys.modules if m.split(".")[0] in {
            "httpx", "httpcore", "aiohttp", "prometheus_client", "kasa", "cryptography",
            "watchdog"}),
        "importers": importers,
    }
    daemon.request_stop()
    report["exit"] = await asyncio.wait_for(serving, 30)
    import httpx, httpcore._trace
    report["httpx_logger_level"] = httpx._client.logger.getEffectiveLevel()
    report["httpcore_logger_level"] = logging.getLogger("httpcore.http11").getEffectiveLevel()
    print(json.dumps(report))

asyncio.run(main())
"""


async def run_child(h: Harness, doc: dict[str, Any]) -> dict[str, Any]:
    h.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(h.config_path),
        ",".join(WATCHED),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    report: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return report


@pytest.mark.parametrize("progress", [False, True], ids=["progress off", "progress on"])
async def test_the_daemon_loads_no_http_client_web_server_or_prometheus_until_it_needs_them(
    tmp_path: Path, progress: bool
) -> None:
    async with Harness(tmp_path) as h:
        doc = h.config()
        assert doc["alerts"]["channels"], "a channel is configured: the dispatcher has one"
        assert "metrics" not in doc
        for cluster in doc["clusters"]:
            cluster["endpoint"]["progress"] = {"enabled": progress}
        report = await run_child(h, doc)
        assert h.rx.received == [], "no page was sent: the premise of this test"
    assert report["classes"] == ["healthy", "healthy"]
    assert report["exit"] == 0
    modules = set(report["modules"])
    # The simulated plugs speak legacy Kasa (XOR): the native driver, no python-kasa.
    for name in ("httpx", "httpcore", "aiohttp", "kasa", "cryptography"):
        assert name not in modules, (name, report["importers"].get(name))
    assert not {m for m in modules if m.startswith("watchdog.sim")}
    assert "watchdog.service.metrics_server" not in modules
    assert "watchdog.telemetry.exposition" not in modules
    # The engine-progress probe reads vLLM's /metrics with its strict parser: prometheus_client
    # (its fallback for odd pages) is not loaded for it either.
    assert "prometheus_client" not in modules, report["importers"].get("prometheus_client")
    # httpx imported late (as at the first page) still logs only warnings and worse.
    assert report["httpx_logger_level"] >= 30
    assert report["httpcore_logger_level"] >= 30


async def test_with_metrics_listen_set_the_endpoint_and_its_counters_are_loaded(
    tmp_path: Path,
) -> None:
    async with Harness(tmp_path) as h:
        doc = h.config()
        doc["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
        for cluster in doc["clusters"]:
            cluster["endpoint"]["progress"] = {"enabled": False}
        report = await run_child(h, doc)
    modules = set(report["modules"])
    assert {"aiohttp.web", "prometheus_client", "watchdog.telemetry.exposition"} <= modules
    assert report["importers"]["prometheus_client"] == "watchdog.telemetry.exposition"
    assert "httpx" not in modules


def event() -> AlertEvent:
    return AlertEvent(
        node="spark-1",
        cluster="main",
        condition=Condition.WEDGED,
        status=AlertStatus.TRIGGER,
        severity=Severity.CRITICAL,
        summary="spark-1 wedged",
        seen="sshd silent",
        done="nothing",
        todo="look",
        at=1_800_000_000.0,
    )


async def test_the_alert_client_is_built_at_the_first_send_and_closed_with_the_daemon(
    receiver: AlertReceiver,
) -> None:
    cfg = parse_config(
        yaml.safe_dump(
            {
                "alerts": {"channels": [{"type": "webhook", "url": f"{receiver.url}/hook"}]},
                "clusters": [
                    {
                        "name": "main",
                        "endpoint": {"base_url": "http://127.0.0.1:9", "model": "m"},
                        "nodes": [
                            {"name": "spark-1", "host": "127.0.0.1", "plug": {"type": "dry_run"}}
                        ],
                    }
                ],
            }
        ),
        env={},
    )
    lazy = LazyClient(make_client)
    [channel] = build_channels(cfg.alerts, lazy)
    assert not lazy.built
    await channel.send(event())
    assert lazy.built
    assert len(receiver.received) == 1
    client = lazy.get()
    await lazy.aclose()
    assert client.is_closed
    await LazyClient(make_client).aclose()  # never built: nothing to close, no client made


async def test_the_heartbeat_builds_the_shared_client_at_its_first_ping(
    receiver: AlertReceiver,
) -> None:
    lazy = LazyClient(make_client)
    heartbeat = Heartbeat(SecretStr(f"{receiver.url}/ping/abc"), lazy, timeout=2.0)
    assert not lazy.built
    assert await heartbeat.ping(ok=False) is True
    assert lazy.built
    assert [(r.method, r.path) for r in receiver.received] == [("GET", "/ping/abc/fail")]
    await lazy.aclose()
