"""Authentication state shared by the decision core and the adapter that feeds it.

The core reads it; the adapter's I/O (JWKS fetches, revocation sync,
introspection, key lookups) writes it. It holds no sockets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apishield.auth.apikeys import APIKeyRecord
from apishield.auth.jwks import KeySetState
from apishield.auth.principal import Principal
from apishield.auth.revocation import Denylist
from apishield.auth.token_cache import TokenCache
from apishield.config.auth import AuthPolicy, JWTProvider

__all__ = ["AuthState", "IssuerRuntime", "build_auth_state"]

DEFAULT_CLAIMS = frozenset({"iss", "exp", "aud", "sub", "client_id", "iat", "jti"})
_HASH_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


class AuthConfigError(ValueError):
    pass


@dataclass
class IssuerRuntime:
    provider: JWTProvider
    policy: Any  # apishield.auth.rfc9068.AccessTokenPolicy
    keys: KeySetState


@dataclass
class AuthState:
    settings: AuthPolicy
    issuers: dict[str, IssuerRuntime] = field(default_factory=dict)
    issuerless: list[IssuerRuntime] = field(default_factory=list)  # legacy providers without iss
    token_cache: TokenCache[Principal] = field(default_factory=lambda: TokenCache(10_000))
    introspection_cache: TokenCache[Principal | str] = field(default_factory=lambda: TokenCache(10_000))
    api_key_cache: TokenCache[APIKeyRecord | None] = field(default_factory=lambda: TokenCache(10_000))
    denylist: Denylist = field(default_factory=Denylist)
    issued: TokenCache[bool] = field(default_factory=lambda: TokenCache(100_000))
    warnings: list[str] = field(default_factory=list)
    client_certificates: Any = None  # apishield.auth.rfc9440.ClientCertificateVerifier

    @property
    def enabled(self) -> bool:
        return bool(
            self.issuers
            or self.issuerless
            or self.settings.introspection
            or self.settings.api_keys
            or self.client_certificates is not None
        )


def _read_secret(provider: JWTProvider, base_dir: Path) -> bytes:
    if provider.hmac_secret_env is not None:
        value = os.environ.get(provider.hmac_secret_env)
        if value is None:
            raise AuthConfigError(f"environment variable {provider.hmac_secret_env} is not set")
        return value.encode()
    assert provider.hmac_secret_file is not None
    path = Path(provider.hmac_secret_file)
    path = path if path.is_absolute() else base_dir / path
    try:
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise AuthConfigError(f"cannot read hmac_secret_file: {exc.strerror}") from None


def build_auth_state(settings: AuthPolicy, base_dir: Path) -> AuthState:
    """Compile the ``auth:`` policy; raises :class:`AuthConfigError` for unusable settings."""
    from apishield.auth.rfc9068 import AccessTokenPolicy
    from apishield.jose import JOSEError, import_hmac_secret, import_jwks
    from apishield.jose.rfc7517 import KeySet

    state = AuthState(
        settings=settings,
        token_cache=TokenCache(settings.token_cache_size),
        introspection_cache=TokenCache(settings.token_cache_size),
        api_key_cache=TokenCache(settings.token_cache_size),
    )
    if settings.client_certificates is not None:
        from apishield.auth.rfc9440 import CertificateError, ClientCertificateVerifier

        ca = Path(settings.client_certificates.ca_file)
        try:
            state.client_certificates = ClientCertificateVerifier(ca if ca.is_absolute() else base_dir / ca)
        except CertificateError as exc:
            raise AuthConfigError(f"client_certificates: {exc.reason}") from None
    for provider in settings.jwt:
        claims = (
            set(provider.required_claims) if provider.required_claims is not None else set(DEFAULT_CLAIMS)
        )
        if not provider.require_iss:
            claims.discard("iss")
        if not provider.require_aud:
            claims.discard("aud")
        policy = AccessTokenPolicy(
            issuer=provider.issuer,
            audience=provider.audience,
            algorithms=frozenset(provider.algorithms),
            leeway=provider.leeway,
            max_lifetime=provider.max_lifetime,
            require_typ=provider.require_typ,
            require_iss=provider.require_iss,
            require_aud=provider.require_aud,
            required_claims=frozenset(claims),
        )
        cache = provider.jwks_cache
        keys = KeySetState(
            provider.issuer,
            cache.min_ttl,
            cache.max_ttl,
            cache.default_ttl,
            cache.refresh_cooldown,
            cache.stale_if_error,
        )
        if provider.hmac_secret_env or provider.hmac_secret_file:
            alg = provider.algorithms[0]
            secret = _read_secret(provider, base_dir)
            if len(secret) < _HASH_BYTES[alg] and provider.allow_weak_secret:
                state.warnings.append(
                    f"issuer {provider.issuer!r}: the {alg} secret is shorter than {_HASH_BYTES[alg]} bytes "
                    "(allow_weak_secret: true); it can be brute-forced"
                )
            try:
                key = import_hmac_secret(secret, alg, allow_weak=provider.allow_weak_secret)
            except JOSEError as exc:
                raise AuthConfigError(f"issuer {provider.issuer!r}: {exc.reason}") from None
            keys.fetched(KeySet.single(key), None, 0.0)
            keys.fresh_until = float("inf")
        elif provider.jwks_file:
            import orjson

            path = Path(provider.jwks_file)
            path = path if path.is_absolute() else base_dir / path
            try:
                doc = orjson.loads(path.read_bytes())
                keyset = import_jwks(doc, allowed_algs=frozenset(provider.algorithms))
            except OSError as exc:
                raise AuthConfigError(
                    f"issuer {provider.issuer!r}: cannot read jwks_file: {exc.strerror}"
                ) from None
            except (orjson.JSONDecodeError, JOSEError) as exc:
                raise AuthConfigError(f"issuer {provider.issuer!r}: jwks_file: {exc}") from None
            keys.fetched(keyset, None, 0.0)
            keys.fresh_until = float("inf")
        runtime = IssuerRuntime(provider, policy, keys)
        if provider.require_iss:
            state.issuers[provider.issuer] = runtime
        else:
            state.issuerless.append(runtime)
            state.issuers.setdefault(provider.issuer, runtime)
        relaxed = [k for k in ("require_iss", "require_aud", "require_typ") if not getattr(provider, k)]
        if relaxed:
            state.warnings.append(
                f"issuer {provider.issuer!r}: relaxed token checks: {', '.join(relaxed)}: false"
            )
    return state
