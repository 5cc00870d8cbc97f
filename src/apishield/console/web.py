"""HTTP details of the console: security headers, cookies, forms, same-origin checks.

Every console answer carries a strict Content Security Policy (scripts,
styles and data only from the console itself: no inline script, no inline
style, no frames, forms posting only back to it), ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` and ``Cross-Origin-Opener-Policy``; the
admin application adds ``Cache-Control: no-store`` and ``nosniff``.

A state-changing request must come from the console's own pages: a
``Sec-Fetch-Site`` other than ``same-origin`` is refused, and so is an
``Origin`` naming another host. ``Origin: null`` is what a browser sends for
a same-origin form under ``Referrer-Policy: no-referrer`` (Fetch, "serialize
a request origin"), so it proves nothing either way; the CSRF token bound to
the session decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

from apishield.admin.app import AdminRequest, Answer

__all__ = [
    "FORM_LIMIT",
    "SECURITY_HEADERS",
    "cookies",
    "html",
    "query_params",
    "read_form",
    "redirect",
    "same_origin",
    "with_query",
]

FORM_LIMIT = 16_384

CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    b"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
HTML = b"text/html; charset=utf-8"


def html(status: int, body: str, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    return Answer(status, body.encode(), HTML, [*SECURITY_HEADERS, *(headers or [])])


def redirect(location: str, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    """``303 See Other``: after a form, the browser GETs the next page."""
    return Answer(
        303, b"", b"text/plain", [*SECURITY_HEADERS, (b"location", location.encode()), *(headers or [])]
    )


def cookies(request: AdminRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers:
        if name != b"cookie":
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value.decode("latin-1"))
        except CookieError:
            continue
        for key, morsel in jar.items():
            out.setdefault(key, morsel.value)
    return out


def query_params(request: AdminRequest) -> dict[str, str]:
    """The query string's parameters; the first value of each, blanks dropped."""
    parsed = parse_qs(request.query.decode("latin-1"), max_num_fields=64)
    return {k: v[0].strip() for k, v in parsed.items() if v and v[0].strip()}


def with_query(path: str, params: Mapping[str, object | None]) -> str:
    kept = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


async def read_form(request: AdminRequest) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body; None when it is too large or of another type."""
    content_type = (request.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        return None
    body = b""
    while True:
        message = await request.receive()
        body += message.get("body", b"")
        if len(body) > FORM_LIMIT:
            return None
        if not message.get("more_body"):
            break
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=32, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in parsed.items() if v}


def same_origin(request: AdminRequest) -> bool:
    """False when the browser says the request comes from another site or origin."""
    site = request.header(b"sec-fetch-site")
    if site is not None and site.strip().lower() != b"same-origin":
        return False
    origin = request.header(b"origin")
    if origin is None or origin.strip() == b"null":
        return True
    host = request.header(b"host")
    try:
        origin_host = urlsplit(origin.decode("latin-1").strip()).netloc.lower()
    except ValueError:
        return False
    # the scheme is not compared: a TLS proxy in front of the listener makes it https for the browser
    return host is not None and origin_host == host.decode("latin-1").strip().lower()
