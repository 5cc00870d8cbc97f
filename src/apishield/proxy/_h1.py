"""HTTP/1.1 upstream connection: the wire half of :mod:`apishield.proxy.client`.

:class:`H1Connection` is an :class:`asyncio.Protocol` carrying one exchange at a time. Responses are
parsed by llhttp (``httptools.HttpResponseParser``) and handed over through one future completed from
the protocol callbacks, so no task is created per request. Implemented:

* RFC 9112 §4, §5: strict status line and field parsing; names lower-cased, values as received; the
  header section is size-bounded. Trailer fields are discarded (RFC 9110 §6.5.1).
* RFC 9112 §6.3: no content for HEAD (RFC 9110 §9.3.2), 1xx, 204 and 304; chunked (RFC 9112 §7.1) or
  Content-Length framing, else read until close. Interim 1xx responses are skipped (RFC 9110 §15.2).
* RFC 9112 §8: a message cut short by a close fails. Limitation (RFC 9112 §9.8): a read-until-close
  response over TLS ends at any close, as asyncio does not tell close_notify from a bare TCP close.
* RFC 9112 §9.2, §9.3, §9.6: reuse only after a complete keep-alive response and no stray bytes.
* RFC 9112 §9.5: a timeout fails the exchange and drops the connection; a response arriving early
  stops a streamed request body.

Each connection owns at most one timer, moved lazily: a new deadline is only recorded, and a timer
that fires early re-arms itself for it, so keep-alive traffic costs about one timer per read_timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser

_INF: Final = float("inf")
# A timer firing this close to its deadline counts as expired (the event loop may run it early).
_TIMER_SLACK: Final = 0.001
# Bytes bodies below this size go out in the same write() as the head: one send() for small requests.
_COALESCE_LIMIT: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """A complete upstream response: lower-cased header names, values and content as received."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class UpstreamError(Exception):
    """Base of every failure talking to the upstream; ``status_hint`` is the status to answer with."""

    status_hint: int = 502


class UpstreamConnectError(UpstreamError):
    """The upstream could not be reached, or closed the connection before any response byte (502)."""


class UpstreamTimeout(UpstreamError):
    """Connecting, waiting for a pooled connection, or waiting for the response took too long (504)."""

    status_hint = 504


class UpstreamProtocolError(UpstreamError):
    """The upstream's response was malformed, badly framed or incomplete (502)."""


class UpstreamResponseTooLarge(UpstreamError):
    """The response content, or its header section, exceeded the configured limit (502)."""


class StaleConnectionError(UpstreamConnectError):
    """A reused keep-alive connection closed before any response byte (RFC 9112 §9.3.1 retry case)."""


