"""The ``auth:`` section of the policy: who may call, with which credentials.

Public contract (issue "access tokens and credentials"): ``auth.jwt[]`` with
``issuer``, ``audience``, ``jwks_uri`` or ``jwks_file``, ``algorithms``,
``leeway``, ``max_lifetime``. Everything else here extends it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apishield.config.duration import Duration

__all__ = [
    "APIKeySettings",
    "AuthPolicy",
    "DPoPSettings",
    "IdentityHeaders",
    "IntrospectionProvider",
    "IssuedTokenRegistry",
    "JWKSCache",
    "JWTProvider",
    "RevocationSettings",
]

ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
HMAC = frozenset({"HS256", "HS384", "HS512"})
_HEADER = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def loopback_or_https(url: str) -> str:
    """``https://`` anywhere; ``http://`` only to a loopback host (no token keys over plaintext)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return url
    raise ValueError("must be an https:// URL (http:// is allowed only for loopback hosts)")


class JWKSCache(_Model):
    min_ttl: Duration = 60.0  # never refetch sooner, whatever Cache-Control says
    max_ttl: Duration = 86_400.0  # refetch at least this often
    default_ttl: Duration = 3_600.0  # when the issuer sends no Cache-Control max-age
    refresh_cooldown: Duration = 30.0  # at most one refetch on an unknown kid per cooldown
    stale_if_error: Duration = 86_400.0  # serve cached keys this long past expiry while the issuer is down
    fetch_timeout: Duration = 5.0


class JWTProvider(_Model):
    issuer: str
    audience: str
    jwks_uri: str | None = None
    jwks_file: str | None = None
    algorithms: Annotated[list[str], Field(min_length=1)]
    leeway: Duration = 30.0
    max_lifetime: Duration | None = 3600.0
    # RFC 9068 requires typ at+jwt; `false` accepts IdPs that send typ JWT (ID tokens stay refused)
    require_typ: bool = True
    jwks_cache: JWKSCache = JWKSCache()
    # legacy HS256/384/512 tokens: the secret comes from a file or the environment, never inline
    hmac_secret_file: str | None = None
    hmac_secret_env: str | None = None
    allow_weak_secret: bool = False
    require_iss: bool = True
    require_aud: bool = True
    required_claims: list[str] | None = None
    # accept only tokens the gateway saw issued by `auth.issued_tokens.login_operation`
    require_issued_by_gateway: bool = False

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg not in ASYMMETRIC | HMAC:
                raise ValueError(
                    f"unsupported algorithm {alg!r}; use one of {', '.join(sorted(ASYMMETRIC | HMAC))}"
                )
        return value

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        return None if value is None else loopback_or_https(value)

    @model_validator(mode="after")
    def _sources(self) -> JWTProvider:
        hmac_algs = set(self.algorithms) & HMAC
        secret = self.hmac_secret_file is not None or self.hmac_secret_env is not None
        keys = self.jwks_uri is not None or self.jwks_file is not None
        if self.hmac_secret_file and self.hmac_secret_env:
            raise ValueError("give hmac_secret_file or hmac_secret_env, not both")
        if self.jwks_uri and self.jwks_file:
            raise ValueError("give jwks_uri or jwks_file, not both")
        if hmac_algs and not secret:
            raise ValueError("HS* algorithms need hmac_secret_file or hmac_secret_env")
        if secret and (set(self.algorithms) - HMAC):
            raise ValueError("a provider with an HMAC secret accepts only HS256/HS384/HS512")
        if secret and len(hmac_algs) != 1:
            raise ValueError("an HMAC secret is used with exactly one algorithm")
        if not secret and not keys:
            raise ValueError("give jwks_uri or jwks_file (or an HMAC secret for legacy tokens)")
        return self


class IntrospectionProvider(_Model):
    """An RFC 7662 introspection endpoint for opaque tokens."""

    endpoint: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    audience: str | None = None  # if set, the introspection answer's aud must contain it
    issuer: str | None = None  # if set, the answer's iss must equal it
    cache_ttl: Duration = 60.0  # positive answers are cached up to min(exp, cache_ttl)
    negative_cache_ttl: Duration = 5.0
    timeout: Duration = 3.0
    on_error: Literal["fail_closed", "fail_open"] = "fail_closed"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return loopback_or_https(value)

    @model_validator(mode="after")
    def _secret(self) -> IntrospectionProvider:
        if (self.client_secret_env is None) == (self.client_secret_file is None):
            raise ValueError("give exactly one of client_secret_env or client_secret_file")
        return self


