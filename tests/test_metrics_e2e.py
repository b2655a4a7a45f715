"""The metrics endpoint of the real daemon, scraped by a real Prometheus while a node wedges.

The daemon runs against the simulated cluster with compressed timings; Debian's Prometheus
scrapes it every second and is asked, through its HTTP API, what it saw.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures_prometheus import free_port, query, query_range

from watchdog.sim.harness import Harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
A, B = "spark-1", "spark-2"


def with_metrics(h: Harness, port: int) -> None:
    doc = h.config()
    doc["metrics"] = {"listen": f"127.0.0.1:{port}"}
    h.write_config(doc)


def by_label(series: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in series}


def class_timeline(series: list[dict[str, Any]]) -> list[str]:
    """The classes a node was in, in order, from a range query of its 0/1 class gauges."""
    at: dict[float, str] = {}
    for s in series:
        for t, v in s["values"]:
            if v == "1":
                at[float(t)] = s["metric"]["class"]
    out: list[str] = []
    for t in sorted(at):
        if not out or out[-1] != at[t]:
            out.append(at[t])
    return out


async def test_prometheus_sees_nodes_go_wedged_booting_healthy_with_one_power_cycle_each(
    tmp_path: Path, prometheus: Any, promtool: str
) -> None:
    # Both nodes wedge at once. One power action runs at a time (policy.max_in_flight), so
    # one node is cycled at once (suspect -> cycling within one evaluation) and the other
    # stays *wedged* while it waits: Prometheus must see that class too.
    port = free_port()
    async with Harness(tmp_path) as h:
        with_metrics(h, port)
        await h.start_daemon()
        prom = prometheus([f"127.0.0.1:{port}"], scrape_interval="1s")
        await h.healthy()
        start = time.time()
        cycles = (
            'sum by (node) (cluster_watchdog_power_actions_total{kind="power_cycle",outcome="ok"})'
        )

        async def scraped_healthy() -> bool:
            got = await asyncio.to_thread(
                query, prom, 'cluster_watchdog_node_class{class="healthy"} == 1'
            )
            return len(got) == 2

        deadline = time.monotonic() + 20
        while not await scraped_healthy():
            assert time.monotonic() < deadline, "Prometheus never scraped healthy nodes"
            await asyncio.sleep(0.5)
        # Counters are per process (this test process may have run other daemons before):
        # what this run did is the difference.
        # Other daemons this process ran may have left series of their own nodes: keep ours.
        before = by_label(await asyncio.to_thread(query, prom, cycles), "node")
        assert {A, B} <= set(before), before
        before = {n: before[n] for n in (A, B)}
        page_expr = (
            'sum by (status) (cluster_watchdog_pages_sent_total{channel="on-call",'
            'condition="wedged"})'
        )
        pages_before = by_label(await asyncio.to_thread(query, prom, page_expr), "status")
        failed_expr = "sum(cluster_watchdog_pages_failed_total)"
        failed_before = by_label(await asyncio.to_thread(query, prom, failed_expr), "")

        await h.sim.wedge(A)
        await h.sim.wedge(B)
        await h.wait_until(lambda: h.offs(A) == 1 == h.offs(B), 60, "both to be power-cycled")
        await h.healthy()
        await asyncio.sleep(3)  # a few more scrapes of the healthy nodes
        end = time.time()

        timelines = {}
        for node in (A, B):
            series = await asyncio.to_thread(
                query_range,
                prom,
                f'cluster_watchdog_node_class{{node="{node}"}} == 1',
                start,
                end,
                "0.5",
            )
            timelines[node] = class_timeline(series)
        for timeline in timelines.values():
            seen = [c for c in timeline if c in ("healthy", "wedged", "booting")]
            assert seen[0] == "healthy" and seen[-1] == "healthy", timelines
            assert seen.count("booting") == 1, timelines
        waited = [
            n
            for n, tl in timelines.items()
            if [c for c in tl if c in ("healthy", "wedged", "booting")]
            == ["healthy", "wedged", "booting", "healthy"]
        ]
        # The node that waits behind max_in_flight is seen wedged; so may both be, while every
        # plug is read before acting (two nodes failing at once).
        assert len(waited) >= 1, timelines
        after = by_label(await asyncio.to_thread(query, prom, cycles), "node")
        assert {n: after[n] - before[n] for n in before} == {A: 1.0, B: 1.0}
        up = await asyncio.to_thread(query, prom, 'up{job="cluster-watchdog"}')
        assert [s["value"][1] for s in up] == ["1"]
        budget = await asyncio.to_thread(query, prom, "cluster_watchdog_power_cycles_remaining")
        assert {s["metric"]["node"]: s["value"][1] for s in budget} == {A: "2", B: "2"}
        # Every wedge was paged and resolved through the webhook channel, nothing failed.
        pages = by_label(await asyncio.to_thread(query, prom, page_expr), "status")
        sent = {k: pages[k] - pages_before.get(k, 0.0) for k in pages}
        assert sent["resolve"] == 2 and sent["trigger"] >= 2, sent
        failed = by_label(await asyncio.to_thread(query, prom, failed_expr), "")
        assert failed == failed_before

        # The exposition itself passes promtool's lint, and /healthz answers.
        async with httpx.AsyncClient() as client:
            scrape = await client.get(f"http://127.0.0.1:{port}/metrics")
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
            refused = await client.post(f"http://127.0.0.1:{port}/metrics", content=b"x")
        lint = await asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=scrape.content,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
        assert (lint.stdout + lint.stderr).strip() == b""
        assert health.status_code == 200
        assert refused.status_code == 405
        text = scrape.text
        assert 'cluster_watchdog_build_info{version="' in text
        assert "cluster_watchdog_probe_duration_seconds_bucket" in text
        assert 'cluster_watchdog_probe_failures_total{failure="no_banner",probe="ssh"}' in text
