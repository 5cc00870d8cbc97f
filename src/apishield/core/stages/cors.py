"""CORS by policy (Fetch standard §3.2, "CORS protocol"), answered by the gateway.

Without a ``cors:`` section this stage does not exist and no CORS header is
sent by the gateway. With one:

* **Exact origins.** ``Access-Control-Allow-Origin`` echoes the request's
  ``Origin`` only when it is byte-for-byte (case-insensitively) in
  ``allow_origins``; an arbitrary origin is never reflected, ``null`` is
  never allowed, and ``*`` cannot be combined with credentials (the policy
  refuses to load). ``Vary: Origin`` is sent whenever the answer depends on
  the origin (RFC 9110 §12.5.5).
* **Preflight** (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered here, before authentication
  (a preflight carries no credentials), and only for an allowlisted origin,
  a documented path and a method the document declares on it; the allowed
  methods are the document's, the allowed headers the policy's. Anything else
  gets a 403 problem without CORS headers, which the browser treats as a
  failed preflight.
* The upstream's own ``Access-Control-*`` headers are removed: one authority
  decides.
"""

from __future__ import annotations

from apishield.config.transport import CorsPolicy
from apishield.core.exchange import Exchange, Reply
from apishield.core.normalize import split_path
from apishield.core.stage import Stage
from apishield.openapi.compile import Operation
from apishield.openapi.router import Router
from apishield.problem import Problem

__all__ = ["CorsPreflightStage", "CorsRefused", "CorsStage"]

# request headers a browser sends without asking (Fetch §2.2.2, CORS-safelisted request-header)
_SAFELISTED = frozenset({"accept", "accept-language", "content-language", "content-type", "range"})
_PREFLIGHT = "cors.preflight"  # key in Exchange.resolved: this stage answered a preflight


class CorsRefused(Problem):
    status = 403
    slug = "cors-refused"
    title = "Cross-origin request refused"


class _Rules:
    def __init__(self, policy: CorsPolicy) -> None:
        self.wildcard = policy.allow_origins == ["*"]
        self.origins = frozenset(o.encode("latin-1") for o in policy.allow_origins)
        self.credentials = policy.allow_credentials
        self.allow_headers = frozenset(policy.allow_headers) | _SAFELISTED
        self.expose = ", ".join(policy.expose_headers).encode("latin-1")
        self.max_age = str(policy.max_age).encode("ascii")

    def allowed_origin(self, origin: bytes | None) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for this ``Origin``, or None."""
        if origin is None:
            return None
        if self.wildcard:
            return b"*"
        return origin if origin.lower() in self.origins else None


class CorsPreflightStage(Stage):
    """Decode: answers preflights (placed after hygiene, before routing and authentication)."""

    name = "cors_preflight"

    def __init__(self, policy: CorsPolicy, router: Router[dict[str, Operation]]) -> None:
        self.rules = _Rules(policy)
        self.router = router

    def on_request_head(self, ex: Exchange) -> None:
        req = ex.request
        if req.method != "OPTIONS":
            return
        requested = req.header(b"access-control-request-method")
        origins = req.header_values(b"origin")
        if requested is None or not origins:
            return  # not a preflight: an ordinary OPTIONS request, routed like any other
        ex.resolved[_PREFLIGHT] = True  # refused or answered, the answer carries no CORS grant
        rules = self.rules
        allowed = rules.allowed_origin(origins[0]) if len(origins) == 1 else None
        if allowed is None:
            self.reject(ex, CorsRefused(detail="This origin may not call the API from a browser."))
            return
        try:
            hit = self.router.match(split_path(req.raw_path))
        except Problem:
            hit = None
        if hit is None:
            return  # the route stage answers 404 (or 400 for a target with no single reading)
        methods = sorted(hit[0].target)
        method = requested.decode("latin-1").strip()
        if method not in methods:
            self.reject(ex, CorsRefused(detail="The document declares no such method on this path."))
            return
        asked = [
            h.strip().lower()
            for line in req.header_values(b"access-control-request-headers")
            for h in line.decode("latin-1").split(",")
            if h.strip()
        ]
        if any(h not in rules.allow_headers for h in asked):
            self.reject(ex, CorsRefused(detail="A requested header is not allowed cross-origin."))
            return
        headers = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", ", ".join(methods).encode("ascii")),
            (b"access-control-max-age", rules.max_age),
        ]
        if asked:
            headers.append((b"access-control-allow-headers", ", ".join(asked).encode("latin-1")))
        if rules.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        headers.append((b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
        ex.decide(self.name, "allow", "CORS preflight answered", rule=method)
        ex.reply = Reply(status=204, headers=headers, body=b"")


class CorsStage(Stage):
    """Encode: CORS headers on every answer (placed next to the security headers)."""

    name = "cors"

    def __init__(self, policy: CorsPolicy) -> None:
        self.rules = _Rules(policy)

    def on_reply(self, ex: Exchange) -> None:
        rules = self.rules
        reply = ex.reply
        if reply is None or _PREFLIGHT in ex.resolved:
            return  # a preflight answer is complete as made
        headers = [(k, v) for k, v in reply.headers if not k.startswith(b"access-control-")]
        allowed = rules.allowed_origin(ex.request.header(b"origin"))
        if allowed is not None:
            headers.append((b"access-control-allow-origin", allowed))
            if rules.credentials:
                headers.append((b"access-control-allow-credentials", b"true"))
            if rules.expose:
                headers.append((b"access-control-expose-headers", rules.expose))
        if not rules.wildcard:
            headers.append((b"vary", b"Origin"))
        reply.headers = headers
