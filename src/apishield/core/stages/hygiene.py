"""Request hygiene: framing and header rules that defeat request smuggling.

RFC 9112 §6.1 and §6.3: a message with both ``Transfer-Encoding`` and
``Content-Length`` "ought to be handled as an error", a ``Content-Length``
that is repeated with different values or is not a number is unrecoverable,
and an intermediary must not forward a request whose framing it cannot
determine. RFC 9110 §5.5: field values must not contain CR, LF or NUL.
RFC 9112 §3.2: an HTTP/1.1 request carries exactly one ``Host``.

The HTTP server in front of this stage (httptools/llhttp) already refuses
most malformed framing at the parser; this stage is the second line and makes
the rules explicit, testable and identical under every adapter.
"""

from __future__ import annotations

import re

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.problem import BadRequest

__all__ = ["HygieneStage"]

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HygieneStage(Stage):
    name = "hygiene"

    def on_request_head(self, ex: Exchange) -> None:
        req = ex.request
        lengths: list[bytes] = []
        encodings: list[bytes] = []
        hosts = 0
        for name, value in req.headers:
            if not _TOKEN.match(name):
                self.reject(ex, BadRequest(detail="A header name is not a valid token."))
                return
            if _BAD_VALUE.search(value):
                self.reject(ex, BadRequest(detail="A header value contains control characters."))
                return
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                encodings.append(value)
            elif name == b"host":
                hosts += 1
        if lengths and encodings:
            self.reject(ex, BadRequest(detail="Both Content-Length and Transfer-Encoding are present."))
            return
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            self.reject(ex, BadRequest(detail="Content-Length must appear once, as a decimal number."))
            return
        if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != b"chunked"):
            self.reject(ex, BadRequest(detail="Only 'Transfer-Encoding: chunked' is accepted."))
            return
        if req.http_version == "1.1" and hosts != 1:
            self.reject(ex, BadRequest(detail="An HTTP/1.1 request must carry exactly one Host header."))
            return
        if lengths:
            ex.content_length = int(lengths[0])
