"""Request hygiene: framing and header rules that defeat request smuggling.

RFC 9112 §6.1 and §6.3: a message with both ``Transfer-Encoding`` and
``Content-Length`` "ought to be handled as an error", a ``Content-Length``
that is repeated with different values or is not a number is unrecoverable,
and an intermediary must not forward a request whose framing it cannot
determine. RFC 9110 §5.5: field values must not contain CR, LF or NUL.
RFC 9112 §3.2: an HTTP/1.1 request carries exactly one ``Host``.

Size limits (``limits.max_url_length``, ``max_header_count``,
``max_header_bytes``): a target longer than the limit is 414 (RFC 9110
§15.5.15), too many or too large header fields are 431 (RFC 6585 §5).
Method-override headers (``X-HTTP-Method-Override``, ``X-Method-Override``,
``X-HTTP-Method``) let a caller make a framework run another method than the
one the gateway checked; they are removed from the request before any other
stage sees it, unless the policy names them (``proxy.method_override_headers``).

The HTTP server in front of this stage (httptools/llhttp) already refuses
most malformed framing at the parser; this stage is the second line and makes
the rules explicit, testable and identical under every adapter.
"""

from __future__ import annotations

import re

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.problem import BadRequest, Problem

__all__ = ["METHOD_OVERRIDE_HEADERS", "HeaderFieldsTooLarge", "HygieneStage", "URITooLong"]

METHOD_OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-method-override", b"x-http-method"})


class URITooLong(Problem):
    status = 414
    slug = "uri-too-long"
    title = "Request target too long"


class HeaderFieldsTooLarge(Problem):
    status = 431
    slug = "header-fields-too-large"
    title = "Request header fields too large"


_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HygieneStage(Stage):
    name = "hygiene"

    def __init__(
        self,
        max_url_length: int = 8_192,
        max_header_count: int = 100,
        max_header_bytes: int = 65_536,
        method_override_headers: frozenset[str] = frozenset(),
    ) -> None:
        self.max_url_length = max_url_length
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self.strip = METHOD_OVERRIDE_HEADERS - {h.lower().encode("latin-1") for h in method_override_headers}

    def on_request_head(self, ex: Exchange) -> None:
        req = ex.request
        if len(req.raw_path) + len(req.query_string) + 1 > self.max_url_length:
            self.reject(ex, URITooLong(detail=f"The request target exceeds {self.max_url_length} bytes."))
            return
        if len(req.headers) > self.max_header_count:
            self.reject(ex, HeaderFieldsTooLarge(detail=f"More than {self.max_header_count} header fields."))
            return
        if sum(len(k) + len(v) + 4 for k, v in req.headers) > self.max_header_bytes:
            self.reject(
                ex, HeaderFieldsTooLarge(detail=f"The header fields exceed {self.max_header_bytes} bytes.")
            )
            return
        if any(k in self.strip for k, _ in req.headers):
            req.headers = [(k, v) for k, v in req.headers if k not in self.strip]
            ex.decide(self.name, "modify", "method-override header removed")
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
