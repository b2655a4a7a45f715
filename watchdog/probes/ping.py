"""ICMP echo probe, without an external ``ping`` binary and without capabilities if possible.

Privilege: Linux lets an unprivileged process send echo requests through an ICMP *datagram*
socket (``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)``) when one of its groups lies inside the
sysctl ``net.ipv4.ping_group_range`` (it governs ICMPv6 ping sockets too). Many distributions
ship ``1 0`` (nobody). The systemd unit runs the daemon with ``DynamicUser`` and no capabilities,
so the documented route is a sysctl drop-in on the watchdog host::

    # /etc/sysctl.d/60-cluster-watchdog-ping.conf
    net.ipv4.ping_group_range = 0 2147483647

(then ``sysctl --system``). The setting is per network namespace, so the unit must not use
``PrivateNetwork=``. If the datagram socket is not permitted, the probe falls back to a raw
socket, which needs root or ``CAP_NET_RAW`` (``AmbientCapabilities=CAP_NET_RAW`` — the unit
deliberately does not grant it). When neither works the probe reports PROBE_ERROR with that
hint instead of raising. ``data["socket"]`` says which kind was used.

Owns: resolving the host, building and matching the echo, the deadline (one ``asyncio.timeout``
around everything). Never retries.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from enum import StrEnum

from watchdog.core.hints import hint_for
from watchdog.core.model import FailureKind, ProbeKind, ProbeResult
from watchdog.probes._dial import resolve
from watchdog.probes._faults import UNREACHABLE_ERRNOS

NOT_PERMITTED_HINT = (
    "ICMP not permitted for this process: add the sysctl drop-in "
    "'net.ipv4.ping_group_range = 0 2147483647' (/etc/sysctl.d/, then sysctl --system) or grant "
    "CAP_NET_RAW; or disable the ping probe"
)
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
# (echo request, echo reply, protocol) per address family
_ECHO: dict[int, tuple[int, int, int]] = {
    socket.AF_INET: (8, 0, socket.IPPROTO_ICMP),
    socket.AF_INET6: (128, 129, socket.IPPROTO_ICMPV6),
}
# socket() errnos that mean "ping sockets are not allowed / not built in here": try raw next.
_DGRAM_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT})


class IcmpSocket(StrEnum):
    """Which kind of ICMP socket the probe could open (reported in ``data["socket"]``)."""

    DGRAM = "dgram"  # unprivileged ping socket (ping_group_range)
    RAW = "raw"  # root / CAP_NET_RAW


class _NotPermittedError(Exception):
    """Neither an ICMP datagram socket nor a raw socket may be opened."""


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (the kernel fills it for ping and ICMPv6 sockets, not raw v4)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _open(family: int) -> tuple[socket.socket, IcmpSocket]:
    proto = _ECHO[family][2]
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), IcmpSocket.DGRAM
    except OSError as exc:
        if exc.errno not in _DGRAM_DENIED:
            raise
    try:
        return socket.socket(family, socket.SOCK_RAW, proto), IcmpSocket.RAW
    except PermissionError as exc:
        raise _NotPermittedError from exc


def _echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    request = _ECHO[family][0]
    packet = _HEADER.pack(request, 0, 0, ident, seq) + payload
    if family == socket.AF_INET:  # ICMPv6 checksums need the pseudo-header: the kernel does it
        packet = _HEADER.pack(request, 0, _checksum(packet), ident, seq) + payload
    return packet


def _is_our_reply(
    packet: bytes, family: int, mode: IcmpSocket, ident: int, seq: int, payload: bytes
) -> bool:
    if (
        family == socket.AF_INET and mode is IcmpSocket.RAW
    ):  # raw IPv4 sockets include the IP header
        packet = packet[(packet[0] & 0x0F) * 4 :] if packet else packet
    if len(packet) < _HEADER.size:
        return False
    kind, _code, _sum, got_ident, got_seq = _HEADER.unpack_from(packet)
    # A datagram socket gets only its own replies, with the identifier rewritten by the kernel;
    # a raw socket sees every ICMP message on the host (on loopback even our own request).
    return (
        kind == _ECHO[family][1]
        and got_seq == seq
        and (mode is IcmpSocket.DGRAM or got_ident == ident)
        and packet[_HEADER.size :] == payload
    )


async def _ping_once(
    family: int, sockaddr: tuple[object, ...], sock: socket.socket, mode: IcmpSocket
) -> None:
    """Send one echo and wait for its reply (the caller owns the deadline)."""
    loop = asyncio.get_running_loop()
    ident, seq = struct.unpack("!HH", os.urandom(4))
    payload = b"cluster-watchdog" + os.urandom(16)
    sock.setblocking(False)
    # Connecting makes the kernel filter by source and report hard ICMP errors (host
    # unreachable) on the socket, so we fail fast instead of waiting out the deadline.
    sock.connect(sockaddr)
    sock.send(_echo_request(family, ident, seq, payload))
    while not _is_our_reply(await loop.sock_recv(sock, 2048), family, mode, ident, seq, payload):
        pass


async def probe_ping(
    host: str,
    *,
    timeout: float,  # noqa: ASYNC109 -- the scheduler owns every probe's deadline
    target: str,
    probe: ProbeKind = ProbeKind.PING,
) -> ProbeResult:
    """One ICMP echo to ``host``; pass if its reply arrives within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sock: socket.socket | None = None
    mode: IcmpSocket | None = None

    def result(kind: FailureKind | None, detail: str, hint: str | None = None) -> ProbeResult:
        return ProbeResult(
            probe,
            target,
            kind,
            loop.time() - start,
            detail=detail,
            hint=hint_for(kind) if hint is None else hint,
            data={"socket": mode.value} if mode else {},
        )

    try:
        async with asyncio.timeout(timeout):
            family, _type, _proto, sockaddr = (await resolve(host, 0))[0]
            sock, mode = _open(family)
            await _ping_once(family, sockaddr, sock, mode)
    except _NotPermittedError:
        return result(FailureKind.PROBE_ERROR, "ICMP socket not permitted", NOT_PERMITTED_HINT)
    except TimeoutError:
        return result(FailureKind.NO_REPLY, f"no echo reply within {timeout:g}s")
    except socket.gaierror as exc:
        return result(FailureKind.UNREACHABLE, f"name does not resolve: {exc.strerror}")
    except OSError as exc:
        if exc.errno in UNREACHABLE_ERRNOS:
            return result(FailureKind.UNREACHABLE, exc.strerror or "unreachable")
        return result(FailureKind.PROBE_ERROR, f"local socket error: {exc.strerror or exc}")
    except (ValueError, UnicodeError, OverflowError) as exc:
        return result(FailureKind.PROBE_ERROR, f"cannot ping this address: {exc}")
    finally:
        if sock is not None:
            sock.close()
    return result(None, f"echo reply ({mode} socket)")
