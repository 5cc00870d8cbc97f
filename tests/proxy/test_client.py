"""Tests of the upstream client against hand-written HTTP/1.1 servers on 127.0.0.1.

Every server below is a real asyncio TCP (or TLS) server that reads and writes exact bytes, so each
test controls the framing the client sees. Every test runs on both the default asyncio loop and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from apishield.proxy.client import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
)

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to completion on a fresh loop of the parametrized kind, within 10 seconds."""
    factory = LOOPS[request.param]

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(10):
                return await coro

        with asyncio.Runner(loop_factory=factory) as loop_runner:
            return loop_runner.run(bounded())

    return runner


# -- a hand-written HTTP/1.1 server --------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n.lower() == name]
        assert len(values) <= 1, f"{name!r} sent {len(values)} times"
        return values[0] if values else None


class Peer:
    """The server's side of one accepted connection."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.index = server.connections  # 1 for the first connection accepted

    async def read_request(self) -> Request | None:
        """The next request, or None when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        lines = head[:-4].split(b"\r\n")
        method, target, version = lines[0].split(b" ")
        assert version == b"HTTP/1.1"
        fields = [line.split(b":", 1) for line in lines[1:]]
        request = Request(method.decode(), target, [(n, v.strip()) for n, v in fields])
        if request.header(b"transfer-encoding") is not None:
            assert request.header(b"transfer-encoding") == b"chunked"
            assert request.header(b"content-length") is None
            body = bytearray()
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            assert await self.reader.readexactly(2) == b"\r\n"
            request.body = bytes(body)
        elif (length := request.header(b"content-length")) is not None:
            request.body = await self.reader.readexactly(int(length))
        self.server.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def idle(self) -> None:
        """Keep the connection open, reading and discarding, until the client closes it."""
        while await self.reader.read(65536):
            pass


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    """An HTTP/1.1 server on 127.0.0.1 whose ``handler`` speaks for each accepted connection."""

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.client_closes = 0
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port: int = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        if self.errors and exc_info[0] is None:
            raise self.errors[0]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(Peer(self, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client dropped the connection: several tests make it do so
        except asyncio.CancelledError:
            pass  # torn down by __aexit__: end normally, the stream machinery reads the outcome
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            self._tasks.discard(task)


def response(
    body: bytes = b"ok", status: int = 200, headers: Iterable[tuple[bytes, bytes]] = (), reason: bytes = b"OK"
) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, reason), b"content-length: %d" % len(body)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def keep_alive(reply: Callable[[Request], bytes]) -> Handler:
    """Answer every request of a connection with ``reply(request)`` until the client closes it."""

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await peer.send(reply(request))
        peer.server.client_closes += 1

    return handler


def echo(request: Request) -> bytes:
    return response(b"%s %s %s" % (request.method.encode(), request.target, request.body))


@contextlib.asynccontextmanager
async def pool_for(url: str, **options: Any) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool(url, **options)
    try:
        yield pool
    finally:
        await pool.aclose()


async def get(pool: UpstreamPool, target: bytes = b"/", **kw: Any) -> UpstreamResponse:
    return await pool.request("GET", target, [(b"accept", b"*/*")], **kw)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- keep-alive and framing ---------------------------------------------------------------------------


def test_keep_alive_connection_is_reused(run: Runner[None]) -> None:
    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url) as pool:
            for i in range(3):
                got = await get(pool, b"/items/%d?q=1" % i)
                assert (got.status, got.body) == (200, b"GET /items/%d?q=1 " % i)
            assert server.connections == 1
            first = server.requests[0]
            assert first.header(b"host") == pool.authority.encode() == b"127.0.0.1:%d" % server.port
            assert first.header(b"content-length") is None
            assert first.header(b"transfer-encoding") is None
            assert first.header(b"accept") == b"*/*"

    run(main())