class APIKeySettings(_Model):
    header: str = "X-API-Key"
    # sqlite:///relative/or/absolute.db (default next to the policy) or postgresql://...
    store: str = "sqlite:///apishield-keys.db"
    allow_query: bool = False
    cache_ttl: Duration = 30.0

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER.fullmatch(value) or value.lower() in ("authorization", "cookie", "host"):
            raise ValueError("must be a header name other than Authorization, Cookie or Host")
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if not (value.startswith("sqlite:///") or value.startswith(("postgresql://", "postgres://"))):
            raise ValueError("must be sqlite:///FILE or postgresql://...")
        return value


class IdentityHeaders(_Model):
    """Headers that carry the verified principal to the upstream (always removed from requests first)."""

    subject: str = "X-Apishield-Subject"
    client: str = "X-Apishield-Client"
    scopes: str = "X-Apishield-Scopes"
    auth_method: str = "X-Apishield-Auth"
    forward_authorization: bool = False
    # further headers the upstream trusts for identity and that callers must never set
    strip: list[str] = Field(default_factory=list)


class IssuedTokenRegistry(_Model):
    login_operation: str
    token_pointer: str = "/token"
    ttl: Duration = 86_400.0
    store: str = "memory"  # or redis://host:port/db, shared by every instance

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be memory or redis://host:port/db")
        return value

    @field_validator("token_pointer")
    @classmethod
    def _pointer(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a JSON pointer starts with '/'")
        return value


class RevocationSettings(_Model):
    # memory (one process), sqlite:///FILE (processes of one machine), redis://host:port/db (many machines)
    store: str = "memory"
    poll_interval: Duration = 0.25

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("must be memory, sqlite:///FILE or redis://host:port/db")
        return value


class DPoPSettings(_Model):
    """DPoP-bound access tokens at the resource server (RFC 9449 §4.3, §7, §11.1)."""

    enabled: bool = True  # accept `Authorization: DPoP`; bound tokens under Bearer are refused regardless
    algorithms: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["ES256", "RS256", "PS256", "EdDSA"]
    )
    iat_window: Duration = 60.0  # a proof older than this (by its iat) is refused
    clock_skew: Duration = 5.0  # a proof's iat may be this far in the future
    # memory (one process) or redis://host:port/db (a jti is accepted once across every instance)
    replay_store: str = "memory"
    # the gateway's external origin (https://api.example.com) for `htu`; default: scheme + Host
    public_url: str | None = None

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for alg in value:
            if alg not in ASYMMETRIC:
                raise ValueError(f"DPoP proofs need an asymmetric algorithm, not {alg!r}")
        return value

    @field_validator("replay_store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be memory or redis://host:port/db")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) origin such as https://api.example.com")
        return value.rstrip("/")


class ClientCertificates(_Model):
    """Client certificates reported by trusted TLS-terminating proxies (RFC 9440)."""

    ca_file: str  # PEM, the CA(s) client certificates must chain to; relative to the policy
    header: str = "Client-Cert"


class AuthPolicy(_Model):
    jwt: list[JWTProvider] = Field(default_factory=list)
    introspection: list[IntrospectionProvider] = Field(default_factory=list)
    api_keys: APIKeySettings | None = None
    identity_headers: IdentityHeaders = IdentityHeaders()
    # operations callable without credentials, besides those with `security: []` in the document
    public_operations: list[str] = Field(default_factory=list)
    max_token_bytes: Annotated[int, Field(ge=256, le=65536)] = 8192
    token_cache_size: Annotated[int, Field(ge=0)] = 10_000
    issued_tokens: IssuedTokenRegistry | None = None
    revocation: RevocationSettings = RevocationSettings()
    dpop: DPoPSettings = DPoPSettings()
    client_certificates: ClientCertificates | None = None
    realm: str = "apishield"

    @model_validator(mode="after")
    def _issuers(self) -> AuthPolicy:
        seen: set[str] = set()
        for provider in self.jwt:
            if provider.issuer in seen:
                raise ValueError(f"issuer {provider.issuer!r} is configured twice")
            seen.add(provider.issuer)
        return self
