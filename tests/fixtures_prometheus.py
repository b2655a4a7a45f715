"""Real Prometheus, Alertmanager and promtool (Debian's packages) for the tests.

Each server runs in the foreground as the test's child, on 127.0.0.1 with a port of its own,
its own config file and its own data directory under the test's tmp_path; it is stopped
(SIGTERM, then SIGKILL) when the test ends. Missing binaries skip, or fail under CI=true.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import need

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def tool(path: str, package: str) -> str:
    found = shutil.which(path) or shutil.which(Path(path).name)
    need(found is not None, f"{Path(path).name} (Debian package {package})")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=5)
        assert r.status_code == 200, f"{path} {params}: HTTP {r.status_code}: {r.text[:500]}"
        return r.json()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _start(argv: list[str], workdir: Path, url: str, ready: str) -> Server:
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(url, proc, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    _stop(proc)
    raise TimeoutError(f"{argv[0]} not ready within 30 s:\n{server.output()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def promtool() -> str:
    return tool(PROMTOOL, "prometheus")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """``start(targets, scrape_interval="1s", rule_files=())`` → a running :class:`Server`."""
    binary = tool(PROMETHEUS, "prometheus")
    started: list[Server] = []

    def start(targets: list[str], scrape_interval: str = "1s", rule_files: tuple[Path, ...] = ()):
        workdir = tmp_path / f"prometheus-{len(started)}"
        (workdir / "data").mkdir(parents=True)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "cluster-watchdog",
                    "scrape_timeout": scrape_interval,
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        server = _start(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            workdir,
            f"http://127.0.0.1:{port}",
            "/-/ready",
        )
        started.append(server)
        return server

    yield start
    for server in started:
        _stop(server.proc)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Server]:
    """A running Alertmanager (no clustering, a route to nowhere) on 127.0.0.1."""
    binary = tool(ALERTMANAGER, "prometheus-alertmanager")
    workdir = tmp_path / "alertmanager"
    (workdir / "data").mkdir(parents=True)
    config = {
        "route": {"receiver": "null", "group_wait": "1s", "group_interval": "1s"},
        "receivers": [{"name": "null"}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = _start(
        [
            binary,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port on 0.0.0.0
            "--log.level=warn",
        ],
        workdir,
        f"http://127.0.0.1:{port}",
        "/-/ready",
    )
    yield server
    _stop(server.proc)


def query(server: Server, expr: str) -> list[dict[str, Any]]:
    """An instant PromQL query; the result vector."""
    doc = server.get("/api/v1/query", query=expr)
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def query_range(server: Server, expr: str, start: float, end: float, step: str = "1s") -> Any:
    doc = server.get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]