def test_content_length_and_chunked_responses(run: Runner[None]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nX-Custom-Header: Some Value\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: smuggled\r\n\r\n"
    )

    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == b"/chunked":
                # Split mid chunk and mid header to exercise incremental parsing.
                for piece in (chunked[:20], chunked[20:70], chunked[70:]):
                    await peer.send(piece)
                    await asyncio.sleep(0.01)
            else:
                await peer.send(response(b"x" * 100_000, headers=[(b"Content-Type", b"text/plain")]))

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            got = await get(pool, b"/chunked")
            assert (got.status, got.body) == (200, b"hello world")
            assert got.headers == [(b"x-custom-header", b"Some Value"), (b"transfer-encoding", b"chunked")]
            got = await get(pool, b"/length")
            assert got.body == b"x" * 100_000
            assert (b"content-type", b"text/plain") in got.headers
            got = await get(pool, b"/chunked")
            assert got.body == b"hello world"
            assert server.connections == 1

    run(main())


def test_request_framing_headers(run: Runner[None]) -> None:
    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url) as pool:
            caller_owned = [
                (b"Content-Length", b"999"),
                (b"Transfer-Encoding", b"gzip"),
                (b"Connection", b"close"),
                (b"Keep-Alive", b"timeout=5"),
                (b"X-Trace", b"abc"),
            ]
            got = await pool.request("POST", b"/post", caller_owned, b"hello")
            assert got.body == b"POST /post hello"
            await pool.request("POST", b"/empty-post", [], b"")
            await pool.request("PATCH", b"/empty-patch", [], b"")
            await pool.request("GET", b"/get", [], b"")
            await pool.request("DELETE", b"/delete", [], b"")
            await pool.request("GET", b"/get-body", [], b"q")
            await pool.request("GET", b"/own-host", [(b"Host", b"api.example")])
            big = await pool.request("POST", b"/big", [], b"b" * 100_000)
            assert big.body == b"POST /big " + b"b" * 100_000
            sent = {request.target: request for request in server.requests}
            post = sent[b"/post"]
            assert post.header(b"content-length") == b"5"
            assert post.header(b"transfer-encoding") is None
            assert post.header(b"connection") is None
            assert post.header(b"keep-alive") is None
            assert (b"X-Trace", b"abc") in post.headers  # name case kept
            assert sent[b"/empty-post"].header(b"content-length") == b"0"
            assert sent[b"/empty-patch"].header(b"content-length") == b"0"
            assert sent[b"/get"].header(b"content-length") is None
            assert sent[b"/delete"].header(b"content-length") is None
            assert sent[b"/get-body"].header(b"content-length") == b"1"
            assert sent[b"/own-host"].header(b"host") == b"api.example"
            assert server.connections == 1

    run(main())


def test_streamed_request_body_is_chunked(run: Runner[None]) -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in (b"ab", b"", b"cdef", b"g" * 70_000):
            await asyncio.sleep(0)
            yield part

    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url) as pool:
            got = await pool.request("PUT", b"/upload", [(b"content-length", b"3")], body())
            assert got.body == b"PUT /upload abcdef" + b"g" * 70_000
            upload = server.requests[0]
            assert upload.header(b"transfer-encoding") == b"chunked"
            assert upload.header(b"content-length") is None
            await get(pool)
            assert server.connections == 1

    run(main())


def test_head_204_304_have_no_content(run: Runner[None]) -> None:
    def reply(request: Request) -> bytes:
        if request.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\ncontent-type: text/plain\r\n\r\n"
        if request.target == b"/204":
            return b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n"
        if request.target == b"/304":
            return b"HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n"
        return response(b"after")

    async def main() -> None:
        async with Server(keep_alive(reply)) as server, pool_for(server.url) as pool:
            for _ in range(2):
                head = await pool.request("HEAD", b"/file", [])
                assert (head.status, head.body) == (200, b"")
                assert (b"content-length", b"1234") in head.headers
                no_content = await get(pool, b"/204")
                assert (no_content.status, no_content.body) == (204, b"")
                not_modified = await get(pool, b"/304")
                assert (not_modified.status, not_modified.body) == (304, b"")
                assert (await get(pool, b"/after")).body == b"after"
            assert server.connections == 1

    run(main())


