"""The probes' own HTTP/1.1 exchange and TCP connect, edge by edge.

The answer parser (:class:`~watchdog.probes.wire_answer.Answer`) is fed bytes in any pieces, as
the network delivers them; the exchange runs against real loopback servers, plain and TLS
(a certificate from a throw-away CA); the socket probes leave nothing behind when cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme
from hypothesis import example, given, settings
from hypothesis import strategies as st

from watchdog.core.model import FailureKind
from watchdog.edge.bounded import BodyRefused
from watchdog.probes._dial import Dial, addresses
from watchdog.probes._faults import Fault, Reply
from watchdog.probes._poller import poller
from watchdog.probes.ssh import probe_ssh
from watchdog.probes.wire import WireClient
from watchdog.probes.wire_answer import HEAD_BYTES, Answer, Protocol

LO = "127.0.0.1"
LIMIT = 1024
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def parse(pieces: list[bytes], *, method: str = "GET", limit: int = LIMIT) -> tuple[int, bytes]:
    """Feed ``pieces`` one by one, then the end of the stream; the answer once complete."""
    answer = Answer(method, limit, lambda: None)
    for piece in pieces:
        if answer.feed(piece):
            break
    else:
        assert answer.feed_eof(), "the stream ended and the answer is still not complete"
    assert answer.result is not None
    return answer.result


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


ANSWERS = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", (200, b"hello")),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        (200, b"hello"),
    ),
    (b"HTTP/1.0 500 Oops\r\n\r\nclosed-delimited", (500, b"closed-delimited")),
    (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        (204, b""),
    ),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", (200, b"ok")),  # bare LF line ends
]


@pytest.mark.parametrize(("wire", "expected"), ANSWERS)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
@settings(max_examples=60, deadline=None)
def test_an_answer_split_anywhere_parses_as_the_whole(
    wire: bytes, expected: tuple[int, bytes], cuts: list[int]
) -> None:
    assert parse(split(wire, cuts)) == expected
    assert parse([wire[i : i + 1] for i in range(len(wire))]) == expected  # byte by byte


def verdict(pieces: list[bytes]) -> tuple[int, bytes] | str:
    """The answer, or the error it ends in (type and message)."""
    try:
        return parse(pieces)
    except (Protocol, BodyRefused) as exc:
        return f"{type(exc).__name__}: {exc}"


_HEAD_PIECES = [
    b"Content-Length",
    b"content-LENGTH",
    b"Transfer-Encoding",
    b"Content-Encoding",
    b"X-Odd",
    b":",
    b": ",
    b" ",
    b"\t",
    b"\x0b",
    b"\r",
    b"\n",
    b"\r\n",
    b"2",
    b"5",
    b"chunked",
    b"gzip",
    b"identity",
    b",",
    b"\xa0",
    b"\xc0",
]
_STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 204 No Content",
    b"HTTP/1.1 100 Continue",
    b"HTTP/2 200",
]


@given(
    status=st.sampled_from(_STATUS_LINES),
    pieces=st.lists(st.sampled_from(_HEAD_PIECES), max_size=24),
)
@settings(max_examples=400, deadline=None)
@example(status=_STATUS_LINES[0], pieces=[b"content-LENGTH", b": ", b"5"])
@example(status=_STATUS_LINES[0], pieces=[b"Transfer-Encoding", b": ", b"chunked"])
@example(status=_STATUS_LINES[0], pieces=[b"X-Odd", b"\t", b":", b"\r\n", b"Content-Length", b":5"])
def test_a_head_that_arrives_whole_gets_the_verdict_it_gets_line_by_line(
    status: bytes, pieces: list[bytes]
) -> None:
    # Whole, the head is read in one go; byte by byte, one line at a time: same verdict.
    wire = status + b"\r\n" + b"".join(pieces) + b"\r\n\r\nhello\r\n0\r\n\r\n"
    assert verdict([wire]) == verdict([wire[i : i + 1] for i in range(len(wire))])


def test_a_head_answer_has_no_body_whatever_it_declares() -> None:
    assert parse([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"], method="HEAD") == (200, b"")


@pytest.mark.parametrize(
    ("wire", "says"),
    [
        (b"", "without an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "middle of its headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "mid-answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "mid-answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 9, "interim"),
    ],
)
def test_an_invalid_or_cut_answer_is_a_protocol_error(wire: bytes, says: str) -> None:
    with pytest.raises(Protocol, match=says):
        parse([wire])


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 2000\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n7d0\r\n",
        b"\r\n",  # delimited by the end of the connection
        b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n",
    ],
    ids=["declared", "chunked", "close-delimited", "encoded"],
)
def test_a_body_over_the_cap_is_refused_before_the_stream_ends(head: bytes) -> None:
    answer = Answer("GET", LIMIT, lambda: None)
    with pytest.raises(BodyRefused):
        answer.feed(b"HTTP/1.1 200 OK\r\n" + head)
        for _ in range(10):
            answer.feed(b"x" * 512)  # never the end of the stream: refused on what came so far
    assert len(answer._buf) <= LIMIT + 2048  # the bound is the point


def test_a_line_without_an_end_is_refused_once_over_the_head_bound() -> None:
    answer = Answer("GET", LIMIT, lambda: None)
    answer.feed(b"HTTP/1.1 200 OK\r\nX: ")
    with pytest.raises(Protocol, match="longer than"):
        for _ in range(HEAD_BYTES // 4096 + 2):
            answer.feed(b"a" * 4096)


def test_headers_are_announced_once_the_final_answer_has_them() -> None:
    seen: list[int] = []
    answer = Answer("GET", LIMIT, lambda: seen.append(1))
    answer.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n")
    assert not seen
    answer.feed(b"\r\nab")
    assert seen == [1]
    assert answer.feed(b"c")
    assert answer.result == (200, b"abc")


# ----------------------------------------------------------------- the exchange over sockets
@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script, tls: ssl.SSLContext | None = None) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(reader, writer)
            except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(handle, LO, 0, ssl=tls)
        servers.append(server)
        scheme = "https" if tls else "http"
        return f"{scheme}://{LO}:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def request(client: WireClient, url: str, **kwargs: object) -> tuple[int, bytes]:
    return await client.request("GET", url, headers={}, limit=LIMIT, **kwargs)  # type: ignore[arg-type]


async def test_an_answer_in_many_small_packets_is_read_whole(
    serve: Callable[..., Awaitable[str]],
) -> None:
    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)

    url = await serve(dribble)
    assert await request(WireClient(), url + "/x") == (200, b"pong")


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_a_peer_gone_mid_body_is_a_bad_response(
    serve: Callable[..., Awaitable[str]], how: str
) -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        await asyncio.sleep(0.05)
        if how == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        writer.transport.abort()

    url = await serve(half)
    with pytest.raises(Fault) as caught:
        await request(WireClient(), url + "/x")
    assert caught.value.kind is FailureKind.BAD_RESPONSE
    said = "closed the connection mid-answer" if how == "close" else "dropped mid-answer"
    assert said in caught.value.detail and "GET /x" in caught.value.detail


async def test_a_request_larger_than_the_socket_buffer_is_sent_whole(
    serve: Callable[..., Awaitable[str]],
) -> None:
    body = {"blob": "x" * (8 * 1024 * 1024)}  # far over any loopback socket buffer

    async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await read_head(reader)).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        await asyncio.sleep(0.05)  # let the client's buffer fill first
        got = len(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(got)), got))
        await writer.drain()

    url = await serve(echo_length)
    client = WireClient()
    status, said = await client.request("POST", url + "/x", headers={}, json_body=body, limit=LIMIT)
    assert (status, int(said)) == (200, len('{"blob":""}') + 8 * 1024 * 1024)


# ----------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LO).configure_cert(context)
    return context


def client_context(ca: trustme.CA | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(context)
    return context


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    await writer.drain()


async def test_https_is_spoken_over_tls_with_a_trusted_certificate(
    serve: Callable[..., Awaitable[str]], ca: trustme.CA
) -> None:
    url = await serve(answer_ok, server_context(ca))
    assert await request(WireClient(client_context(ca)), url + "/health") == (200, b"ok")


@pytest.mark.parametrize("server", ["untrusted certificate", "plain HTTP on the port"])
async def test_a_failed_tls_handshake_is_a_bad_response_with_the_tls_hint(
    serve: Callable[..., Awaitable[str]], ca: trustme.CA, server: str
) -> None:
    async def plain_400(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # a TLS ClientHello is not HTTP: what a plain server answers
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    if server == "plain HTTP on the port":
        url = (await serve(plain_400)).replace("http://", "https://")
    else:
        url = await serve(answer_ok, server_context(ca))
    connected: list[bool] = []
    with pytest.raises(Fault) as caught:
        await request(
            WireClient(client_context(None)),  # the throw-away CA is not trusted here
            url + "/health",
            on_connected=lambda: connected.append(True),
        )
    assert caught.value.kind is FailureKind.BAD_RESPONSE
    assert "TLS handshake failed (GET /health)" in caught.value.detail
    assert "http://" in caught.value.hint
    assert connected == [True]  # TCP was up: a deadline now would not be "connect timed out"


# ----------------------------------------------------------------- nothing left behind
def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_cancelled_probe_leaves_no_socket_and_no_registration() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client hangs up
        writer.transport.abort()

    server = await asyncio.start_server(silent, LO, 0)
    port = server.sockets[0].getsockname()[1]
    watched = poller()._callbacks  # registrations are the point
    before = open_fds()
    probes = [asyncio.create_task(probe_ssh(LO, port, timeout=5, target="n")) for _ in range(20)]
    url = f"http://{LO}:{port}/"
    exchanges = [asyncio.create_task(request(WireClient(), url)) for _ in range(20)]
    await asyncio.sleep(0.1)
    assert len(watched) >= 40
    for task in probes + exchanges:
        task.cancel()
    await asyncio.gather(*probes, *exchanges, return_exceptions=True)
    assert not watched
    server.close()
    await asyncio.sleep(0.1)  # the server's side sees the hang-ups and closes too
    assert open_fds() <= before


async def test_a_banner_split_over_packets_and_a_refusal_then_a_later_address(
    serve: Callable[..., Awaitable[str]],
) -> None:
    async def banner(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for piece in (b"SSH-2.0-Op", b"enSSH_9", b".2\r\nnext line"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        await asyncio.sleep(1)

    port = int((await serve(banner)).rsplit(":", 1)[1])
    result = await probe_ssh(LO, port, timeout=1.0, target="n")
    assert result.ok and result.data["banner"] == "SSH-2.0-OpenSSH_9.2", result

    with socket.socket() as holder:  # bound, not listening: refused
        holder.bind((LO, 0))
        closed = holder.getsockname()
        loop = asyncio.get_running_loop()
        attempt = Dial(
            [(socket.AF_INET, closed), *await addresses(LO, port, None)], loop.time() + 1
        )
        await attempt.done
    assert attempt.connected and attempt.error is None  # the second address answered

    with socket.socket() as holder:
        holder.bind((LO, 0))
        closed = holder.getsockname()
        attempt = Dial([(socket.AF_INET, closed)] * 2, loop.time() + 1)
        await attempt.done
    assert isinstance(attempt.error, ConnectionRefusedError) and not attempt.connected


# ----------------------------------------------------------------- the body as JSON
_JSON_TEXTS = st.one_of(
    st.just('{"data":[{"id":"m"}],"object":"list"}'), st.text(max_size=12).map(json.dumps)
)


@given(
    st.one_of(
        st.tuples(_JSON_TEXTS, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"])).map(
            lambda pair: pair[0].encode(pair[1])
        ),
        st.binary(max_size=12),
    )
)
@settings(max_examples=300, deadline=None)
def test_a_body_reads_as_json_exactly_as_json_loads_reads_its_bytes(body: bytes) -> None:
    try:
        expected: object = json.loads(body)
    except ValueError:
        expected = Fault
    try:
        got: object = Reply(200, body).json()
    except Fault as fault:
        assert fault.kind is FailureKind.BAD_RESPONSE
        got = Fault
    assert got == expected or (got != got and expected != expected)  # NaN is not NaN
