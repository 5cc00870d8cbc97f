"""The variables a rule sees: facts of the exchange, as plain JSON-shaped data.

``token`` is the verified claims set; ``principal`` the caller as the gateway
established it; ``path``, ``query``, ``headers`` the request's typed
parameters (exactly the values validation produced and the upstream will
receive); ``body`` the parsed request body; ``response`` the upstream's
answer (``status``, ``headers``, ``body``); ``item`` an element of a list or
the object holding a property; ``resource`` what a write pre-check read;
``client_ip`` the client's address (behind trusted proxies, the one they
report; otherwise the socket peer's).

Only the variables a rule names are built.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from apishield.core.client_ip import known_client_ip
from apishield.core.exchange import Exchange

__all__ = ["RULE_VARIABLES", "activation"]

RULE_VARIABLES = frozenset(
    {"token", "principal", "path", "query", "headers", "body", "response", "item", "resource", "client_ip"}
)


def _principal(ex: Exchange) -> dict[str, Any]:
    p = ex.principal
    return {
        "authenticated": p.authenticated,
        "method": p.method,
        "subject": p.subject,
        "client_id": p.client_id,
        "issuer": p.issuer,
        "scopes": sorted(p.scopes | p.api_key_scopes),
        "roles": sorted(p.roles),
        "api_key_id": p.api_key_id,
        "certificate": list(p.certificate),
    }


def _headers(ex: Exchange) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in ex.request.headers}


def _response(ex: Exchange) -> dict[str, Any]:
    reply = ex.reply
    if reply is None:
        return {}
    try:
        body: Any = reply.json() if reply.body else None
    except orjson.JSONDecodeError:
        body = None
    return {
        "status": reply.status,
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in reply.headers},
        "body": body,
    }


def activation(ex: Exchange, names: Iterable[str], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in extra:
            out[name] = extra[name]
        elif name == "token":
            out[name] = ex.principal.claims
        elif name == "principal":
            out[name] = _principal(ex)
        elif name == "path":
            out[name] = ex.params.get("path", ex.path_params)
        elif name == "query":
            out[name] = ex.params.get("query", {})
        elif name == "headers":
            out[name] = _headers(ex)
        elif name == "body":
            out[name] = ex.body_value if ex.has_body_value else None
        elif name == "response":
            out[name] = _response(ex)
        elif name == "client_ip":
            out[name] = known_client_ip(ex)
    return out
