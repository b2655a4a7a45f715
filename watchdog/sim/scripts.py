"""What happens in each scenario: scripts that drive the simulated cluster (and the operator).

Each script takes the :class:`~watchdog.sim.harness.Harness` — the simulated cluster and the
real daemon watching it — makes the scenario's fault happen, and waits (bounded) for what the
watchdog should do, raising ``TimeoutError`` or ``AssertionError`` when it does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from watchdog.sim.banner import BannerMode
from watchdog.sim.harness import Harness
from watchdog.sim.kasa import PlugFault
from watchdog.sim.sim_node import NodeFault
from watchdog.sim.vllm import VllmMode
from watchdog.state import control

A, B = "spark-1", "spark-2"
CLUSTER = "sim"
Script = Callable[[Harness], Awaitable[None]]


async def wedge_one(h: Harness) -> None:
    await h.healthy()
    await h.sleep(1)
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")
    await h.sleep(2)  # and nothing more happens


async def blip(h: Harness) -> None:
    await h.healthy()
    banner = h.sim.nodes[A].banner
    for _ in range(2):  # two short silences, each shorter than the duration threshold
        await banner.set_mode(BannerMode.WEDGED)
        await h.sleep(1.2)
        await banner.set_mode(BannerMode.SPEAK)
        await h.sleep(1.5)
    await h.sleep(3)


async def slow_boot(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    # While its power is off, make the next boot and model load slow (the sim holds one
    # fault per node, and power-off clears the wedge).
    await h.sim.set_fault(A, NodeFault.SLOW_BOOT)
    slow_boot_until = h.t.boot_delay * h.t.slow_factor
    await h.wait_until(lambda: h.node_class(A) == "booting", 10, f"{A} to be booting")
    await h.sleep(slow_boot_until * h.speed)
    assert h.node_class(A) == "booting", "left the grace before the slow boot finished"
    await h.wait_until(lambda: h.node_class(A) == "healthy", 40, f"{A} to recover")
    await h.sleep(2)


def config_fault(mode: VllmMode) -> Script:
    async def script(h: Harness) -> None:
        await h.healthy()
        await h.sim.set_endpoint_mode(mode)
        await h.wait_until(
            lambda: h.has_alert(CLUSTER, "misconfigured"), 25, "the misconfigured alert"
        )
        await h.sleep(3)

    return script


async def engine_stuck(h: Harness) -> None:
    await h.healthy()
    await h.sim.set_endpoint_mode(VllmMode.ENGINE_STUCK)
    await h.wait_until(lambda: h.has_alert(CLUSTER, "degraded"), 25, "the degraded alert")
    await h.sleep(3)


async def blind(h: Harness) -> None:
    await h.healthy()
    await h.witness.go_silent()
    for node in (A, B):
        await h.sim.nodes[node].plug.set_fault(PlugFault.DOWN)
        await h.sim.wedge(node)
    await h.wait_until(lambda: h.has_alert("watchdog", "blind"), 25, "the blind alert")
    await h.sleep(4)


async def boot_loop(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    await h.sim.set_fault(A, NodeFault.BOOT_LOOP)  # from now on it never comes back
    await h.wait_until(lambda: h.is_latched(A), 60, f"{A} to be given up")
    await h.restart_daemon()  # the latch survives a daemon restart
    await h.sleep(3)


async def both(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.sim.wedge(B)
    await h.wait_until(lambda: h.offs(A) >= 1 and h.offs(B) >= 1, 40, "both to be cycled")
    await h.wait_until(
        lambda: h.node_class(A) == "healthy" == h.node_class(B), 40, "both to recover"
    )


async def killed(h: Harness) -> None:
    await h.healthy()
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    h.kill_daemon()  # kill -9 between off and on
    await h.sleep(0.5)
    assert not h.sim.nodes[A].plug.is_on(h.sim.nodes[A].outlet), "plug came on by itself"
    await h.start_daemon()
    await h.wait_until(
        lambda: h.sim.nodes[A].plug.is_on(h.sim.nodes[A].outlet),
        10,
        "the restarted daemon to switch the plug on",
    )
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


async def plug_down(h: Harness) -> None:
    await h.healthy()
    plug = h.sim.nodes[A].plug
    await plug.set_fault(PlugFault.DOWN)
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.has_alert(A, "plug"), 25, "the plug alert")
    await h.sleep(3)
    assert h.offs(A) == 0, "cycled through an unreachable plug?"
    await plug.set_fault(PlugFault.NONE)  # the plug comes back: retried later
    await h.wait_until(lambda: h.offs(A) >= 1, 30, f"{A} to be cycled once its plug answers")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


async def maintenance(h: Harness) -> None:
    await h.healthy()
    req = control.new_request(control.Op.PAUSE, A, now=0.0)
    control.submit(h.state_dir, req)
    resp = await control.wait_response(h.state_dir, req.id, timeout=5)
    assert resp is not None and resp.ok, resp
    await h.sim.wedge(A)
    await h.sleep(8)  # far past the thresholds: no action, no page
    assert h.offs(A) == 0 and not h.alerts(), "acted on a node in maintenance"
    req = control.new_request(control.Op.RESUME, A, now=0.0)
    control.submit(h.state_dir, req)
    await control.wait_response(h.state_dir, req.id, timeout=5)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be cycled after resume")
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")


async def ssh_down(h: Harness) -> None:
    await h.healthy()
    await h.sim.set_fault(A, NodeFault.SSH_DOWN)  # sshd stopped; the model keeps serving
    await h.wait_until(lambda: h.has_alert(A, "ssh_down"), 25, "the ssh_down alert")
    await h.sleep(6)  # far past the thresholds and two tool-call intervals: still no cycle
    assert h.node_class(A) == "ssh_down", h.node_class(A)
    await h.sim.set_fault(A, NodeFault.NONE)  # sshd started again
    await h.wait_until(lambda: h.node_class(A) == "healthy", 15, f"{A} healthy again")
    await h.sleep(1)


async def network_blip(h: Harness) -> None:
    await h.healthy()
    await h.sleep(1)
    await h.sim.set_dark(True)  # every node, plug and the endpoint: no answer at all
    await h.wait_until(lambda: h.has_alert("watchdog", "blind"), 25, "the blind alert")
    await h.sleep(4)
    await h.sim.set_dark(False)
    await h.wait_until(
        lambda: h.node_class(A) == "healthy" == h.node_class(B), 30, "both healthy again"
    )
    await h.sleep(6)  # and nothing more happens once sight is back


async def wedge_refused(h: Harness) -> None:
    await h.healthy()
    await h.sim.set_endpoint_mode(VllmMode.LOADING)  # the engine is gone: the port refuses
    await h.sim.wedge(A)
    await h.wait_until(lambda: h.offs(A) >= 1, 20, f"{A} to be switched off")
    await h.sim.set_endpoint_mode(VllmMode.HEALTHY)  # the reboot brings the engine back
    await h.wait_until(lambda: h.node_class(A) == "healthy", 30, f"{A} to recover")
    await h.sleep(2)


async def page_across_restart(h: Harness) -> None:
    await h.healthy()
    await h.sim.set_endpoint_mode(VllmMode.AUTH)  # the API key is rejected: paged
    await h.wait_until(lambda: h.has_alert(CLUSTER, "misconfigured"), 25, "the misconfigured alert")
    await h.stop_daemon()
    await h.sim.set_endpoint_mode(VllmMode.HEALTHY)  # the key is fixed while it is down
    await h.start_daemon()
    await h.wait_until(lambda: h.has_alert(CLUSTER, "misconfigured", "resolve"), 25, "the resolve")
    await h.sleep(2)
