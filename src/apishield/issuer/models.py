"""What the issuer stores: clients, users, authorization codes, refresh tokens, issued access tokens.

The records carry the small interface Authlib's grants call on them
(``ClientMixin``, ``AuthorizationCodeMixin``, ``TokenMixin`` of RFC 6749),
so the grants in :mod:`apishield.issuer.grants` work on them directly.

* Clients (RFC 6749 §2.1): ``public`` clients have no secret and may only use
  ``authorization_code`` and ``refresh_token``; ``confidential`` clients
  authenticate with ``client_secret_basic`` or ``client_secret_post``
  (§2.3.1). Redirect URIs are compared as exact strings (RFC 9700 §2.1).
* Codes and refresh tokens are random 256-bit strings stored as their
  SHA-256: they are unguessable, so a fast hash suffices and the database
  never holds a usable credential. Every refresh token belongs to a *family*
  (one authorization grant) so that reuse revokes all of it (RFC 9700 §4.14.2).
* Access tokens are JWTs and are not stored; their ``jti``, owner, family
  and expiry are, so that a revoked grant, client or user takes its live
  tokens with it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authlib.oauth2.rfc6749.util import scope_to_list  # type: ignore[import-untyped, unused-ignore]

from apishield.issuer.passwords import SecretVerifier

__all__ = [
    "AccessTokenRecord",
    "ClientRecord",
    "CodeRecord",
    "RefreshTokenRecord",
    "UserRecord",
    "hash_token",
    "new_token",
]

ClientType = Literal["public", "confidential"]
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def new_token() -> str:
    """An opaque code or refresh token: 256 random bits, base64url."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    name: str
    client_type: ClientType
    secret_hash: str | None
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    introspect_all: bool = False  # a resource server: may introspect every client's tokens
    created_at: float = 0.0
    revoked_at: float | None = None
    # set on the records the server hands to Authlib, so they can check a presented secret
    verifier: SecretVerifier | None = field(default=None, compare=False, repr=False)

    @property
    def public(self) -> bool:
        return self.client_type == "public"

    # -- authlib ClientMixin -------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: the parameter may be omitted only when one URI is registered
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scope if the client may have all of it (else None: invalid_scope).

        No scope requested means every scope the client is allowed (RFC 6749 §3.3 default).
        """
        if not scope:
            return " ".join(self.scopes)
        requested = scope_to_list(scope)
        if not requested or any(s not in self.scopes for s in requested):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_client_secret(self, client_secret: str) -> bool:
        if self.public or self.secret_hash is None or self.verifier is None:
            return False
        return self.verifier.verify(self.client_id, client_secret, self.secret_hash)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    disabled_at: float | None = None

    def get_user_id(self) -> str:
        return self.username


@dataclass(frozen=True)
class CodeRecord:
    code_hash: str
    client_id: str
    username: str
    redirect_uri: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    family_id: str
    auth_time: float
    expires_at: float
    used_at: float | None = None

    # -- authlib AuthorizationCodeMixin --------------------------------------------------------

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshTokenRecord:
    token_hash: str
    family_id: str
    client_id: str
    username: str
    scope: str
    issued_at: float
    expires_at: float
    auth_time: float | None = None
    jkt: str | None = None  # RFC 9449 §5: a public client's refresh token is bound to its DPoP key
    used_at: float | None = None
    revoked_at: float | None = None

    def check_client(self, client: ClientRecord) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class AccessTokenRecord:
    jti: str
    client_id: str
    username: str | None
    family_id: str | None
    expires_at: float
    revoked_at: float | None = None
