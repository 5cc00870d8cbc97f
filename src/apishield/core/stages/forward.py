"""Preparing the upstream request: the last decode stage.

The upstream receives a request rebuilt from what the gateway validated:

* the target is re-encoded from the decoded path segments and query pairs,
  so the upstream cannot read a different path or parameter than the one
  that was checked (:mod:`apishield.core.normalize`);
* hop-by-hop fields (RFC 9110 §7.6.1: ``Connection`` and the fields it names,
  ``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Transfer-Encoding``,
  ``Upgrade``, ``Proxy-Authorization``...) are removed; framing is the
  client's business, not the caller's;
* client-supplied ``Forwarded`` and ``X-Forwarded-*`` fields are removed and
  set again (RFC 7239 §4): a caller must not choose the IP address the
  upstream believes. When the socket peer is a trusted proxy
  (``trusted_proxies``), the chain it vouches for (the client, the trusted
  hops, the peer: :mod:`apishield.core.client_ip`) is sent on; otherwise
  only the peer;
* ``X-Request-Id`` carries the gateway's id for correlation.
"""

from __future__ import annotations

import re

from apishield.config.auth import IdentityHeaders
from apishield.core.client_ip import TrustedProxies, client_address
from apishield.core.exchange import Exchange, Headers
from apishield.core.normalize import encode_query, encode_segment
from apishield.core.stage import Stage

__all__ = ["HOP_BY_HOP", "ForwardStage", "strip_hop_by_hop"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_DROP_REQUEST = HOP_BY_HOP | {
    b"content-length",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-forwarded-port",
    b"x-real-ip",
    b"x-request-id",
    # proof of possession is checked here and means nothing to the upstream (RFC 9449 §7),
    # and a client certificate header is only ever set by the gateway's own trusted proxies
    b"dpop",
    b"client-cert",
    b"client-cert-chain",
}


def strip_hop_by_hop(headers: Headers, extra: frozenset[bytes] = frozenset()) -> Headers:
    named: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":
            named.update(t.strip().lower() for t in v.split(b","))
    drop = HOP_BY_HOP | extra | named
    return [(k, v) for k, v in headers if k not in drop]


class ForwardStage(Stage):
    name = "forward"

    def __init__(
        self,
        preserve_host: bool,
        identity: IdentityHeaders | None = None,
        trusted: TrustedProxies | None = None,
    ) -> None:
        self.preserve_host = preserve_host
        self.trusted = trusted or TrustedProxies()
        self.identity = identity or IdentityHeaders()
        names = [self.identity.subject, self.identity.client, self.identity.scopes, self.identity.auth_method]
        drop = {n.lower().encode("latin-1") for n in [*names, *self.identity.strip]}
        if not self.identity.forward_authorization:
            drop.add(b"authorization")
        self.drop = _DROP_REQUEST | frozenset(drop)
        self.names = [n.lower().encode("latin-1") for n in names]

    def on_request_head(self, ex: Exchange) -> None:
        req = ex.request
        path = "/" + "/".join(encode_segment(s) for s in ex.segments)
        target = path + ("?" + encode_query(ex.query_pairs) if ex.query_pairs else "")
        ex.forward_target = target.encode("ascii")
        drop = self.drop if self.preserve_host else self.drop | {b"host"}
        headers = strip_hop_by_hop(req.headers, drop)
        principal = ex.principal
        if principal.authenticated:
            subject, client, scopes, method = self.names
            if principal.subject is not None:
                headers.append((subject, _header_value(principal.subject)))
            if principal.client_id is not None:
                headers.append((client, _header_value(principal.client_id)))
            granted = principal.scopes | principal.api_key_scopes
            headers.append((scopes, _header_value(" ".join(sorted(granted)))))
            headers.append((method, principal.method.encode("ascii")))
        chain = client_address(ex, self.trusted).chain or ("unknown",)
        host = req.header(b"host") or b""
        nodes = [f'"[{ip}]"' if ":" in ip else ip for ip in chain]
        forwarded = ", ".join(f"for={node}" for node in nodes) + f";proto={req.scheme}"
        if host:
            forwarded += ";host=" + _quote_token(host.decode("latin-1"))
            headers.append((b"x-forwarded-host", host))
        headers += [
            (b"forwarded", forwarded.encode("latin-1")),
            (b"x-forwarded-for", ", ".join(chain).encode("latin-1")),
            (b"x-forwarded-proto", req.scheme.encode("latin-1")),
            (b"x-request-id", ex.request_id.encode("ascii")),
        ]
        ex.forward_headers = headers


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_value(value: str) -> bytes:
    """A claim as a header value: control characters cannot reach the upstream's parser."""
    if _CONTROL.search(value):
        value = _CONTROL.sub("?", value)
    return value.encode("utf-8")


def _quote_token(value: str) -> str:
    if all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
