"""The verified caller of a request."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ANONYMOUS", "AuthMethod", "Principal", "token_fingerprint"]

AuthMethod = Literal[
    "anonymous", "jwt", "introspection", "api_key", "service", "mtls"
]  # service: the gateway itself


def token_fingerprint(token: str) -> str:
    """A short, non-reversible identifier of a credential, safe for logs and audit events."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by the authentication stage."""

    method: AuthMethod
    subject: str | None = None
    client_id: str | None = None
    issuer: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    token_id: str | None = None  # jti, or a fingerprint for opaque tokens
    api_key_id: str | None = None
    api_key_scopes: frozenset[str] = frozenset()
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    # credentials presented, by security scheme type: "bearer", "api_key", "mtls"
    credentials: frozenset[str] = frozenset()
    # names (URI SANs, then DNS SANs) of a verified client certificate (RFC 9440)
    certificate: tuple[str, ...] = ()

    @property
    def authenticated(self) -> bool:
        return self.method != "anonymous"


ANONYMOUS = Principal(method="anonymous")
