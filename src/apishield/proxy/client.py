"""The gateway's upstream client: pooled HTTP/1.1 keep-alive connections to one origin.

:class:`UpstreamPool` sends a request and returns the whole :class:`UpstreamResponse`. This module
builds the request message and runs the pool; :mod:`apishield.proxy._h1` speaks the wire protocol.

Requests (:class:`ValueError` before anything is sent when invalid):

* Origin-form target (RFC 9112 §3.2.1) behind the base URL's path prefix; no whitespace or controls.
* Field names must be tokens (RFC 9110 §5.1); values must not hold CR, LF or NUL (RFC 9110 §5.5,
  RFC 9112 §11.1). ``Host`` (RFC 9110 §7.2) is added unless the caller sent one.
* The client owns framing and connection management (RFC 9110 §7.6.1, RFC 9112 §11.2): the caller's
  Content-Length, Transfer-Encoding, Connection and Keep-Alive fields are dropped. A bytes body gets
  Content-Length (RFC 9110 §8.6; left out when empty for methods not expecting content), an
  async-iterator body is sent chunked (RFC 9112 §7.1).

Connections (RFC 9112 §9): reused most-recently-used first (§9.3); at most ``max_connections`` open
(§9.4), further callers wait up to ``pool_timeout``; idle ones close after ``idle_timeout``. ``https``
uses TLS with SNI and certificate verification (RFC 9112 §9.7, RFC 9110 §4.3.4).

Retry (RFC 9112 §9.3.1): when a *reused* connection ends before any response byte (the upstream
closed it while idle), the request is sent once more on a new connection, and only for idempotent
methods (RFC 9110 §9.2.2) with a bytes body. Nothing else is retried.

Timeouts: ``connect_timeout`` bounds TCP connect plus TLS handshake. ``read_timeout`` is a deadline
for the whole response, starting once the request is written; arriving data does not extend it. For
streamed bodies it also bounds each wait for the upstream to take more bytes, but not the waits on
the caller's iterator. ``pool_timeout`` bounds the wait for a connection slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Final, NoReturn

from apishield.proxy._h1 import (
    H1Connection,
    StaleConnectionError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
)
from apishield.proxy.base_url import parse_base_url

__all__ = [
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamPool",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamResponseTooLarge",
    "UpstreamTimeout",
]

_TCHAR: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN_RE: Final = re.compile(_TCHAR + rb"+")
_TOKEN_CHARS_RE: Final = re.compile(_TCHAR + rb"*")
_BAD_TARGET_RE: Final = re.compile(rb"[\x00-\x20\x7f#]")
_OWNED_NAMES: Final = frozenset((b"connection", b"keep-alive", b"content-length", b"transfer-encoding"))
# Lengths of "host" and of the owned names: other names skip the lower-casing.
_SPECIAL_LENGTHS: Final = frozenset(len(name) for name in (*_OWNED_NAMES, b"host"))
_IDEMPOTENT: Final = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"))
_NO_CONTENT_EXPECTED: Final = frozenset(("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"))
_METHOD_CACHE_SIZE: Final = 64


_Fields = list[tuple[bytes, bytes]]
# method -> (bytes on the wire, send "content-length: 0" when empty, retryable, is HEAD)
_MethodInfo = tuple[bytes, bool, bool, bool]
_methods: dict[str, _MethodInfo] = {}


def _method_info(method: str) -> _MethodInfo:
    info = _methods.get(method)
    if info is not None:
        return info
    if not method.isascii() or _TOKEN_RE.fullmatch(method.encode("ascii")) is None:
        raise ValueError(f"request method must be an RFC 9110 token, got {method!r}")
    if method == "CONNECT":
        raise ValueError("CONNECT is not supported: the upstream client sends origin-form requests only")
    wire = method.encode("ascii")
    info = (wire, method not in _NO_CONTENT_EXPECTED, method in _IDEMPOTENT, method == "HEAD")
    if len(_methods) < _METHOD_CACHE_SIZE:
        _methods[method] = info
    return info


def _reject_headers(headers: _Fields) -> NoReturn:
    """Slow path of the header check: name the offending field."""
    for name, value in headers:
        if name.lower() in _OWNED_NAMES:
            continue
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"invalid request header name {name!r}: must be an RFC 9110 token")
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise ValueError(f"request header {name!r} has a value containing CR, LF or NUL")
    raise ValueError("invalid request header section")


def _seconds(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _count(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class UpstreamPool:
    """Keep-alive connections to one upstream origin; see the module documentation."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 256,
        max_idle_connections: int = 64,
        idle_timeout: float = 60.0,
        pool_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = 16 * 1024 * 1024,
        max_response_header_bytes: int = 64 * 1024,
    ) -> None:
        tls, self._host, self._port, self._authority, self._prefix = parse_base_url(base_url)
        if ssl_context is not None and not tls:
            raise ValueError("ssl_context is only used with an https:// base_url")
        self._connect_timeout = _seconds("connect_timeout", connect_timeout)
        self._read_timeout = _seconds("read_timeout", read_timeout)
        self._idle_timeout = _seconds("idle_timeout", idle_timeout)
        self._pool_timeout = _seconds("pool_timeout", pool_timeout)
        self._max_connections = _count("max_connections", max_connections, 1)
        self._max_idle = _count("max_idle_connections", max_idle_connections, 0)
        self._max_body = _count("max_response_bytes", max_response_bytes, 0)
        self._max_head = _count("max_response_header_bytes", max_response_header_bytes, 1)
        self._tls: dict[str, Any] = {}
        if tls:  # certificate and host name verified by default; SNI sent (RFC 9112 §9.7)
            self._tls = {
                "ssl": ssl_context or ssl.create_default_context(),
                "server_hostname": self._host,
                "ssl_shutdown_timeout": self._connect_timeout,  # bounds the close_notify exchange
            }
        self._host_line = b"host: " + self._authority.encode("ascii") + b"\r\n"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[H1Connection] = []
        self._conns: set[H1Connection] = set()
        self._waiters: deque[asyncio.Future[H1Connection | None]] = deque()
        self._open = 0  # slots taken: open connections plus connections being opened
        self._closed = False

    @property
    def authority(self) -> str:
        """``host[:port]`` for a Host header; the port is left out when it is the scheme's default."""
        return self._authority

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] = b"",
    ) -> UpstreamResponse:
        """Send one request and return the complete response.

        Raises :class:`ValueError` for an invalid method, target or header (nothing is sent), and an
        :class:`UpstreamError` subclass when the upstream exchange fails.
        """
        wire_method, zero_cl, retryable, is_head = _methods.get(method) or _method_info(method)
        if isinstance(body, bytes):
            data, stream = body, None
            head = self._head(wire_method, target, headers, len(body), zero_cl)
        else:
            data, stream = b"", body
            head = self._head(wire_method, target, headers, None, False)
        if self._closed:
            raise UpstreamConnectError("the upstream pool is closed")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()

        conn = None
        idle = self._idle
        if idle:
            now = loop.time()
            while idle:
                candidate = idle.pop()
                if candidate.usable(now):
                    conn = candidate
                    break
                candidate.close()
        if conn is None:
            conn = await self._acquire(loop, fresh=False)
        conn.mark_busy()
        try:
            if stream is None:
                response = await conn.send(head, data, is_head, self._read_timeout)
            else:
                response = await conn.send_stream(head, stream, is_head, self._read_timeout)
        except StaleConnectionError:
            conn.abort()
            if stream is not None or not retryable:
                raise
        except BaseException:
            conn.abort()
            raise
        else:
            self._release(conn, loop)
            return response

        # The upstream closed a kept-alive connection under us: once more, on a new connection.
        conn = await self._acquire(loop, fresh=True)
        conn.mark_busy()
        try:
            response = await conn.send(head, data, is_head, self._read_timeout)
        except BaseException:
            conn.abort()
            raise
        self._release(conn, loop)
        return response

    async def aclose(self) -> None:
        """Close every connection (in-flight requests fail with UpstreamConnectError) and wait for it."""
        self._closed = True
        reason = "the upstream pool was closed"
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamConnectError(reason))
        self._idle.clear()
        conns = list(self._conns)
        for conn in conns:
            conn.shutdown(reason)
        for conn in conns:
            await conn.wait_closed()

    # -- request message -----------------------------------------------------------------------------

    def _head(self, method: bytes, target: bytes, fields: _Fields, length: int | None, cl0: bool) -> bytes:
        """The request head: ``length`` None means chunked; ``cl0`` sends "content-length: 0" if empty."""
        if target[:1] != b"/" or _BAD_TARGET_RE.search(target) is not None:
            raise ValueError(
                "request target must be origin-form (RFC 9112 §3.2.1) without whitespace, "
                f"control characters or fragment, got {target!r}"
            )
        parts = [method, b" ", self._prefix, target, b" HTTP/1.1\r\n"]
        names: list[bytes] = []
        has_host = False
        for name, value in fields:
            if len(name) in _SPECIAL_LENGTHS:
                lower = name.lower()
                if lower in _OWNED_NAMES:
                    continue
                if lower == b"host":
                    if has_host:
                        raise ValueError("more than one Host request header")
                    has_host = True
            names.append(name)
            parts += (name, b": ", value, b"\r\n")
        lines = len(names) + 2  # request line, fields, empty line
        if not has_host:
            parts.append(self._host_line)
            lines += 1
        if length is None:
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        elif length or cl0:
            parts.append(b"content-length: %d\r\n" % length)
            lines += 1
        parts.append(b"\r\n")
        head = b"".join(parts)
        # Method, prefix and target are validated and names must be tokens, so any extra CR, LF or
        # NUL can only come from a field value.
        if (
            _TOKEN_CHARS_RE.fullmatch(b"".join(names)) is None
            or b"" in names
            or head.count(b"\n") != lines
            or head.count(b"\r") != lines
            or b"\x00" in head
        ):
            _reject_headers(fields)
        return head

    # -- pool ----------------------------------------------------------------------------------------

    async def _acquire(self, loop: asyncio.AbstractEventLoop, *, fresh: bool) -> H1Connection:
        """A connection when no idle one was usable; ``fresh`` forbids reusing a kept-alive one."""
        while True:
            if self._closed:
                raise UpstreamConnectError("the upstream pool is closed")
            if self._open < self._max_connections:
                self._open += 1
                break
            handed = await self._wait_for_slot(loop)
            if handed is None:
                break  # a slot was passed on to us
            if not fresh and handed.usable(loop.time()):
                return handed
            if handed.has_slot:  # not for us to reuse: retire it and keep its slot
                handed.has_slot = False
                handed.close()
                break
            # It closed while being handed over and its slot went back to the pool: once more.
        return await self._connect_in_slot(loop)

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> H1Connection | None:
        """Wait for a released connection, or for a free slot (``None``)."""
        waiter: asyncio.Future[H1Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self._pool_timeout, self._expire_waiter, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over just as we were cancelled: give it back
                if handed is None:
                    self._free_slot()
                else:
                    self._release(handed, loop)
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _expire_waiter(self, waiter: asyncio.Future[H1Connection | None]) -> None:
        if not waiter.done():
            busy = f"all {self._max_connections} upstream connections stayed busy for pool_timeout"
            waiter.set_exception(UpstreamTimeout(busy))

    async def _connect_in_slot(self, loop: asyncio.AbstractEventLoop) -> H1Connection:
        try:
            conn = await self._connect(loop)
        except BaseException:
            self._free_slot()
            raise
        if conn.closed or self._closed:
            self._free_slot()
            conn.abort()
            raise UpstreamConnectError(f"connection to {self._authority} closed as it was opened")
        conn.has_slot = True
        self._conns.add(conn)
        return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> H1Connection:
        conn = H1Connection(loop, self._conn_lost, self._max_body, self._max_head)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(lambda: conn, self._host, self._port, **self._tls)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to {self._authority} exceeded connect_timeout") from exc
        except OSError as exc:  # refused, unreachable, reset, TLS handshake or verification failure
            raise UpstreamConnectError(f"cannot connect to {self._authority}: {exc}") from exc
        return conn

    def _release(self, conn: H1Connection, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed or not conn.reusable:
            conn.close()
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        idle = self._idle
        if len(idle) >= self._max_idle:
            if not idle:
                conn.close()
                return
            idle.pop(0).close()  # the least recently used one
        conn.mark_idle(loop.time() + self._idle_timeout)
        idle.append(conn)

    def _free_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._open -= 1

    def _conn_lost(self, conn: H1Connection) -> None:
        self._conns.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        if conn.has_slot:
            conn.has_slot = False
            self._free_slot()
