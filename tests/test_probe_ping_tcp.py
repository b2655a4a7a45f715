"""ICMP ping and TCP witness probes, on loopback and in private network namespaces.

The privilege paths of the ping probe (ICMP datagram socket allowed by ping_group_range, raw
socket fallback, neither permitted) and a genuinely unreachable loopback are reproduced in a
fresh network namespace (``unshare --net``): its sysctls and loopback device are its own, so the
host's settings are never touched and no packet leaves 127.0.0.0/8.
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import need

from watchdog.core.model import FailureKind, ProbeKind
from watchdog.probes.ping import _checksum, _echo_request, probe_ping
from watchdog.probes.tcp import connect_failure, probe_tcp

LO = "127.0.0.1"
OPEN_PING = {"net.ipv4.ping_group_range": "0 2147483647"}
CLOSED_PING = {"net.ipv4.ping_group_range": "1 0"}


def _run_in_netns(
    call: str, *, sysctls: dict[str, str], lo_up: bool = True, drop_net_raw: bool = False
) -> dict[str, str]:
    """Run ``await <call>`` in a fresh network namespace; return the ProbeResult's fields."""
    tools = ("unshare", "ip", "sysctl") + (("setpriv",) if drop_net_raw else ())
    missing = [t for t in tools if shutil.which(t) is None]
    need(not missing, f"util-linux/iproute2/procps tools {missing}")
    setup = ["ip link set lo up"] if lo_up else []
    setup += [f"sysctl -qw {key}='{value}'" for key, value in sysctls.items()]
    script = (
        "import asyncio, json\n"
        "from watchdog.probes.ping import probe_ping\n"
        "from watchdog.probes.tcp import probe_tcp\n"
        "async def main():\n"
        f"    return await {call}\n"
        "r = asyncio.run(main())\n"
        "print(json.dumps({'failure': r.failure, 'detail': r.detail, 'hint': r.hint,\n"
        "                  'latency': r.latency, 'socket': r.data.get('socket', '')}))\n"
    )
    drop = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"]
    cmd = [
        "unshare", "--net", "--", "sh", "-ec", "; ".join([*setup, 'exec "$@"']), "sh",
        *(drop if drop_net_raw else []), sys.executable, "-c", script,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        need(False, f"a private network namespace (unshare --net, root): {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def saturated_listener() -> Iterator[int]:
    """A listen(0) socket that never accepts, with its accept queue full: SYNs are dropped."""
    listener = socket.socket()
    listener.bind((LO, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex((LO, port))
    time.sleep(0.05)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


# -- ping -----------------------------------------------------------------------------------


async def test_it_pings_loopback() -> None:
    result = await probe_ping(LO, timeout=1.0, target="node n1")
    # If this fails with probe_error, the detail and hint say why (no ICMP permission here).
    assert result.ok, f"{result.detail}: {result.hint}"
    assert result.probe is ProbeKind.PING
    assert result.data["socket"] in {"dgram", "raw"}
    assert result.latency < 1.0


async def test_it_pings_ipv6_loopback_when_the_host_has_it() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    result = await probe_ping("::1", timeout=1.0, target="node n1")
    assert result.ok, f"{result.detail}: {result.hint}"


async def test_ping_can_stand_in_as_a_witness() -> None:
    result = await probe_ping(LO, timeout=1.0, target="gateway", probe=ProbeKind.WITNESS)
    assert result.ok, f"{result.detail}: {result.hint}"
    assert result.probe is ProbeKind.WITNESS


def test_raw_ipv4_echo_requests_carry_a_valid_checksum() -> None:
    # The kernel fills the checksum for ping sockets but not for raw IPv4 ones; loopback does
    # not verify it, a real network does.
    packet = _echo_request(socket.AF_INET, 0x1234, 7, b"cluster-watchdog-payload!")
    assert packet[0] == 8  # echo request
    assert _checksum(packet) == 0


def test_it_uses_an_unprivileged_icmp_socket_when_ping_group_range_allows() -> None:
    got = _run_in_netns(
        f"probe_ping('{LO}', timeout=1.0, target='n')", sysctls=OPEN_PING, drop_net_raw=True
    )
    assert got["failure"] is None, got
    assert got["socket"] == "dgram"


def test_it_falls_back_to_a_raw_socket_when_it_has_cap_net_raw() -> None:
    got = _run_in_netns(f"probe_ping('{LO}', timeout=1.0, target='n')", sysctls=CLOSED_PING)
    assert got["failure"] is None, got
    assert got["socket"] == "raw"


def test_it_explains_the_privilege_needed_when_icmp_is_not_permitted() -> None:
    got = _run_in_netns(
        f"probe_ping('{LO}', timeout=1.0, target='n')", sysctls=CLOSED_PING, drop_net_raw=True
    )
    assert got["failure"] == FailureKind.PROBE_ERROR, got
    assert "ping_group_range = 0 2147483647" in got["hint"]
    assert "CAP_NET_RAW" in got["hint"]


def test_it_reports_no_reply_when_echoes_are_ignored() -> None:
    got = _run_in_netns(
        f"probe_ping('{LO}', timeout=0.3, target='n')",
        sysctls={**OPEN_PING, "net.ipv4.icmp_echo_ignore_all": "1"},
    )
    assert got["failure"] == FailureKind.NO_REPLY, got
    assert 0.25 <= float(got["latency"]) <= 0.8


def test_ping_reports_unreachable_when_there_is_no_route() -> None:
    # In a namespace whose loopback is down, not even 127.0.0.1 has a route.
    got = _run_in_netns(
        f"probe_ping('{LO}', timeout=1.0, target='n')", sysctls=OPEN_PING, lo_up=False
    )
    assert got["failure"] == FailureKind.UNREACHABLE, got
    assert float(got["latency"]) < 0.5


# -- tcp witness ----------------------------------------------------------------------------


async def test_the_tcp_witness_passes_when_it_connects() -> None:
    with socket.socket() as listener:
        listener.bind((LO, 0))
        listener.listen(1)
        result = await probe_tcp(LO, listener.getsockname()[1], timeout=0.5, target="gateway")
    assert result.ok, result
    assert result.probe is ProbeKind.WITNESS
    assert result.detail == "connected"


async def test_a_refusal_counts_as_reachable_for_the_tcp_witness() -> None:
    with socket.socket() as holder:  # bound, not listening: the kernel answers with RST
        holder.bind((LO, 0))
        result = await probe_tcp(LO, holder.getsockname()[1], timeout=0.5, target="gateway")
    assert result.ok, result
    assert result.detail == "refused (host answers)"


async def test_the_tcp_witness_fails_when_the_handshake_times_out(
    saturated_listener: int,
) -> None:
    result = await probe_tcp(LO, saturated_listener, timeout=0.3, target="gateway")
    assert result.failure is FailureKind.CONNECT_TIMEOUT, result
    assert 0.25 <= result.latency <= 0.8
    assert result.hint


def test_the_tcp_witness_fails_when_there_is_no_route() -> None:
    got = _run_in_netns(
        f"probe_tcp('{LO}', 53, timeout=1.0, target='gateway')", sysctls={}, lo_up=False
    )
    assert got["failure"] == FailureKind.UNREACHABLE, got


async def test_the_tcp_probe_can_report_as_another_probe_kind() -> None:
    with socket.socket() as holder:
        holder.bind((LO, 0))
        result = await probe_tcp(
            LO, holder.getsockname()[1], timeout=0.5, target="n", probe=ProbeKind.SSH
        )
    assert result.probe is ProbeKind.SSH


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), FailureKind.REFUSED),
        (TimeoutError(), FailureKind.CONNECT_TIMEOUT),
        (OSError(errno.ETIMEDOUT, "timed out"), FailureKind.CONNECT_TIMEOUT),
        (OSError(errno.EHOSTUNREACH, "no route to host"), FailureKind.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "network unreachable"), FailureKind.UNREACHABLE),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), FailureKind.UNREACHABLE),
        (OSError(errno.EMFILE, "too many open files"), FailureKind.PROBE_ERROR),
        (OSError(errno.EPERM, "operation not permitted"), FailureKind.PROBE_ERROR),
        (ValueError("malformed host"), FailureKind.PROBE_ERROR),
    ],
)
def test_it_sorts_connect_errors_into_target_faults_and_local_faults(
    exc: BaseException, kind: FailureKind
) -> None:
    assert connect_failure(exc)[0] is kind
