"""The ssh banner probe against Debian's real sshd and against the sim BannerServer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from watchdog.core.model import FailureKind, ProbeKind
from watchdog.probes.ssh import probe_ssh
from watchdog.sim.banner import BannerMode, BannerServer

TIMEOUT = 0.5
LO = "127.0.0.1"


def _assert_took_about(latency: float, timeout: float) -> None:
    assert timeout - 0.05 <= latency <= timeout + 0.5, latency


async def _tcp_connects(host: str, port: int) -> bool:
    """A plain TCP connect, nothing read: does the kernel still complete the handshake?"""
    try:
        async with asyncio.timeout(TIMEOUT):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@pytest.fixture
async def banner_server() -> AsyncIterator[BannerServer]:
    server = BannerServer(LO, 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def saturated_listener() -> Iterator[int]:
    """A listen(0) socket that never accepts, its accept queue already full.

    The kernel drops further SYNs, so a new connect never completes: a real CONNECT_TIMEOUT
    without leaving loopback.
    """
    listener = socket.socket()
    listener.bind((LO, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((LO, port))
        fillers.append(filler)
    time.sleep(0.05)  # let the fillers' handshakes land in the queue
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


# -- real OpenSSH ---------------------------------------------------------------------------


@pytest.mark.real_sshd
async def test_it_reads_the_banner_of_a_real_sshd(real_sshd) -> None:
    result = await probe_ssh(real_sshd.host, real_sshd.port, timeout=TIMEOUT, target="node n1")
    assert result.ok, result
    assert result.probe is ProbeKind.SSH
    assert result.target == "node n1"
    assert result.data["banner"].startswith("SSH-2.0-OpenSSH")
    assert result.latency < TIMEOUT


@pytest.mark.real_sshd
async def test_it_reports_no_banner_when_sshd_is_stopped_though_tcp_still_connects(
    real_sshd,
) -> None:
    real_sshd.stop()
    started = time.monotonic()
    result = await probe_ssh(real_sshd.host, real_sshd.port, timeout=TIMEOUT, target="node n1")
    wall = time.monotonic() - started
    assert result.failure is FailureKind.NO_BANNER, result
    assert "no banner" in result.hint
    _assert_took_about(result.latency, TIMEOUT)
    _assert_took_about(wall, TIMEOUT)
    # The wedge signature: the kernel completes the handshake from the backlog.
    assert await _tcp_connects(real_sshd.host, real_sshd.port)


@pytest.mark.real_sshd
async def test_it_reads_the_banner_again_once_sshd_is_continued(real_sshd) -> None:
    real_sshd.stop()
    wedged = await probe_ssh(real_sshd.host, real_sshd.port, timeout=0.2, target="node n1")
    assert wedged.failure is FailureKind.NO_BANNER
    real_sshd.cont()
    result = await probe_ssh(real_sshd.host, real_sshd.port, timeout=TIMEOUT, target="node n1")
    assert result.ok, (result, real_sshd.log_text())
    assert result.data["banner"].startswith("SSH-2.0-OpenSSH")


# -- connection failures --------------------------------------------------------------------


async def test_it_reports_refused_when_nothing_listens() -> None:
    # Bound but not listening: the port is ours (no other test takes it) and the kernel RSTs.
    with socket.socket() as holder:
        holder.bind((LO, 0))
        port = holder.getsockname()[1]
        result = await probe_ssh(LO, port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.REFUSED, result
    assert result.latency < TIMEOUT


async def test_it_reports_connect_timeout_when_the_handshake_never_completes(
    saturated_listener: int,
) -> None:
    result = await probe_ssh(LO, saturated_listener, timeout=0.3, target="node n1")
    assert result.failure is FailureKind.CONNECT_TIMEOUT, result
    _assert_took_about(result.latency, 0.3)


@pytest.mark.parametrize(
    ("host", "port"), [("bad host", 22), ("a\x00b", 22), ("a" * 300, 22), (LO, 70000)]
)
async def test_it_reports_a_probe_error_for_a_malformed_address(host: str, port: int) -> None:
    result = await probe_ssh(host, port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.PROBE_ERROR, result
    assert result.latency < 0.1


# -- BannerServer modes ---------------------------------------------------------------------


async def test_it_passes_on_a_speaking_banner_server(banner_server: BannerServer) -> None:
    result = await probe_ssh(LO, banner_server.port, timeout=TIMEOUT, target="node n1")
    assert result.ok, result
    assert result.data["banner"] == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"


async def test_it_reports_no_banner_from_a_wedged_banner_server(
    banner_server: BannerServer,
) -> None:
    await banner_server.set_mode(BannerMode.WEDGED)
    result = await probe_ssh(LO, banner_server.port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.NO_BANNER, result
    _assert_took_about(result.latency, TIMEOUT)


async def test_it_reports_refused_from_a_closed_banner_server(banner_server: BannerServer) -> None:
    await banner_server.set_mode(BannerMode.CLOSED)
    result = await probe_ssh(LO, banner_server.port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.REFUSED, result


async def test_it_reports_bad_banner_when_another_service_answers(
    banner_server: BannerServer,
) -> None:
    await banner_server.set_mode(BannerMode.GARBAGE)
    result = await probe_ssh(LO, banner_server.port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.BAD_BANNER, result
    assert "HTTP/1.1 400" in result.detail


async def test_the_banner_server_reopens_on_the_same_port(banner_server: BannerServer) -> None:
    port = banner_server.port
    await banner_server.set_mode(BannerMode.CLOSED)
    assert (await probe_ssh(LO, port, timeout=TIMEOUT, target="n")).failure is FailureKind.REFUSED
    await banner_server.set_mode(BannerMode.SPEAK)
    assert banner_server.port == port
    assert (await probe_ssh(LO, port, timeout=TIMEOUT, target="n")).ok


async def test_a_closed_banner_server_keeps_its_port_from_other_servers(
    banner_server: BannerServer,
) -> None:
    port = banner_server.port
    await banner_server.set_mode(BannerMode.CLOSED)
    # Another server on the host must not take the port and answer in the node's name.
    with pytest.raises(OSError):
        await asyncio.start_server(lambda r, w: None, LO, port)
    assert (await probe_ssh(LO, port, timeout=TIMEOUT, target="n")).failure is FailureKind.REFUSED
    await banner_server.set_mode(BannerMode.SPEAK)
    assert (await probe_ssh(LO, port, timeout=TIMEOUT, target="n")).ok


async def test_the_banner_server_speaks_to_held_connections_when_unwedged(
    banner_server: BannerServer,
) -> None:
    await banner_server.set_mode(BannerMode.WEDGED)
    reader, writer = await asyncio.open_connection(LO, banner_server.port)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await reader.readline()
        await banner_server.set_mode(BannerMode.SPEAK)
        async with asyncio.timeout(TIMEOUT):
            assert (await reader.readline()).startswith(b"SSH-2.0-")
    finally:
        writer.close()


async def test_the_banner_server_stops_promptly_with_clients_connected() -> None:
    server = BannerServer(LO, 0)
    await server.start()
    await server.set_mode(BannerMode.WEDGED)
    _reader, writer = await asyncio.open_connection(LO, server.port)
    try:
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 0.5
    finally:
        writer.close()
    assert not await _tcp_connects(LO, server.port)


@pytest.mark.parametrize(
    ("banner", "failure"),
    [
        (b"SSH-1.99-OpenSSH_3.9p1\r\n", None),  # speaks protocol 2 as well
        (b"SSH-2.0-dropbear_2022.83\n", None),  # bare LF is tolerated
        (b"SSH-1.5-ancient\r\n", FailureKind.BAD_BANNER),
        (b"A" * 10_000, FailureKind.BAD_BANNER),  # no line end: read is bounded, no waiting
    ],
)
async def test_it_judges_the_first_line_only(banner: bytes, failure: FailureKind | None) -> None:
    async with BannerServer(LO, 0, banner=banner) as server:
        result = await probe_ssh(LO, server.port, timeout=TIMEOUT, target="node n1")
    assert result.failure is failure, result
    assert result.latency < TIMEOUT / 2
    assert len(result.detail) <= 256


async def test_it_reports_no_banner_when_the_peer_hangs_up_without_a_word() -> None:
    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, LO, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe_ssh(LO, port, timeout=TIMEOUT, target="node n1")
    finally:
        server.close()
    assert result.failure is FailureKind.NO_BANNER, result
    assert "closed" in result.detail
    assert result.latency < TIMEOUT / 2


async def test_it_hangs_up_as_soon_as_it_gives_up_on_a_silent_peer() -> None:
    """A wedged node must not collect half-open probe connections in its backlog."""
    peer_saw_eof = asyncio.Event()

    async def stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # returns at EOF
        peer_saw_eof.set()
        writer.close()

    server = await asyncio.start_server(stay_silent, LO, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe_ssh(LO, port, timeout=0.1, target="node n1")
        async with asyncio.timeout(0.2):
            await peer_saw_eof.wait()
    finally:
        server.close()
    assert result.failure is FailureKind.NO_BANNER


@pytest.mark.parametrize("mode", [BannerMode.TRICKLE, BannerMode.PARTIAL])
async def test_a_banner_not_complete_by_the_deadline_is_the_wedge_signal_not_a_bad_banner(
    mode: BannerMode,
) -> None:
    # An sshd starved of memory may trickle its version line or stall after "SSH-": that is
    # the wedge signature (no_banner), never the misconfiguration class (bad_banner).
    async with BannerServer(LO, 0, trickle_delay=0.1) as server:
        await server.set_mode(mode)
        result = await probe_ssh(LO, server.port, timeout=TIMEOUT, target="node n1")
    assert result.failure is FailureKind.NO_BANNER, result
    assert "incomplete" in result.detail and "SSH-" in result.detail


async def test_a_slow_banner_that_completes_within_the_deadline_passes() -> None:
    async with BannerServer(LO, 0, banner=b"SSH-2.0-x\r\n", trickle_delay=0.01) as server:
        await server.set_mode(BannerMode.TRICKLE)
        result = await probe_ssh(LO, server.port, timeout=TIMEOUT, target="node n1")
    assert result.ok, result


async def test_a_partial_banner_then_a_hang_up_is_no_banner() -> None:
    async def half(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-Open")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, LO, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await probe_ssh(LO, port, timeout=TIMEOUT, target="node n1")
    finally:
        server.close()
    assert result.failure is FailureKind.NO_BANNER and "before the peer closed" in result.detail
