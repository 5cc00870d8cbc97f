"""Authentication: establish who is calling, from the credentials presented.

Credentials: a bearer token in ``Authorization`` (RFC 6750 §2.1), or a
DPoP-bound token under the ``DPoP`` scheme with its proof (RFC 9449 §7), verified
as a JWT access token (RFC 9068, against the issuer named by its ``iss`` and
only that issuer's keys) or, when it is not a JWT and introspection is
configured, by RFC 7662 introspection; and an API key in the configured
header. A token in the query string, two ``Authorization`` headers, or two
tokens in one header are refused as ``invalid_request``.

Order of checks for a token: verified-token cache (then revocation), strict
parsing, issuer selection, signature with the pinned algorithm, claims,
the issued-token registry for providers that require it, revocation. A
failure is a 401 ``invalid_token`` whose description never says which check
failed (the decision record does).

Sender-constrained tokens (RFC 9449): a token whose ``cnf.jkt`` binds it to
a key is accepted only under the ``DPoP`` scheme with a valid proof of that
key (:mod:`apishield.auth.rfc9449`); presented as ``Bearer`` it is refused
(§7.2, no downgrade), and an unbound token is refused under ``DPoP``. The
proof is checked on every request, after the token cache. Replay (§11.1):
each proof's ``jti`` is remembered in this process or, with
``auth.dpop.replay_store: redis://...``, through the ``CheckProofReplay``
effect in a store shared by every instance.

This stage only establishes the principal; :mod:`.authorization` decides
whether that principal may call the operation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from apishield.auth import rfc6750
from apishield.auth.apikeys import APIKeyRecord, parse_key
from apishield.auth.principal import ANONYMOUS, Principal, token_fingerprint
from apishield.auth.rfc7662 import IntrospectionRejected, principal_from_introspection
from apishield.auth.rfc9449 import (
    ProofError,
    ProofPolicy,
    ReplayCache,
    VerifiedProof,
    bound_thumbprint,
    request_url,
    verify_proof,
)
from apishield.auth.state import AuthState, IssuerRuntime
from apishield.core.effects import (
    CheckIssued,
    CheckProofReplay,
    Effect,
    Introspect,
    LookupAPIKey,
    RefreshKeys,
)
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.core.stages.client_certificate import client_certificate
from apishield.problem import Problem

__all__ = ["AuthenticationStage", "token_digest"]

_MISSING: Any = object()


class _Pending(Exception):
    """A stage needs an effect resolved before it can decide."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class AuthenticationStage(Stage):
    name = "authentication"

    def __init__(self, state: AuthState, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.settings = state.settings
        self.realm = state.settings.realm
        self.clock = clock
        keys = state.settings.api_keys
        self.api_key_header = keys.header.lower().encode("latin-1") if keys else None
        self.api_key_query = keys.header if keys and keys.allow_query else None
        dpop = state.settings.dpop
        self.dpop = dpop
        self.schemes = ("bearer", "dpop") if dpop.enabled else ("bearer",)
        self.proof_policy = ProofPolicy(
            algorithms=frozenset(dpop.algorithms), iat_window=dpop.iat_window, clock_skew=dpop.clock_skew
        )
        self.replay = ReplayCache() if dpop.replay_store == "memory" else None

    # -- helpers -------------------------------------------------------------------------------
    def _need(self, ex: Exchange, effect: Effect) -> Any:
        result = ex.resolved.get(effect, _MISSING)
        if result is _MISSING:
            ex.pending = effect
            raise _Pending
        return result

    def _invalid(self, reason: str, description: str = "The access token is invalid.") -> Problem:
        problem = rfc6750.invalid_token(self.realm, description)
        problem.extensions["_reason"] = reason  # kept for the decision record, removed before rendering
        return problem

    def _invalid_dpop(self, reason: str, description: str, error: str = "invalid_dpop_proof") -> Problem:
        problem = rfc6750.invalid_dpop(self.realm, self.dpop.algorithms, error, description)
        problem.extensions["_reason"] = reason
        return problem

    # -- stage ---------------------------------------------------------------------------------
    def on_request_head(self, ex: Exchange) -> None:
        if not self.state.enabled:
            return
        req = ex.request
        scheme = ""
        try:
            if any(name == "access_token" for name, _ in ex.query_pairs):
                raise rfc6750.invalid_request(
                    self.realm, "Access tokens must not be sent in the query string."
                )
            found = rfc6750.access_token(req.header_values(b"authorization"), self.realm, self.schemes)
            if found is not None:
                scheme, token = found
            else:
                token = None
            api_key = self._api_key(ex)
            if token is None and api_key is None:
                cert = client_certificate(ex)
                if cert is None:
                    ex.principal = ANONYMOUS
                    return
                ex.principal = Principal(
                    method="mtls",
                    subject=cert.names[0] if cert.names else None,
                    credentials=frozenset({"mtls"}),
                    certificate=cert.names,
                )
                ex.decide(
                    self.name, "allow", "authenticated by a client certificate", rule=ex.principal.subject
                )
                return
            principal = self._token(ex, token, scheme) if token is not None else None
            key_record = self._key(ex, api_key) if api_key is not None else None
        except _Pending:
            return
        except Problem as problem:
            if scheme == "dpop" and isinstance(problem, rfc6750.InvalidToken):
                # RFC 9449 §7.1: a refused DPoP request is challenged with the DPoP scheme
                problem.headers = [
                    rfc6750.dpop_challenge(self.realm, self.dpop.algorithms, "invalid_token", problem.detail)
                    if name == b"www-authenticate" and not value.startswith(b"DPoP ")
                    else (name, value)
                    for name, value in problem.headers
                ]
            reason = problem.extensions.pop("_reason", None)
            self.reject(ex, problem, rule=reason)
            return
        ex.principal = _combine(principal, key_record)
        cert = client_certificate(ex)
        if cert is not None:
            ex.principal = dataclasses.replace(
                ex.principal, certificate=cert.names, credentials=ex.principal.credentials | {"mtls"}
            )
        p = ex.principal
        ex.decide(
            self.name, "allow", f"authenticated by {p.method}", rule=p.issuer or (p.api_key_id and "api_key")
        )

    def _api_key(self, ex: Exchange) -> str | None:
        if self.api_key_header is None:
            return None
        values = ex.request.header_values(self.api_key_header)
        if len(values) > 1:
            raise rfc6750.invalid_request(self.realm, "Send exactly one API key.")
        if values:
            return values[0].decode("latin-1").strip()
        if self.api_key_query is not None:
            found = [v for k, v in ex.query_pairs if k == self.api_key_query]
            if len(found) == 1:
                return found[0]
        return None

    # -- tokens --------------------------------------------------------------------------------
    def _token(self, ex: Exchange, token: str, scheme: str) -> Principal:
        now = self.clock()
        state = self.state
        if len(token) > self.settings.max_token_bytes:
            raise self._invalid("token larger than auth.max_token_bytes")
        principal = state.token_cache.get(token, now)
        if principal is None:
            if token.count(".") == 2 and state.issuers:
                principal = self._jwt(ex, token, now)
            elif self.settings.introspection:
                principal = self._introspect(ex, token, now)
            else:
                raise self._invalid("not a JWT and no introspection endpoint is configured")
        self._check_revoked(principal, now)
        return self._bind(ex, principal, token, scheme, now)  # after the cache: every request

    # -- sender-constrained tokens (RFC 9449) --------------------------------------------------
    def _bind(self, ex: Exchange, principal: Principal, token: str, scheme: str, now: float) -> Principal:
        cnf = principal.claims.get("cnf")
        x5t = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
        if x5t is not None:  # RFC 8705 §3: only with the certificate the token was issued to
            cert = client_certificate(ex)
            if cert is None or not isinstance(x5t, str) or not hmac.compare_digest(cert.thumbprint, x5t):
                raise self._invalid(
                    "certificate-bound token without its certificate",
                    "The access token is bound to a client certificate that was not presented.",
                )
        jkt = bound_thumbprint(principal.claims)
        if scheme == "bearer":
            if jkt is None:
                return principal
            problem = self._invalid(
                "DPoP-bound token presented as Bearer", "The access token must be presented with DPoP."
            )
            problem.headers.append(rfc6750.dpop_challenge(self.realm, self.dpop.algorithms))
            raise problem
        if jkt is None:
            raise self._invalid_dpop(
                "token not bound to a DPoP key",
                "The access token is not bound to a DPoP key.",
                "invalid_token",
            )
        req = ex.request
        url = request_url(req.scheme, _header_text(req.header(b"host")), req.raw_path, self.dpop.public_url)
        try:
            proof = verify_proof(
                req.header_values(b"dpop"),
                policy=self.proof_policy,
                method=req.method,
                url=url,
                access_token=token,
                now=now,
            )
        except ProofError as exc:
            raise self._invalid_dpop(f"DPoP proof: {exc.description}", exc.description) from None
        if proof.jkt != jkt:
            raise self._invalid_dpop(
                "DPoP proof key does not match cnf.jkt",
                "The DPoP proof's key does not match the access token.",
            )
        if not self._first_use(ex, proof, now):
            raise self._invalid_dpop("DPoP proof replayed", "The DPoP proof was already used.")
        return dataclasses.replace(principal, credentials=principal.credentials | {"dpop"})

    def _first_use(self, ex: Exchange, proof: VerifiedProof, now: float) -> bool:
        """Whether the proof's ``jti`` is new; once decided, the answer holds for this exchange."""
        effect = CheckProofReplay(proof.replay_key, proof.replay_ttl)
        result = ex.resolved.get(effect, _MISSING)
        if result is _MISSING:
            if self.replay is not None:
                result = ex.resolved[effect] = self.replay.first_use(proof.replay_key, proof.replay_ttl, now)
            else:
                result = self._need(ex, effect)
        return result is True

    def _check_revoked(self, principal: Principal, now: float) -> None:
        if self.state.denylist.is_revoked("jti", principal.token_id, now):
            raise self._invalid("token revoked")

    def _jwt(self, ex: Exchange, token: str, now: float) -> Principal:
        from apishield.auth.rfc9068 import InvalidToken, UnknownKey, verify_access_token
        from apishield.jose import JOSEError, decode_unverified_claims, parse_compact_jws

        state = self.state
        try:
            jws = parse_compact_jws(token, max_length=self.settings.max_token_bytes)
            claims = decode_unverified_claims(jws)
        except JOSEError as exc:
            raise self._invalid(exc.reason) from None
        iss = claims.get("iss")
        runtimes: list[IssuerRuntime]
        if isinstance(iss, str) and iss in state.issuers and state.issuers[iss].provider.require_iss:
            runtimes = [state.issuers[iss]]
        elif iss is None and state.issuerless:
            runtimes = state.issuerless
        else:
            raise self._invalid("unknown issuer")
        last: str = "no provider accepted the token"
        for runtime in runtimes:
            refresh = RefreshKeys(runtime.provider.issuer)
            keys = runtime.keys.usable(now)
            try:
                if keys is None:
                    raise UnknownKey("no usable keys")  # same path as a kid we do not know
                verified = verify_access_token(jws, runtime.policy, keys, now)
            except UnknownKey:
                # one refetch per request, and at most one per cooldown however many kids arrive
                if refresh in ex.resolved or not runtime.keys.begin_unknown_kid_fetch(now):
                    last = "unknown key id" if keys is not None else "the issuer's keys are unavailable"
                    continue
                self._need(ex, refresh)  # raises: the stage runs again once the keys are fetched
                continue
            except InvalidToken as exc:
                last = exc.reason
                continue
            if runtime.provider.require_issued_by_gateway:
                digest = token_digest(token)
                if state.issued.get(digest, now) is None and not self._need(ex, CheckIssued(digest)):
                    last = "token was not issued through the gateway"
                    continue
            roles = verified.claims.get("roles")
            principal = Principal(
                method="jwt",
                subject=verified.subject,
                client_id=verified.client_id,
                issuer=verified.issuer or runtime.provider.issuer,
                scopes=verified.scopes,
                roles=frozenset(r for r in roles if isinstance(r, str))
                if isinstance(roles, list)
                else frozenset(),
                token_id=verified.jti or token_fingerprint(token),
                expires_at=verified.expires_at,
                claims=verified.claims,
                credentials=frozenset({"bearer"}),
            )
            if not state.denylist.is_revoked("jti", principal.token_id, now):
                state.token_cache.put(token, principal, verified.expires_at)
            return principal
        raise self._invalid(last)

    def _introspect(self, ex: Exchange, token: str, now: float) -> Principal:
        state = self.state
        cached = state.introspection_cache.get(token, now)
        if isinstance(cached, Principal):
            return cached
        if isinstance(cached, str):
            raise self._invalid(cached)
        last = "inactive token"
        for index, provider in enumerate(self.settings.introspection):
            answer = self._need(ex, Introspect(index, token))
            if answer is None:  # the endpoint failed
                if provider.on_error == "fail_closed":
                    raise self._invalid(
                        "introspection endpoint unavailable", "The access token could not be checked."
                    )
                continue
            try:
                principal = principal_from_introspection(
                    answer, token, now, provider.audience, provider.issuer
                )
            except IntrospectionRejected as exc:
                last = exc.reason
                continue
            until = now + provider.cache_ttl
            if principal.expires_at is not None:
                until = min(until, principal.expires_at)
            state.introspection_cache.put(token, principal, until)
            return principal
        ttl = min(p.negative_cache_ttl for p in self.settings.introspection)
        state.introspection_cache.put(token, last, now + ttl)
        raise self._invalid(last)

    # -- API keys ------------------------------------------------------------------------------
    def _key(self, ex: Exchange, value: str) -> APIKeyRecord:
        now = self.clock()
        parsed = parse_key(value)
        if parsed is None:
            raise self._invalid("malformed API key", "The API key is invalid.")
        key_id, secret = parsed
        record = self.state.api_key_cache.get(key_id, now)
        if record is None:
            record = self._need(ex, LookupAPIKey(key_id))
            if record is not None:
                ttl = self.settings.api_keys.cache_ttl if self.settings.api_keys else 30.0
                self.state.api_key_cache.put(key_id, record, now + ttl)
        if record is None or not record.matches(secret):
            raise self._invalid("unknown API key", "The API key is invalid.")
        if not record.active(now) or self.state.denylist.is_revoked("key", key_id, now):
            raise self._invalid("API key expired or revoked", "The API key is invalid.")
        return record


def _header_text(value: bytes | None) -> str | None:
    return value.decode("latin-1").strip() if value is not None else None


def _combine(principal: Principal | None, key: APIKeyRecord | None) -> Principal:
    if key is None:
        assert principal is not None
        return principal
    credentials = frozenset({"api_key"}) | (principal.credentials if principal else frozenset())
    if principal is None:
        return Principal(
            method="api_key",
            client_id=key.client,
            subject=None,
            api_key_id=key.key_id,
            api_key_scopes=key.scopes,
            credentials=credentials,
        )
    return Principal(
        method=principal.method,
        subject=principal.subject,
        client_id=principal.client_id,
        issuer=principal.issuer,
        scopes=principal.scopes,
        roles=principal.roles,
        token_id=principal.token_id,
        api_key_id=key.key_id,
        api_key_scopes=key.scopes,
        expires_at=principal.expires_at,
        claims=principal.claims,
        credentials=credentials,
    )
