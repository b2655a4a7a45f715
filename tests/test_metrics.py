"""The metrics endpoint: its setting, its series, ``/healthz`` and what it refuses.

The server is the daemon's own (:class:`~watchdog.service.metrics_server.MetricsServer`) on a
loopback port, serving an engine stand-in whose fleet state the tests set.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from watchdog.config import Config, parse_config
from watchdog.core.errors import ConfigError
from watchdog.core.evidence import FleetState, initial_fleet
from watchdog.core.model import NodeClass
from watchdog.service.metrics_server import MetricsServer, start_metrics

T0 = 1_800_000_000.0


def config(metrics: dict[str, Any] | None = None) -> Config:
    doc: dict[str, Any] = {
        "alerts": {"channels": [{"type": "webhook", "url": "http://127.0.0.1:9/h"}]},
        "clusters": [
            {
                "name": "main",
                "endpoint": {"base_url": "http://127.0.0.1:9", "model": "m"},
                "nodes": [
                    {"name": "spark-1", "host": "127.0.0.1", "plug": {"type": "dry_run"}},
                    {"name": "spark-2", "host": "127.0.0.2", "plug": {"type": "dry_run"}},
                ],
            }
        ],
    }
    if metrics is not None:
        doc["metrics"] = metrics
    return parse_config(yaml.safe_dump(doc), env={})


class Engine:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state: FleetState = initial_fleet({"spark-1": "main", "spark-2": "main"}, T0)
        self.now = T0
        self.last_tick = T0
        self.clock = lambda: self.now


@pytest.fixture
async def served() -> AsyncIterator[tuple[MetricsServer, Engine]]:
    engine = Engine(config({"listen": "127.0.0.1:9464"}))
    server = MetricsServer(engine, "127.0.0.1", 0)
    await server.start()
    yield server, engine
    await server.stop()


def test_metrics_are_off_unless_a_listen_address_is_set() -> None:
    assert config().metrics is None
    on = config({"listen": "[::1]:9464"}).metrics
    assert on is not None and (on.host, on.port) == ("::1", 9464)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("9464", "'9464' is not HOST:PORT"),
        ("localhost:9464", "'localhost' is not an IP address"),
        ("127.0.0.1:99999", "port '99999' is not between 1 and 65535"),
        ("127.0.0.1:", "port '' is not between 1 and 65535"),
    ],
)
def test_a_bad_listen_address_names_the_key_and_the_fix(listen: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config({"listen": listen})
    assert caught.value.path == "metrics.listen"
    assert message in str(caught.value)
    assert "127.0.0.1:9464" in caught.value.fix


@pytest.mark.e2e  # runs cluster-watchdog as a real process
def test_check_config_exits_78_on_a_bad_listen_address(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    doc = yaml.safe_load(yaml.safe_dump(config().model_dump(mode="json", exclude_none=True)))
    doc["metrics"] = {"listen": "0.0.0.0"}
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stdout + done.stderr
    assert "metrics.listen" in done.stderr and "Traceback" not in done.stderr


async def test_every_node_has_one_class_series_per_class_and_exactly_one_is_set(
    served: tuple[MetricsServer, Engine],
) -> None:
    server, _ = served
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    for node in ("spark-1", "spark-2"):
        lines = [
            line
            for line in r.text.splitlines()
            if line.startswith("cluster_watchdog_node_class{") and f'node="{node}"' in line
        ]
        assert len(lines) == len(NodeClass)
        assert [line for line in lines if line.endswith(" 1.0")] == [
            f'cluster_watchdog_node_class{{class="unknown",cluster="main",node="{node}"}} 1.0'
        ]
    assert "cluster_watchdog_blind 0.0" in r.text
    assert 'cluster_watchdog_power_cycles_remaining{cluster="main",node="spark-1"} 3.0' in r.text
    assert "_created" not in r.text


async def test_healthz_turns_503_when_the_scheduler_stops_ticking(
    served: tuple[MetricsServer, Engine],
) -> None:
    server, engine = served
    async with httpx.AsyncClient() as client:
        ok = await client.get(f"{server.url}/healthz")
        engine.now = T0 + 0.9  # the tick period is 0.2..1 s: within twice it
        still = await client.get(f"{server.url}/healthz")
        engine.now = T0 + 30
        stalled = await client.get(f"{server.url}/healthz")
    assert (ok.status_code, still.status_code, stalled.status_code) == (200, 200, 503)
    assert "last ticked 30.0s ago" in stalled.text


async def test_it_is_read_only_and_serves_nothing_else(
    served: tuple[MetricsServer, Engine],
) -> None:
    server, _ = served
    async with httpx.AsyncClient() as client:
        post = await client.post(f"{server.url}/metrics", content=b"x" * 10_000)
        put = await client.put(f"{server.url}/healthz")
        other = await client.get(f"{server.url}/state.json")
    assert (post.status_code, put.status_code, other.status_code) == (405, 405, 404)


async def test_an_oversized_request_header_is_refused(
    served: tuple[MetricsServer, Engine],
) -> None:
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.split()[1] in (b"400", b"431"), status


async def test_a_port_in_use_is_logged_and_the_daemon_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config({"listen": f"127.0.0.1:{port}"})
        with caplog.at_level(logging.ERROR, logger="watchdog.metrics"):
            assert await start_metrics(cfg, Engine(cfg)) is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text


async def test_no_listener_when_metrics_are_off() -> None:
    cfg = config()
    assert await start_metrics(cfg, Engine(cfg)) is None


async def test_a_reloaded_configs_new_node_gets_zero_counter_series(
    served: tuple[MetricsServer, Engine],
) -> None:
    server, engine = served
    doc = engine.cfg.model_dump(mode="json", exclude_none=True)
    doc["clusters"][0]["nodes"].append(
        {"name": "spark-9", "host": "127.0.0.9", "plug": {"type": "dry_run"}}
    )
    series = 'cluster_watchdog_power_actions_total{kind="power_cycle",node="spark-9",outcome="ok"}'
    async with httpx.AsyncClient() as client:
        assert series not in (await client.get(f"{server.url}/metrics")).text
        engine.cfg = parse_config(yaml.safe_dump(doc), env={})
        assert f"{series} 0.0" in (await client.get(f"{server.url}/metrics")).text