class H1Connection(asyncio.Protocol):
    """One keep-alive connection; at most one exchange in flight (no pipelining, RFC 9112 §9.3.2)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[H1Connection], None],
        max_body: int,
        max_head: int,
    ) -> None:
        self._loop = loop
        self._on_lost = on_lost
        self._max_body = max_body
        self._max_head = max_head
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._parser_dirty = False
        self.closed = False
        self._reusable = True
        self._served = 0
        self._reused = False
        self._deadline = _INF
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _INF
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._lost: asyncio.Future[None] | None = None
        self._is_head = False
        self._received = False
        self._head_raw = 0
        self._head_bytes = 0
        self._headers_done = False
        self._clear_message()
        # True while this connection occupies one of the pool's max_connections slots.
        self.has_slot = False

    # -- state queried by the pool -------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        """Whether an idle connection may carry another request at time ``now``."""
        transport = self._transport
        return (
            self._reusable
            and not self.closed
            and transport is not None
            and not transport.is_closing()
            and now < self._deadline
        )

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed

    def mark_idle(self, deadline: float) -> None:
        """Back in the pool; close by itself once ``deadline`` (the idle timeout) passes."""
        self._set_deadline(deadline)

    def mark_busy(self) -> None:
        self._deadline = _INF

    # -- exchanges -----------------------------------------------------------------------------------

    def send(
        self, head: bytes, body: bytes, is_head: bool, timeout: float
    ) -> asyncio.Future[UpstreamResponse]:
        """Write a request with a fully known body; the future resolves to the response.

        ``timeout`` bounds the whole wait, from now until the last response byte.
        """
        waiter = self._begin(is_head)
        transport = cast(asyncio.Transport, self._transport)
        if len(body) < _COALESCE_LIMIT:
            transport.write(head + body if body else head)
        else:
            transport.write(head)
            transport.write(body)
        self._set_deadline(self._loop.time() + timeout)
        return waiter

    async def send_stream(
        self, head: bytes, body: AsyncIterator[bytes], is_head: bool, timeout: float
    ) -> UpstreamResponse:
        """Write a request whose body comes from ``body``, chunked (RFC 9112 §7.1).

        Time spent waiting on ``body`` is not charged to ``timeout``; each wait for the upstream to
        take more bytes is, and so is the wait for the response once the body has been sent.
        """
        waiter = self._begin(is_head)
        transport = cast(asyncio.Transport, self._transport)
        transport.write(head)
        complete = False
        try:
            async for chunk in body:
                if waiter.done():
                    break  # the upstream answered (or failed) before taking the whole body
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    if self._paused:
                        await self._wait_drain(timeout)
                        if waiter.done():
                            break
            else:
                if not waiter.done():
                    transport.write(b"0\r\n\r\n")
                    complete = True
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # consumed here: the caller's own exception wins
            raise
        if not complete:
            self._reusable = False
        if not waiter.done():
            self._set_deadline(self._loop.time() + timeout)
        return await waiter

    async def _wait_drain(self, timeout: float) -> None:
        drain: asyncio.Future[None] = self._loop.create_future()
        self._drain = drain
        self._set_deadline(self._loop.time() + timeout)
        try:
            await drain
        finally:
            self._drain = None
            self._deadline = _INF

    def _begin(self, is_head: bool) -> asyncio.Future[UpstreamResponse]:
        if self._parser_dirty:
            self._parser = HttpResponseParser(self)
            self._parser_dirty = False
        self._is_head = is_head
        self._received = False
        self._head_raw = 0
        self._head_bytes = 0
        self._headers_done = False
        self._reused = self._served > 0
        self._served += 1
        waiter: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._waiter = waiter
        return waiter

    # -- teardown ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close; gracefully only when nothing is left to send, so it never waits on the upstream."""
        self._reusable = False
        transport = self._transport
        # Never touch a closing transport again: a second close() breaks asyncio's TLS transport.
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()

    def abort(self) -> None:
        """Drop the connection at once; a still pending exchange is abandoned (its waiter cancelled)."""
        self._reusable = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.cancel()
        if self._transport is not None and not self.closed:
            self._transport.abort()

    def shutdown(self, reason: str) -> None:
        """Fail a pending exchange with ``UpstreamConnectError(reason)`` and drop the connection."""
        if self._waiter is not None:
            self._fail(UpstreamConnectError(reason))
        else:
            self.close()

    async def wait_closed(self) -> None:
        if self.closed:
            return
        if self._lost is None:
            self._lost = self._loop.create_future()
        await asyncio.shield(self._lost)

    def _fail(self, exc: UpstreamError) -> None:
        self._reusable = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)
        self._wake_drain()
        if self._transport is not None and not self.closed:
            self._transport.abort()

    def _wake_drain(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- timer ---------------------------------------------------------------------------------------

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is None or self._timer_at > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = _INF
        deadline = self._deadline
        if self.closed or deadline == _INF:
            return
        if self._loop.time() + _TIMER_SLACK < deadline:
            self._set_deadline(deadline)  # moved since armed: sleep on
        elif self._drain is not None:
            self._fail(UpstreamTimeout("upstream did not accept the request body within read_timeout"))
        elif self._waiter is not None:
            self._fail(UpstreamTimeout("upstream did not complete its response within read_timeout"))
        else:
            self.close()  # idle for idle_timeout

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes that answer no request: the framing can no longer be trusted (RFC 9112 §9.2).
            self._fail(UpstreamProtocolError("upstream sent data outside of any response"))
            return
        self._received = True
        err: UpstreamError
        try:
            self._parser.feed_data(data)
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, UpstreamError):
                err = cause
            else:
                err = UpstreamProtocolError(f"malformed upstream response: {exc}")
                err.__cause__ = cause
        except HttpParserUpgrade:
            err = UpstreamProtocolError("upstream switched protocols without being asked to")
        except HttpParserError as exc:
            err = UpstreamProtocolError(f"malformed upstream response: {exc}")
        else:
            if not self._headers_done and self._waiter is not None:
                self._head_raw += len(data)
                if self._head_raw > self._max_head:
                    self._fail(UpstreamResponseTooLarge("upstream response header section is too large"))
            return
        self._fail(err)

    def eof_received(self) -> bool:
        self._end_of_input(None)
        return False  # let the transport close itself

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_of_input(exc)
        self._wake_drain()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._on_lost(self)

    def _end_of_input(self, exc: Exception | None) -> None:
        """The upstream stopped sending: complete a read-until-close response, or fail the exchange."""
        self._reusable = False
        if self._waiter is None:
            return
        if self._headers_done and not self._length_known and exc is None:
            self._complete(False)  # RFC 9112 §6.3 (8): the close delimits the content
            return
        err: UpstreamError
        if not self._received:
            if self._reused:
                err = StaleConnectionError("upstream closed an idle keep-alive connection as it was reused")
            else:
                err = UpstreamConnectError("upstream closed the connection before responding")
        else:
            err = UpstreamProtocolError("upstream closed the connection in the middle of its response")
        err.__cause__ = exc
        self._fail(err)

    # -- httptools callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:
            raise UpstreamProtocolError("upstream sent a second response to one request")
        self._clear_message()

    def _clear_message(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._body_size = 0
        self._content_length = -1
        self._length_known = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # trailer section: discarded (RFC 9110 §6.5.1)
        size = self._head_bytes + len(name) + len(value) + 4
        if size > self._max_head:
            raise UpstreamResponseTooLarge("upstream response header section is too large")
        self._head_bytes = size
        name = name.lower()
        if name == b"content-length":
            self._content_length = int(value)  # digits only: llhttp has validated it
            self._length_known = True
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            # Any chunked coding counts as delimited, so a close can never pass for a complete body.
            self._length_known = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            return  # interim response (RFC 9110 §15.2): llhttp completes it without content
        self._headers_done = True
        self._status = status
        if self._is_head:
            # llhttp does not know the request was HEAD and would wait for Content-Length bytes:
            # the response ends here (RFC 9110 §9.3.2) and the next exchange gets a fresh parser.
            self._parser_dirty = True
            self._complete(parser.should_keep_alive())
        elif self._content_length > self._max_body and status != 204 and status != 304:
            raise UpstreamResponseTooLarge(
                f"upstream response content-length {self._content_length} exceeds max_response_bytes"
            )

    def on_body(self, body: bytes) -> None:
        if self._waiter is None:
            raise UpstreamProtocolError("upstream sent content in a response to HEAD")
        size = self._body_size + len(body)
        if size > self._max_body:
            raise UpstreamResponseTooLarge("upstream response content exceeds max_response_bytes")
        self._body_size = size
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._headers_done and self._waiter is not None:
            self._complete(self._parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        waiter = cast("asyncio.Future[UpstreamResponse]", self._waiter)
        self._waiter = None
        self._deadline = _INF
        self._wake_drain()  # a streamed body still being sent stops now (RFC 9112 §9.5)
        if not keep_alive:
            self._reusable = False
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not waiter.done():
            waiter.set_result(UpstreamResponse(self._status, self._headers, body))
