"""Response headers: what every answer carries, rejections included.

Hop-by-hop fields from the upstream are removed (RFC 9110 §7.6.1), as are
fields that advertise the upstream's software (``Server``,
``X-Powered-By``, ``X-AspNet-Version``). The upstream's ``Date`` is kept
and the gateway's own answers get one (RFC 9110 §6.6.1), exactly one either
way. ``Content-Length`` is recomputed
because earlier stages may have changed the body. Every answer gets
``X-Content-Type-Options: nosniff`` and the gateway's ``X-Request-Id``.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.core.stages.forward import strip_hop_by_hop

__all__ = ["ResponseHeadersStage"]

_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an IMF-fixdate (RFC 9110 §5.6.7), computed once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


_DROP = frozenset(
    {b"server", b"x-powered-by", b"x-aspnet-version", b"x-aspnetmvc-version", b"content-length"}
)


class ResponseHeadersStage(Stage):
    name = "response_headers"

    def on_reply(self, ex: Exchange) -> None:
        reply = ex.reply
        if reply is None:
            return
        reply.serialize()  # stages changed the parsed body: one serialisation, now
        head_length = None
        if ex.request.method == "HEAD":
            head_length = next((v for k, v in reply.headers if k == b"content-length"), None)
        if reply.from_upstream:
            headers = strip_hop_by_hop(reply.headers, _DROP)
        else:
            headers = [(k, v) for k, v in reply.headers if k != b"content-length"]
        headers = [(k, v) for k, v in headers if k not in (b"x-content-type-options", b"x-request-id")]
        headers.append((b"x-content-type-options", b"nosniff"))
        if not any(k == b"date" for k, _ in headers):
            headers.append((b"date", http_date()))
        headers.append((b"x-request-id", ex.request_id.encode("ascii")))
        if head_length is not None:
            headers.append((b"content-length", head_length))
        elif not (ex.request.method == "HEAD" or reply.status in (204, 304) or reply.status < 200):
            headers.append((b"content-length", str(len(reply.body)).encode("ascii")))
        reply.headers = headers
