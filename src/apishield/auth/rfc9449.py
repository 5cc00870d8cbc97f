"""DPoP proofs at the resource server (RFC 9449 §4.3, §7, §9, §11.1).

A DPoP-bound access token carries ``cnf.jkt``, the RFC 7638 thumbprint of
the client's key (§6.1). The client presents it as
``Authorization: DPoP <token>`` together with a fresh proof in the ``DPoP``
header (§7.1). :func:`verify_proof` applies §4.3 to that proof:

1. exactly one ``DPoP`` header (step 1), holding one well-formed compact JWS
   (step 2) whose header may carry ``jwk`` (the access-token path refuses it);
2. ``typ`` is ``dpop+jwt`` (step 4); ``alg`` is in the configured asymmetric
   allowlist (step 5; ``none`` and MACs never are); the ``jwk`` holds no private
   member (step 7) and the signature verifies with it (step 6);
3. ``jti``, ``htm``, ``htu``, ``iat`` and ``ath`` are present (step 3);
   ``htm`` equals the method (step 8); ``htu`` equals the request URI without
   query and fragment after RFC 3986 §6.2.2-6.2.3 normalisation (step 9,
   :func:`apishield.issuer.rfc9449.normalize_htu`); ``iat`` lies within the
   window (step 11); ``ath`` is base64url(SHA-256(access token)) (step 12, §4.2).

The caller then compares the proof key's thumbprint with the token's
``cnf.jkt`` (step 12) and asks the replay store whether ``jti`` was seen
within the window (§11.1): :class:`ReplayCache` in one process, or the
``CheckProofReplay`` effect for a store shared by every instance.

The request URI (``htu``) is rebuilt from trusted facts (:func:`request_url`):
the configured public origin when the gateway sits behind a proxy, else the
connection's scheme and the ``Host`` header; never ``X-Forwarded-*``.

Refusals are :class:`ProofError` with fixed descriptions (RFC 9449 §7.1
``invalid_dpop_proof``); they never echo proof content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from apishield.auth.replay import ReplayCache
from apishield.issuer.rfc9449 import DPoPError, normalize_htu
from apishield.jose import (
    JOSEError,
    import_jwk,
    media_type,
    parse_claims,
    parse_compact_jws,
    verify_signature,
)
from apishield.jose.b64 import b64url_encode
from apishield.jose.rfc7515 import DEFAULT_HEADER_PARAMS
from apishield.jose.rfc7519 import numeric_date

__all__ = [
    "ProofError",
    "ProofPolicy",
    "ReplayCache",
    "VerifiedProof",
    "access_token_hash",
    "bound_thumbprint",
    "request_url",
    "verify_proof",
]

MAX_PROOF_LENGTH = 4096
MIN_JTI, MAX_JTI = 16, 256  # 96 bits of randomness is 16 base64url characters (§4.2)
_PROOF_HEADER_PARAMS = DEFAULT_HEADER_PARAMS | {"jwk"}


class ProofError(Exception):
    """The proof is unacceptable; ``description`` is fixed text safe to return."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True, slots=True)
class ProofPolicy:
    algorithms: frozenset[str]
    iat_window: float  # how old a proof may be
    clock_skew: float  # how far in the future its iat may be


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    jkt: str  # RFC 7638 thumbprint of the proof key
    replay_key: str  # SHA-256 of key and jti: what the replay store remembers
    replay_ttl: float  # seconds the jti must be remembered


def access_token_hash(token: str) -> str:
    """``ath`` (§4.2): base64url of the SHA-256 of the ASCII access token."""
    return b64url_encode(hashlib.sha256(token.encode("ascii", "surrogateescape")).digest())


def bound_thumbprint(claims: dict[str, Any]) -> str | None:
    """The token's ``cnf.jkt`` (§6.1), or None for a token not bound to a DPoP key."""
    cnf = claims.get("cnf")
    if isinstance(cnf, dict):
        jkt = cnf.get("jkt")
        if jkt is not None:
            return jkt if isinstance(jkt, str) else ""  # a malformed binding never matches
    return None


def request_url(scheme: str, host: str | None, raw_path: bytes, public_url: str | None) -> str:
    """The URI the client addressed, for ``htu``: public origin (or scheme + Host) and the path."""
    path = raw_path.decode("latin-1") or "/"
    if public_url is not None:
        return public_url + path
    return f"{scheme}://{host or ''}{path}"


def verify_proof(
    values: list[bytes], *, policy: ProofPolicy, method: str, url: str, access_token: str, now: float
) -> VerifiedProof:
    """Check the ``DPoP`` header values for a request carrying ``access_token`` (§4.3)."""
    if len(values) != 1:
        raise ProofError("Send exactly one DPoP proof.")
    try:
        jws = parse_compact_jws(
            values[0].decode("latin-1").strip(),
            max_length=MAX_PROOF_LENGTH,
            allowed_header_params=_PROOF_HEADER_PARAMS,
        )
    except JOSEError:
        raise ProofError("The DPoP proof is malformed.") from None
    header = jws.header
    typ = header.get("typ")
    if not isinstance(typ, str) or media_type(typ) != "application/dpop+jwt":
        raise ProofError("The DPoP proof must have typ dpop+jwt.")
    alg = header.get("alg")
    if alg not in policy.algorithms:
        raise ProofError("The DPoP proof's algorithm is not accepted.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise ProofError("The DPoP proof carries no public key.")
    try:
        key = import_jwk(jwk, allowed_algs=frozenset({alg}), default_alg=alg)
    except JOSEError:
        raise ProofError("The DPoP proof's key is not an acceptable public key.") from None
    if key.spec.symmetric:
        raise ProofError("The DPoP proof's key is not an acceptable public key.")
    try:
        verify_signature(jws, key)
        claims = parse_claims(jws.payload)
    except JOSEError:
        raise ProofError("The DPoP proof's signature is invalid.") from None
    jti, htm, htu, ath = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("ath")
    if not isinstance(jti, str) or not MIN_JTI <= len(jti) <= MAX_JTI:
        raise ProofError("The DPoP proof needs a jti of 16 to 256 characters.")
    if htm != method:
        raise ProofError("The DPoP proof's htm does not match the request method.")
    try:
        if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
            raise ProofError("The DPoP proof's htu does not match the request URI.")
    except DPoPError:
        raise ProofError("The DPoP proof's htu does not match the request URI.") from None
    if "iat" not in claims:
        raise ProofError("The DPoP proof has no iat.")
    try:
        iat = numeric_date(claims["iat"], "iat")
    except JOSEError:
        raise ProofError("The DPoP proof's iat is invalid.") from None
    if iat > now + policy.clock_skew or iat < now - policy.iat_window:
        raise ProofError("The DPoP proof's iat is outside the accepted window.")
    if not isinstance(ath, str) or ath != access_token_hash(access_token):
        raise ProofError("The DPoP proof's ath does not match the access token.")
    replay_key = hashlib.sha256(f"{key.thumbprint}:{jti}".encode()).hexdigest()
    # iat <= now + skew, so the proof stops being acceptable within window + 2 * skew from now; a
    # constant (not derived from now) keeps the replay question identical if the stage runs again
    ttl = policy.iat_window + 2 * policy.clock_skew
    return VerifiedProof(jkt=key.thumbprint, replay_key=replay_key, replay_ttl=ttl)