def test_interim_responses_are_skipped(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await asyncio.sleep(0.01)
            await peer.send(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n")
            await peer.send(response(b"final", headers=[(b"x-final", b"yes")]))

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            for _ in range(2):
                got = await pool.request("POST", b"/", [(b"expect", b"100-continue")], b"data")
                assert (got.status, got.body) == (200, b"final")
                assert [name for name, _ in got.headers] == [b"content-length", b"x-final"]
            assert server.connections == 1

    run(main())


def test_response_read_until_close(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart1-")
        await asyncio.sleep(0.02)
        await peer.send(b"part2")
        peer.writer.close()

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            assert (await get(pool)).body == b"part1-part2"
            assert (await get(pool)).body == b"part1-part2"
            assert server.connections == 2

    run(main())


@pytest.mark.parametrize(
    "final",
    [
        response(headers=[(b"Connection", b"close")]),
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
def test_non_persistent_response_is_not_reused(run: Runner[None], final: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(final)
        await peer.idle()  # the client, not the server, must decide to close
        peer.server.client_closes += 1

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            assert (await get(pool)).body == b"ok"
            assert (await get(pool)).body == b"ok"
            assert server.connections == 2
            await asyncio.sleep(0.05)
            assert server.client_closes >= 1

    run(main())


def test_idle_connection_closed_by_upstream_is_discarded(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())  # keep-alive framing, then the server closes anyway

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            await get(pool)
            await asyncio.sleep(0.05)  # the client sees the close while the connection is idle
            got = await pool.request("POST", b"/", [], b"x")  # needs no retry: never sent on a dead one
            assert got.status == 200
            assert server.connections == 2
            assert len(server.requests) == 2

    run(main())


def test_idle_timeout_closes_connection(run: Runner[None]) -> None:
    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url, idle_timeout=0.1) as pool:
            await get(pool)
            await asyncio.sleep(0.3)
            assert server.client_closes == 1
            await get(pool)
            assert server.connections == 2

    run(main())


def test_unsolicited_bytes_discard_the_connection(run: Runner[None]) -> None:
    extra = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"

    async def main() -> None:
        reply = keep_alive(lambda request: response() + extra)
        async with Server(reply) as server, pool_for(server.url) as pool:
            assert (await get(pool)).body == b"ok"
            await asyncio.sleep(0.02)
            assert (await get(pool)).body == b"ok"
            assert server.connections == 2

    run(main())


# -- stale keep-alive retry ---------------------------------------------------------------------------


def stale_second_request(close: str) -> Handler:
    """Connection 1 answers its first request, then closes on reading the second without answering."""

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if peer.index == 1 and len(peer.server.requests) == 2:
                if close == "reset":
                    peer.reset()
                return
            await peer.send(response())

    return handler


async def streamed() -> AsyncIterator[bytes]:
    yield b"payload"


@pytest.mark.parametrize("close", ["fin", "reset"])
def test_stale_connection_is_retried_for_idempotent_request(run: Runner[None], close: str) -> None:
    async def main() -> None:
        handler = stale_second_request(close)
        async with Server(handler) as server, pool_for(server.url, max_connections=1) as pool:
            await get(pool, b"/first")
            got = await pool.request("PUT", b"/second", [], b"body")
            assert (got.status, got.body) == (200, b"ok")
            assert server.connections == 2
            assert [r.target for r in server.requests] == [b"/first", b"/second", b"/second"]

    run(main())


@pytest.mark.parametrize("close", ["fin", "reset"])
@pytest.mark.parametrize("method", ["POST", "PATCH", "GET-streamed"])
def test_stale_connection_is_not_retried_otherwise(run: Runner[None], close: str, method: str) -> None:
    async def main() -> None:
        async with Server(stale_second_request(close)) as server, pool_for(server.url) as pool:
            await get(pool, b"/first")
            body: bytes | AsyncIterator[bytes] = streamed() if method == "GET-streamed" else b"body"
            with pytest.raises(UpstreamConnectError) as caught:
                await pool.request(method.split("-")[0], b"/second", [], body)
            assert caught.value.status_hint == 502
            assert server.connections == 1
            assert [r.target for r in server.requests] == [b"/first", b"/second"]

    run(main())


def test_no_retry_after_a_response_byte(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response())
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\n")

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            await get(pool)
            with pytest.raises(UpstreamProtocolError):
                await get(pool)
            assert server.connections == 1
            assert len(server.requests) == 2

    run(main())


# -- failures -----------------------------------------------------------------------------------------


def test_connection_refused(run: Runner[None]) -> None:
    async def main() -> None:
        async with pool_for(f"http://127.0.0.1:{free_port()}") as pool:
            with pytest.raises(UpstreamConnectError) as caught:
                await get(pool)
            assert caught.value.status_hint == 502
            with pytest.raises(UpstreamConnectError):  # the failed attempt gave its slot back
                await get(pool)

    run(main())


@pytest.mark.parametrize("behaviour", ["silent", "dripping"])
def test_read_timeout_bounds_the_whole_response(run: Runner[None], behaviour: str) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if behaviour == "silent":
            await asyncio.sleep(5)
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n")
        for _ in range(50):  # steady progress does not extend the deadline
            await asyncio.sleep(0.05)
            await peer.send(b"x")

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url, read_timeout=0.3) as pool:
            with pytest.raises(UpstreamTimeout) as caught:
                await get(pool)
            # the drip would complete the response after 2.5 s: the timeout proves the deadline held
            assert caught.value.status_hint == 504

    run(main())


def test_connect_timeout_covers_tls_handshake(run: Runner[None]) -> None:
    async def silent(peer: Peer) -> None:
        await peer.idle()  # accepts TCP but never speaks TLS

    async def main() -> None:
        async with Server(silent) as server:
            url = f"https://127.0.0.1:{server.port}"
            async with pool_for(url, connect_timeout=0.2) as pool:
                with pytest.raises(UpstreamTimeout):
                    await get(pool)

    run(main())


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n",  # refused from the header alone
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\n123456\r\n6\r\n123456\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 11,
        b"HTTP/1.1 200 OK\r\nx-big: " + b"v" * 300 + b"\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-endless: " + b"v" * 300,
        b"HTTP/1.1 100 Continue\r\nx: " + b"v" * 120 + b"\r\n\r\nHTTP/1.1 200 OK\r\nx: " + b"v" * 120,
    ],
    ids=["content-length", "chunked", "until-close", "header", "unfinished-header", "interim-headers"],
)
def test_response_too_large(run: Runner[None], reply: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        await asyncio.sleep(5)

    async def main() -> None:
        options = {"max_response_bytes": 10, "max_response_header_bytes": 200}
        async with Server(handler) as server, pool_for(server.url, **options) as pool:
            with pytest.raises(UpstreamResponseTooLarge) as caught:
                await get(pool)
            assert caught.value.status_hint == 502

    run(main())


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTX/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\ncontent-length: 0\n\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
    ],
    ids=[
        "status-line",
        "bare-lf",
        "two-lengths",
        "length-and-chunked",
        "chunk-size",
        "truncated-length",
        "truncated-chunked",
        "unrequested-101",
        "header-line",
    ],
)
def test_malformed_response(run: Runner[None], reply: bytes) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        peer.writer.close()

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            with pytest.raises(UpstreamProtocolError) as caught:
                await get(pool)
            assert caught.value.status_hint == 502

    run(main())


def test_closed_before_any_byte_on_new_connection(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url) as pool:
            with pytest.raises(UpstreamConnectError):
                await get(pool)
            assert server.connections == 1  # a new connection is not retried

    run(main())


def test_exception_hierarchy() -> None:
    for cls, hint in [
        (UpstreamConnectError, 502),
        (UpstreamTimeout, 504),
        (UpstreamProtocolError, 502),
        (UpstreamResponseTooLarge, 502),
    ]:
        assert issubclass(cls, UpstreamError)
        assert cls("x").status_hint == hint


# -- pool limits --------------------------------------------------------------------------------------


def test_pool_limit_applies_back_pressure(run: Runner[None]) -> None:
    async def slow(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            await asyncio.sleep(0.05)
            await peer.send(echo(request))

    async def main() -> None:
        async with Server(slow) as server, pool_for(server.url, max_connections=2) as pool:
            results = await asyncio.gather(*(get(pool, b"/%d" % i) for i in range(5)))
            assert [r.body for r in results] == [b"GET /%d " % i for i in range(5)]
            assert server.max_active <= 2
            assert server.connections == 2

    run(main())


def test_pool_timeout(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == b"/slow":
                await asyncio.sleep(0.5)
            await peer.send(response())

    async def main() -> None:
        options = {"max_connections": 1, "pool_timeout": 0.1}
        async with Server(handler) as server, pool_for(server.url, **options) as pool:
            slow = asyncio.ensure_future(get(pool, b"/slow"))
            await asyncio.sleep(0.05)
            with pytest.raises(UpstreamTimeout) as caught:
                await get(pool, b"/fast")
            assert caught.value.status_hint == 504
            assert (await slow).status == 200
            assert (await get(pool, b"/fast")).status == 200  # the slot came back
            assert server.connections == 1

    run(main())


def test_cancelled_request_frees_its_slot(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == b"/hang":
                await peer.idle()
                return
            await peer.send(response())

    async def main() -> None:
        async with Server(handler) as server, pool_for(server.url, max_connections=1) as pool:
            hanging = asyncio.ensure_future(get(pool, b"/hang"))
            await asyncio.sleep(0.05)
            hanging.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hanging
            assert (await get(pool)).status == 200
            assert server.connections == 2

    run(main())


def test_streamed_body_back_pressure(run: Runner[None]) -> None:
    part = b"p" * 256 * 1024

    async def body(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield part

    def count(request: Request) -> bytes:
        return response(b"%d" % len(request.body))

    async def main() -> None:
        async with Server(keep_alive(count)) as server, pool_for(server.url, read_timeout=5) as pool:
            got = await pool.request("PUT", b"/ok", [], body(32))  # 8 MiB through the drain path
            assert got.body == b"%d" % (32 * len(part))

        async def stuck(peer: Peer) -> None:
            await peer.reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(5)  # never reads the body

        async with Server(stuck) as server, pool_for(server.url, read_timeout=0.3) as pool:
            with pytest.raises(UpstreamTimeout, match="request body"):
                await pool.request("PUT", b"/stuck", [], body(1024))

    run(main())


def test_early_response_stops_streamed_body(run: Runner[None]) -> None:
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(200):
            sent.append(i)
            await asyncio.sleep(0.01)
            yield b"chunk"

    async def refuse(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await peer.send(response(b"too big", 413, [(b"connection", b"close")], b"Content Too Large"))
        await peer.idle()

    async def main() -> None:
        async with Server(refuse) as server, pool_for(server.url) as pool:
            got = await pool.request("POST", b"/upload", [], endless())
            assert (got.status, got.body) == (413, b"too big")
            assert len(sent) < 50
            assert (await get(pool)).status == 413
            assert server.connections == 2

    run(main())


def test_early_response_while_blocked_on_back_pressure(run: Runner[None]) -> None:
    part = b"p" * 256 * 1024

    async def huge() -> AsyncIterator[bytes]:
        for _ in range(400):  # 100 MiB: far more than the socket buffers hold
            yield part

    async def refuse_later(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.2)  # the client is stalled on a full send buffer by now
        await peer.send(response(b"no", 413, [(b"connection", b"close")]))
        await asyncio.sleep(5)  # and the body is never read

    async def main() -> None:
        async with Server(refuse_later) as server:
            started = time.monotonic()
            async with pool_for(server.url, read_timeout=5) as pool:
                got = await pool.request("PUT", b"/upload", [], huge())
                assert (got.status, got.body) == (413, b"no")
            # Neither the request nor closing the connection waited on the upstream.
            assert time.monotonic() - started < 4.5  # the failure mode waits for read_timeout (5 s)

    run(main())


def test_aclose(run: Runner[None]) -> None:
    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            if request.target == b"/hang":
                await peer.idle()
                break
            await peer.send(response())
        peer.server.client_closes += 1

    async def main() -> None:
        async with Server(handler) as server:
            pool = UpstreamPool(server.url)
            hanging = asyncio.ensure_future(get(pool, b"/hang"))
            await asyncio.sleep(0.05)
            await get(pool)  # a second connection, idle from now on
            await pool.aclose()
            with pytest.raises(UpstreamConnectError):
                await hanging
            with pytest.raises(UpstreamConnectError):
                await get(pool)
            await asyncio.sleep(0.05)
            assert server.connections == 2
            assert server.client_closes == 2

    run(main())


# -- request validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", b"/", [(b"x-a", b"1\r\nx-injected: 1")]),
        ("GET", b"/", [(b"x-a", b"1\nx-injected: 1")]),
        ("GET", b"/", [(b"x-a", b"1\rx")]),
        ("GET", b"/", [(b"x-a", b"1\x00")]),
        ("GET", b"/", [(b"x-a\r\nx-b", b"1")]),
        ("GET", b"/", [(b"x a", b"1")]),
        ("GET", b"/", [(b"x:a", b"1")]),
        ("GET", b"/", [(b"", b"1")]),
        ("GET", b"/", [(b"host", b"a"), (b"Host", b"b")]),
        ("GET", b"/a b", []),
        ("GET", b"/a\r\nx: y", []),
        ("GET", b"/a#frag", []),
        ("GET", b"http://evil/", []),
        ("GET", b"", []),
        ("GE T", b"/", []),
        ("GET\r\n", b"/", []),
        ("CONNECT", b"/", []),
    ],
)
def test_invalid_requests_are_rejected_before_sending(
    run: Runner[None], method: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url) as pool:
            with pytest.raises(ValueError):
                await pool.request(method, target, headers)
            assert server.connections == 0

    run(main())


def test_base_url_path_prefix(run: Runner[None]) -> None:
    async def main() -> None:
        async with Server(keep_alive(echo)) as server, pool_for(server.url + "/api/v1/") as pool:
            got = await get(pool, b"/users?id=1")
            assert got.body == b"GET /api/v1/users?id=1 "

    run(main())


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("http://Example.COM", "example.com"),
        ("http://example.com:80/", "example.com"),
        ("https://example.com:443", "example.com"),
        ("https://example.com:8443/base", "example.com:8443"),
        ("http://127.0.0.1:9000/api", "127.0.0.1:9000"),
        ("http://[::1]:8080", "[::1]:8080"),
    ],
)
def test_authority(url: str, authority: str) -> None:
    assert UpstreamPool(url).authority == authority


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "example.com:80",
        "http://",
        "http://user:pw@example.com",
        "http://example.com:99999",
        "http://example.com:0",
        "http://example.com:x",
        "http://example.com/a?b=1",
        "http://example.com/#top",
        "http://exa mple.com",
        "http://example.com/a\r\nb",
        "http://[zz::1]/",
        "http://bücher.example/",
        "http://example.com/pfad/ä",
    ],
)
def test_invalid_base_url(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        UpstreamPool(url)


@pytest.mark.parametrize(
    "options",
    [
        {"read_timeout": 0},
        {"connect_timeout": -1},
        {"pool_timeout": float("inf")},
        {"max_connections": 0},
        {"max_idle_connections": -1},
        {"ssl_context": ssl.create_default_context()},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UpstreamPool("http://example.com", **options)


# -- TLS ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A throwaway CA and a server certificate for 127.0.0.1: (cert file, key file, CA PEM)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def builder(subject: str, issuer: str, public_key: Any) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    usage = dict.fromkeys(
        ["content_commitment", "key_encipherment", "data_encipherment", "key_agreement"], False
    )
    ca = (
        builder("apishield test CA", "apishield test CA", ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder("127.0.0.1", "apishield test CA", key.public_key())
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM).decode()


def test_tls_upstream(run: Runner[None], tls_material: tuple[Path, Path, str]) -> None:
    cert_file, key_file, ca_pem = tls_material
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)

    async def main() -> None:
        async with Server(keep_alive(echo), ssl_context=server_context) as server:
            trusting = ssl.create_default_context(cadata=ca_pem)
            async with pool_for(server.url, ssl_context=trusting) as pool:
                for _ in range(2):
                    assert (await get(pool, b"/secure")).body == b"GET /secure "
                assert server.connections == 1
            async with pool_for(server.url) as pool:  # default context: the test CA is not trusted
                with pytest.raises(UpstreamConnectError, match="certificate"):
                    await get(pool)

        async def until_close(peer: Peer) -> None:
            await peer.read_request()
            await peer.send(b"HTTP/1.1 200 OK\r\n\r\nuntil-")
            await peer.send(b"close")

        async with Server(until_close, ssl_context=server_context) as server:
            trusting = ssl.create_default_context(cadata=ca_pem)
            async with pool_for(server.url, ssl_context=trusting) as pool:
                for _ in range(2):
                    assert (await get(pool)).body == b"until-close"
                assert server.connections == 2

    run(main())
