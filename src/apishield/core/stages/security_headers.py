"""Security response headers, on every answer the gateway sends, its own rejections included.

Profile ``api`` (OWASP REST Security Cheat Sheet; OWASP Secure Headers
Project): ``Content-Security-Policy: default-src 'none'; frame-ancestors
'none'`` (a JSON API never needs to load or be framed), ``X-Frame-Options:
DENY`` (legacy browsers), ``Referrer-Policy: no-referrer``,
``Cross-Origin-Resource-Policy: same-origin``; ``Cache-Control: no-store``
on answers to authenticated requests (RFC 9111 §5.2.2.5: nothing a caller
was authorised to read may be kept by a shared cache);
``Strict-Transport-Security`` (RFC 6797 §7.2) only when the request came
over TLS, since a user agent ignores it over plain HTTP. Upstream headers that
disclose software (the OWASP ``headers_remove`` list, abridged) are removed.
``X-Content-Type-Options: nosniff`` is set by :mod:`.response_headers`.

The policy's values replace the upstream's: the gateway is the authority
for what a browser may do with the API's answers. A header set to ``null``
in the policy is left as the upstream sent it.
"""

from __future__ import annotations

from apishield.config.transport import HeadersPolicy
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage

__all__ = ["DISCLOSURE_HEADERS", "SecurityHeadersStage"]

DISCLOSURE_HEADERS = frozenset(
    {
        b"server",
        b"x-powered-by",
        b"x-powered-by-plesk",
        b"x-aspnet-version",
        b"x-aspnetmvc-version",
        b"x-generator",
        b"x-php-version",
        b"x-runtime",
        b"x-version",
        b"x-backend-server",
        b"x-server",
        b"sourcemap",
        b"x-sourcemap",
    }
)
_DISCLOSURE_PREFIXES = (b"x-envoy-", b"x-kong-", b"x-varnish", b"x-datadog-", b"x-b3-")


class SecurityHeadersStage(Stage):
    name = "security_headers"

    def __init__(self, policy: HeadersPolicy) -> None:
        self.enabled = policy.profile != "off"
        self.remove = DISCLOSURE_HEADERS | {n.encode("latin-1") for n in policy.remove}
        fixed: list[tuple[bytes, bytes]] = []
        if policy.content_security_policy is not None:
            fixed.append((b"content-security-policy", policy.content_security_policy.encode("latin-1")))
        if policy.frame_options is not None:
            fixed.append((b"x-frame-options", policy.frame_options.encode("latin-1")))
        if policy.referrer_policy is not None:
            fixed.append((b"referrer-policy", policy.referrer_policy.encode("latin-1")))
        if policy.cross_origin_resource_policy is not None:
            fixed.append(
                (b"cross-origin-resource-policy", policy.cross_origin_resource_policy.encode("latin-1"))
            )
        self.fixed = fixed
        self.replaced = frozenset(name for name, _ in fixed)
        self.hsts: bytes | None = None
        if policy.hsts is not None:
            value = f"max-age={policy.hsts.max_age}"
            if policy.hsts.include_subdomains:
                value += "; includeSubDomains"
            if policy.hsts.preload:
                value += "; preload"
            self.hsts = value.encode("ascii")
        self.no_store = policy.no_store

    def on_reply(self, ex: Exchange) -> None:
        reply = ex.reply
        if reply is None or not self.enabled:
            return
        remove = self.remove
        replaced = self.replaced
        no_store = self.no_store == "always" or (
            self.no_store == "authenticated" and ex.principal.authenticated
        )
        tls = ex.request.scheme == "https" and self.hsts is not None
        headers = [
            (k, v)
            for k, v in reply.headers
            if k not in remove
            and k not in replaced
            and not k.startswith(_DISCLOSURE_PREFIXES)
            and not (no_store and k in (b"cache-control", b"expires"))
            and not (tls and k == b"strict-transport-security")
        ]
        headers.extend(self.fixed)
        if no_store:
            headers.append((b"cache-control", b"no-store"))
        if tls:
            assert self.hsts is not None
            headers.append((b"strict-transport-security", self.hsts))
        reply.headers = headers
