"""DPoP proofs at the token endpoint (RFC 9449 §4.3, §5, §6.1, §11.1).

A client that sends a ``DPoP`` header with its token request gets a
DPoP-bound access token: ``token_type: DPoP`` and ``cnf.jkt``, the RFC 7638
thumbprint of the proof's public key. The proof is checked as §4.3 lists:

1. exactly one ``DPoP`` header (§4.3 step 1), a well-formed compact JWS
   (step 2) parsed by :func:`apishield.jose.parse_compact_jws` with ``jwk``
   as the only extra header parameter;
2. ``typ`` is ``dpop+jwt`` (step 4); ``alg`` is asymmetric and configured
   (step 5); the ``jwk`` is a public key (step 7) vetted and bound to that
   one algorithm by :func:`apishield.jose.import_jwk`, and the signature
   verifies with it (step 6);
3. the claims ``jti``, ``htm``, ``htu``, ``iat`` are present (step 3), ``htm``
   is ``POST`` (step 8), ``htu`` is the token endpoint's URL without query and
   fragment, after RFC 3986 §6.2.2-6.2.3 normalisation (step 9), ``iat`` is
   within the configured window (step 11);
4. ``jti`` was not seen before within that window (§11.1). The replay cache is
   in memory: with several issuer instances a proof could be replayed once per
   instance within ``max_age``.

Server nonces (§8, ``DPoP-Nonce``) are not issued. Errors are
``invalid_dpop_proof`` (§5) with fixed descriptions.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from apishield.auth.replay import ReplayCache
from apishield.jose import (
    JOSEError,
    import_jwk,
    media_type,
    parse_claims,
    parse_compact_jws,
    verify_signature,
)
from apishield.jose.rfc7515 import DEFAULT_HEADER_PARAMS
from apishield.jose.rfc7519 import numeric_date

__all__ = ["DPoPError", "DPoPVerifier", "normalize_htu"]

MAX_PROOF_LENGTH = 4096
_PROOF_HEADER_PARAMS = DEFAULT_HEADER_PARAMS | {"jwk"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DPoPError(Exception):
    """The proof is unacceptable; ``description`` is fixed text safe to return."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def normalize_htu(url: str) -> str:
    """Scheme and host in lower case, default port dropped, no query or fragment (RFC 3986 §6.2.2-3)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise DPoPError("htu is not a valid URL") from None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


class DPoPVerifier:
    def __init__(self, *, algorithms: frozenset[str], max_age: float, leeway: float) -> None:
        self.algorithms = algorithms
        self.max_age = max_age
        self.leeway = leeway
        self._replay = ReplayCache()

    def verify(self, headers: list[str], *, method: str, url: str, now: float) -> str:
        """Check the request's DPoP header values; returns the key's RFC 7638 thumbprint (``jkt``)."""
        if len(headers) != 1:
            raise DPoPError("send exactly one DPoP header")
        try:
            jws = parse_compact_jws(
                headers[0], max_length=MAX_PROOF_LENGTH, allowed_header_params=_PROOF_HEADER_PARAMS
            )
        except JOSEError as exc:
            raise DPoPError(f"malformed proof: {exc.reason}") from None
        header = jws.header
        typ = header.get("typ")
        if not isinstance(typ, str) or media_type(typ) != "application/dpop+jwt":
            raise DPoPError("the proof's typ must be dpop+jwt")
        alg = header["alg"]
        if alg not in self.algorithms:
            raise DPoPError("the proof's alg is not accepted")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DPoPError("the proof carries no public key (jwk)")
        try:
            key = import_jwk(jwk, allowed_algs=frozenset({alg}), default_alg=alg)
            if key.spec.symmetric:
                raise DPoPError("the proof's key must be asymmetric")
            verify_signature(jws, key)
            claims = parse_claims(jws.payload)
        except JOSEError as exc:
            raise DPoPError(f"proof rejected: {exc.reason}") from None
        jti, htm, htu = claims.get("jti"), claims.get("htm"), claims.get("htu")
        if not isinstance(jti, str) or not 16 <= len(jti) <= 256:
            raise DPoPError("the proof needs a jti of 16 to 256 characters")
        if htm != method:
            raise DPoPError("the proof's htm does not match the request method")
        if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
            raise DPoPError("the proof's htu does not match the token endpoint")
        if "iat" not in claims:
            raise DPoPError("the proof has no iat")
        try:
            iat = numeric_date(claims["iat"], "iat")
        except JOSEError as exc:
            raise DPoPError(exc.reason) from None
        if iat > now + self.leeway or iat < now - self.max_age:
            raise DPoPError("the proof's iat is outside the accepted window")
        if not self._replay.first_use(
            key.thumbprint + ":" + jti, iat + self.max_age + self.leeway - now, now
        ):
            raise DPoPError("the proof was already used")
        return key.thumbprint
