"""Finding a presented token for revocation and introspection (RFC 7009 §2.1, RFC 7662 §2.1).

Both endpoints receive "a token", perhaps with a ``token_type_hint`` that the
server "MAY ignore" and, when the token is not found under it, "MUST extend
its search across all of its supported token types" (RFC 7009 §2.1). So
every token is tried as both kinds:

* an access token is verified like a resource server would (this is the
  issuer's own verification path): :func:`apishield.jose.parse_compact_jws`
  and :func:`apishield.auth.rfc9068.verify_access_token` with the issuer's
  published keys, its exact ``iss`` and ``aud``, ``typ: at+jwt`` and no
  leeway, so the whole JWT attack catalogue applies. A token that fails is
  simply "not found": introspection answers ``{"active": false}``,
  revocation answers 200;
* a refresh token is looked up by its SHA-256.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from apishield.auth.rfc9068 import AccessTokenPolicy, InvalidToken, verify_access_token
from apishield.issuer.keys import KeyRing
from apishield.issuer.models import ClientRecord, hash_token
from apishield.issuer.store import IssuerStore
from apishield.jose import JOSEError, KeySet, import_jwks, parse_compact_jws

__all__ = ["FoundToken", "TokenFinder"]

_REGISTERED = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "cnf"})


@dataclass
class FoundToken:
    """A token this issuer issued, with what introspection may tell about it."""

    kind: Literal["access_token", "refresh_token"]
    client_id: str
    username: str | None
    scope: str
    expires_at: float
    issued_at: float
    now: float
    revoked: bool
    jti: str | None = None
    family_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    # -- authlib TokenMixin ---------------------------------------------------------------------

    def check_client(self, client: ClientRecord) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return self.expires_at <= self.now

    def is_revoked(self) -> bool:
        return self.revoked

    def get_scope(self) -> str:
        return self.scope


class TokenFinder:
    def __init__(
        self, issuer: str, audience: str, lifetime: float, keys: KeyRing, store: IssuerStore
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.keys = keys
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[tuple[str, ...], KeySet, AccessTokenPolicy] | None = None

    def _keyset(self) -> tuple[KeySet, AccessTokenPolicy]:
        jwks = self.keys.jwks()
        kids = tuple(k["kid"] for k in jwks["keys"])
        cached = self._cached
        if cached is None or cached[0] != kids:
            algs = frozenset(k["alg"] for k in jwks["keys"])
            keyset = import_jwks(jwks, allowed_algs=algs)
            policy = AccessTokenPolicy(
                issuer=self.issuer,
                audience=self.audience,
                algorithms=algs,
                leeway=0.0,
                max_lifetime=self.lifetime,
            )
            with self._lock:
                self._cached = cached = (kids, keyset, policy)
        return cached[1], cached[2]

    def access_token(self, token: str, now: float) -> FoundToken | None:
        if token.count(".") != 2:
            return None
        keyset, policy = self._keyset()
        try:
            verified = verify_access_token(parse_compact_jws(token), policy, keyset, now)
        except (JOSEError, InvalidToken):
            return None
        if verified.jti is None or verified.client_id is None:
            return None
        record = self.store.get_access_token(verified.jti)
        claims = verified.claims
        return FoundToken(
            kind="access_token",
            client_id=verified.client_id,
            username=record.username if record is not None else None,
            scope=claims.get("scope", ""),
            expires_at=verified.expires_at,
            issued_at=verified.issued_at or 0.0,
            now=now,
            # a validly signed token this store never recorded is not vouched for
            revoked=record is None or record.revoked_at is not None,
            jti=verified.jti,
            family_id=record.family_id if record is not None else None,
            claims=claims,
        )

    def refresh_token(self, token: str, now: float) -> FoundToken | None:
        if not token or len(token) > 512:
            return None
        record = self.store.get_refresh_token(hash_token(token))
        if record is None:
            return None
        return FoundToken(
            kind="refresh_token",
            client_id=record.client_id,
            username=record.username,
            scope=record.scope,
            expires_at=record.expires_at,
            issued_at=record.issued_at,
            now=now,
            revoked=record.revoked_at is not None or record.used_at is not None,
            family_id=record.family_id,
        )

    def find(self, token: str, hint: str | None, now: float) -> FoundToken | None:
        order = (
            (self.refresh_token, self.access_token)
            if hint == "refresh_token"
            else (self.access_token, self.refresh_token)
        )
        for lookup in order:
            found = lookup(token, now)
            if found is not None:
                return found
        return None

    @staticmethod
    def introspection(found: FoundToken, issuer: str) -> dict[str, Any]:
        """RFC 7662 §2.2 members of an active token (RFC 9449 §6.2 ``cnf`` for a DPoP-bound one)."""
        body: dict[str, Any] = {
            "active": True,
            "scope": found.scope,
            "client_id": found.client_id,
            "exp": int(found.expires_at),
            "iat": int(found.issued_at),
            "iss": issuer,
        }
        if found.kind == "refresh_token":
            body.update(token_type="refresh_token", sub=found.username, username=found.username)
            return body
        claims = found.claims
        body.update(sub=claims["sub"], aud=claims["aud"], jti=found.jti)
        body["token_type"] = "DPoP" if isinstance(claims.get("cnf"), dict) else "Bearer"
        if "cnf" in claims:
            body["cnf"] = claims["cnf"]
        if found.username is not None:
            body["username"] = found.username
        body.update((k, v) for k, v in claims.items() if k not in _REGISTERED and k not in body)
        return body
