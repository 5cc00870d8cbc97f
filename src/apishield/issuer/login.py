"""The sign-in and consent page of the authorization endpoint (RFC 6749 §3.1, §10.12, RFC 9700 §4.4, §4.12).

One small HTML page without scripts or external assets: a form with labelled
username and password fields, the client's name and the scopes it asks for,
and two buttons, "Sign in and allow" and "Deny". Keyboard and screen-reader
usable: every field has a ``<label>``, the error is announced
(``role="alert"``) and tied to the fields (``aria-describedby``), focus is
always visible, and the page follows the user's colour scheme.

Headers: a strict Content-Security-Policy (``default-src 'none'``, the one
inline style allowed by a per-response nonce, ``form-action`` to this origin
and to the validated redirect URI's origin, since browsers apply it to the
redirect that follows the form, ``frame-ancestors 'none'`` against
clickjacking, RFC 6749 §10.13), ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store``.

CSRF (RFC 6749 §10.12): a double-submit token. The page sets a random
cookie (``HttpOnly; SameSite=Strict``; ``Secure`` and the ``__Host-`` prefix
on https issuers) and puts ``HMAC(csrf_key, cookie || query)`` in a hidden
field; a posted form counts only if both match, so another site can neither
post the form nor reuse a token for another authorization request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from html import escape
from urllib.parse import urlsplit

__all__ = ["CSRF", "error_page", "page_headers", "sign_in_page"]

_CSP_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_CSP_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")

_STYLE = """
:root { color-scheme: light dark; font: 16px/1.5 system-ui, sans-serif; }
body { margin: 0; display: flex; justify-content: center; }
main { max-width: 26rem; width: 100%; padding: 2rem 1.25rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input { display: block; width: 100%; box-sizing: border-box; font: inherit; padding: .5rem;
        margin-top: .25rem; border: 1px solid; border-radius: .25rem; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; flex-wrap: wrap; }
button { font: inherit; padding: .5rem 1rem; border-radius: .25rem; border: 2px solid; cursor: pointer; }
button[value=allow] { background: #1d4ed8; color: #fff; border-color: #1d4ed8; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.error { border-left: 4px solid #b91c1c; padding: .5rem .75rem; font-weight: 600; }
code { font-size: .95em; }
""".strip()


class CSRF:
    """Double-submit CSRF tokens bound to one authorization request."""

    def __init__(self, key: bytes, secure: bool) -> None:
        self.key = key
        self.secure = secure
        self.cookie_name = "__Host-issuer-csrf" if secure else "issuer-csrf"

    def new_cookie(self) -> str:
        return secrets.token_urlsafe(32)

    def cookie_header(self, value: str) -> str:
        attrs = "Path=/; HttpOnly; SameSite=Strict; Max-Age=1800"
        return f"{self.cookie_name}={value}; {attrs}" + ("; Secure" if self.secure else "")

    def cookie_from(self, cookie_header: str | None) -> str | None:
        if not cookie_header:
            return None
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name and 32 <= len(value) <= 64 and value.isascii():
                return value
        return None

    def token(self, cookie: str, query: str) -> str:
        mac = hmac.new(self.key, cookie.encode() + b"\n" + query.encode("utf-8"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def check(self, cookie: str | None, query: str, token: str | None) -> bool:
        if cookie is None or not token:
            return False
        return hmac.compare_digest(self.token(cookie, query), token)


def page_headers(nonce: str, redirect_uri: str | None = None) -> list[tuple[str, str]]:
    form_action = "'self'"
    if redirect_uri:  # registered, so already checked; never let it break out of the directive
        parts = urlsplit(redirect_uri)
        if parts.scheme in ("http", "https") and _CSP_HOST.fullmatch(parts.netloc):
            form_action += f" {parts.scheme}://{parts.netloc}"
        elif _CSP_SCHEME.fullmatch(parts.scheme):
            form_action += f" {parts.scheme}:"
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", csp),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]


def _document(title: str, nonce: str, body: str) -> bytes:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n"
        f'<style nonce="{nonce}">\n{_STYLE}\n</style>\n</head>\n'
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    ).encode()


def sign_in_page(
    *,
    nonce: str,
    action: str,
    csrf_token: str,
    client_name: str,
    scopes: Iterable[str],
    username: str = "",
    error: str | None = None,
) -> bytes:
    scope_items = "\n".join(f"<li><code>{escape(s)}</code></li>" for s in scopes) or "<li>no scopes</li>"
    described = ' aria-describedby="error" aria-invalid="true"' if error else ""
    alert = f'<p id="error" class="error" role="alert">{escape(error)}</p>\n' if error else ""
    body = (
        "<h1>Sign in</h1>\n"
        f"<p><strong>{escape(client_name)}</strong> asks for access to your account with these scopes:</p>\n"
        f"<ul>\n{scope_items}\n</ul>\n"
        f"{alert}"
        f'<form method="post" action="{escape(action)}">\n'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">\n'
        '<label for="username">Username</label>\n'
        f'<input id="username" name="username" autocomplete="username" autocapitalize="none" '
        f'spellcheck="false" required autofocus value="{escape(username)}"{described}>\n'
        '<label for="password">Password</label>\n'
        f'<input id="password" name="password" type="password" autocomplete="current-password" '
        f"required{described}>\n"
        '<div class="actions">\n'
        '<button type="submit" name="decision" value="allow">Sign in and allow</button>\n'
        '<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>\n'
        "</div>\n</form>"
    )
    return _document(f"Sign in: {client_name}", nonce, body)


def error_page(*, nonce: str, title: str, message: str, code: str | None = None) -> bytes:
    detail = f"<p>Error code: <code>{escape(code)}</code></p>\n" if code else ""
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p role="alert">{escape(message)}</p>\n{detail}'
        "<p>Nothing was sent to the application. Go back to it and start again.</p>"
    )
    return _document(title, nonce, body)
