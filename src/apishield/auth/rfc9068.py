"""JWT access tokens at the resource server (RFC 9068 §2 and §4, RFC 8725 §3).

The gateway is the resource server. For one issuer it holds an
:class:`AccessTokenPolicy` and that issuer's :class:`~apishield.jose.KeySet`;
:func:`verify_access_token` applies RFC 9068 §4 to a parsed compact JWS:

1. ``typ`` (§4 step 1, RFC 8725 §3.11): ``at+jwt`` or ``application/at+jwt``,
   compared as a media type (case-insensitive; ``application/`` implied, RFC
   7515 §4.1.9); "reject tokens carrying any other value". With
   ``require_typ=False`` (identity providers that emit ``typ: JWT``) ``JWT``
   and no ``typ`` are accepted too, but never another JWT kind
   (``dpop+jwt``, ``logout+jwt``, ``secevent+jwt``, ...), and tokens with ID
   token claims (``nonce``, ``at_hash``) or Security Event Token ``events``
   are refused: RFC 8725 §3.12 asks for mutually exclusive validation rules.
2. the header ``alg`` is one of the policy's algorithms (RFC 9068 §4 step 5,
   RFC 8725 §3.1); the key is chosen by ``kid`` in *this issuer's* key set
   only (RFC 8725 §3.8), so a key of another issuer never verifies a token
   claiming this issuer. An unknown ``kid`` raises :class:`UnknownKey` so the
   caller may refetch the issuer's JWKS once (with a cooldown) and retry.
3. the signature, with the algorithm pinned by the key
   (:func:`apishield.jose.verify_signature`).
4. the claims set: a JSON object without duplicate names; claim types
   (``iss``, ``sub``, ``client_id``, ``jti`` strings; ``aud`` a string or an
   array of strings; ``exp``, ``nbf``, ``iat``, ``auth_time`` NumericDates;
   ``scope`` a space-delimited string of scope tokens, §2.2.3.1 and RFC 6749
   §3.3, never an array; ``cnf`` an object); the required claims (§2.2: ``iss``,
   ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``; ``exp`` is
   always required);
5. ``iss`` equals the policy's issuer exactly (§4 step 3; no normalisation),
   ``aud`` contains the policy's audience (§4 step 4, RFC 7519 §4.1.3);
6. time (RFC 7519 §4.1.4-6): ``now < exp + leeway`` (so ``now == exp`` with no
   leeway is expired), ``nbf <= now + leeway``, ``iat <= now + leeway``, and a
   lifetime of at most ``max_lifetime``: ``exp - iat`` when ``iat`` is present,
   else ``exp - now`` (plus leeway).

Every refusal is :class:`InvalidToken` with a fixed, safe ``reason`` (RFC 6750
§3.1 ``invalid_token``): it never contains the token, a claim value or the kid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apishield.jose.errors import JOSEError
from apishield.jose.rfc7515 import CompactJWS, media_type
from apishield.jose.rfc7517 import KeySet
from apishield.jose.rfc7518 import ALGORITHMS
from apishield.jose.rfc7519 import decode_unverified_claims, numeric_date, parse_claims
from apishield.jose.rfc8725 import verify_signature

__all__ = [
    "DEFAULT_REQUIRED_CLAIMS",
    "AccessTokenPolicy",
    "InvalidToken",
    "UnknownKey",
    "VerifiedToken",
    "decode_unverified_claims",
    "select_policy",
    "verify_access_token",
]

DEFAULT_REQUIRED_CLAIMS = frozenset({"iss", "exp", "aud", "sub", "client_id", "iat", "jti"})

_AT_JWT = "application/at+jwt"
_JWT = "application/jwt"
_STRING_CLAIMS = ("iss", "sub", "client_id", "jti")
_ID_TOKEN_CLAIMS = ("nonce", "at_hash")
_NO_SCOPES: frozenset[str] = frozenset()
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")


class InvalidToken(Exception):
    """The token is not acceptable; ``reason`` is fixed text, safe to log and return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKey(InvalidToken):
    """No key of this issuer has the token's ``kid``: refetch the JWKS once (cooldown) and retry.

    ``kid`` is attacker-controlled: escape it before logging it.
    """

    def __init__(
        self, reason: str = "unknown key id", *, issuer: str | None = None, kid: str | None = None
    ) -> None:
        super().__init__(reason)
        self.issuer = issuer
        self.kid = kid


@dataclass(frozen=True)
class AccessTokenPolicy:
    """What one issuer's access tokens must satisfy at this resource server."""

    issuer: str
    audience: str
    algorithms: frozenset[str]
    leeway: float = 30.0
    max_lifetime: float | None = 3600.0
    require_typ: bool = True  # 'at+jwt' / 'application/at+jwt'
    require_iss: bool = True  # legacy relaxation: tokens without iss
    require_aud: bool = True  # legacy relaxation: tokens without aud
    required_claims: frozenset[str] = DEFAULT_REQUIRED_CLAIMS

    def __post_init__(self) -> None:
        if not isinstance(self.algorithms, frozenset) or not self.algorithms:
            raise ValueError("algorithms must be a non-empty frozenset")
        if not self.algorithms <= ALGORITHMS.keys():
            raise ValueError("algorithms may only name supported JWS algorithms (never none)")
        if not math.isfinite(self.leeway) or self.leeway < 0:
            raise ValueError("leeway must be a finite number of seconds >= 0")
        if self.max_lifetime is not None and not (math.isfinite(self.max_lifetime) and self.max_lifetime > 0):
            raise ValueError("max_lifetime must be a positive number of seconds or None")
        if self.require_aud and not self.audience:
            raise ValueError("audience must be set")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token that passed every check, with its claims and the key that verified it."""

    claims: dict[str, Any]
    issuer: str | None
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    jti: str | None
    expires_at: float
    issued_at: float | None
    key_thumbprint: str
    cnf: dict[str, Any] | None


def _check_typ(typ: Any, require_typ: bool) -> None:
    if typ is None:
        if require_typ:
            raise InvalidToken("typ must be at+jwt")
        return
    kind = media_type(typ)
    if kind == _AT_JWT or (kind == _JWT and not require_typ):
        return
    raise InvalidToken("typ must be at+jwt" if require_typ else "typ is not an access token type")


def _check_types(claims: dict[str, Any], require_typ: bool) -> None:
    for name in _STRING_CLAIMS:
        if name in claims and type(claims[name]) is not str:
            raise InvalidToken(f"claim {name!r} must be a string")
    if "aud" in claims:
        aud = claims["aud"]
        if type(aud) is not str and not (type(aud) is list and all(type(a) is str for a in aud)):
            raise InvalidToken("claim 'aud' must be a string or an array of strings")
    if "scope" in claims:
        scope = claims["scope"]
        if type(scope) is not str:
            raise InvalidToken("claim 'scope' must be a space-delimited string")
        if scope and not _SCOPE.fullmatch(scope):
            raise InvalidToken("claim 'scope' is not a space-delimited list of scope tokens")
    if "cnf" in claims and type(claims["cnf"]) is not dict:
        raise InvalidToken("claim 'cnf' must be an object")
    if not require_typ:
        if any(name in claims for name in _ID_TOKEN_CLAIMS):
            raise InvalidToken("an ID token is not an access token")
        if "events" in claims:
            raise InvalidToken("a security event token is not an access token")


def _dates(claims: dict[str, Any]) -> tuple[float, float | None, float | None]:
    try:
        if "exp" not in claims:
            raise InvalidToken("required claim 'exp' is missing")
        exp = numeric_date(claims["exp"], "exp")
        nbf = numeric_date(claims["nbf"], "nbf") if "nbf" in claims else None
        iat = numeric_date(claims["iat"], "iat") if "iat" in claims else None
        if "auth_time" in claims:
            numeric_date(claims["auth_time"], "auth_time")
    except JOSEError as exc:
        raise InvalidToken(exc.reason) from None
    return exp, nbf, iat


def verify_access_token(
    jws: CompactJWS, policy: AccessTokenPolicy, keys: KeySet, now: float
) -> VerifiedToken:
    """Verify ``jws`` as an access token of ``policy.issuer``; raises :class:`InvalidToken`."""
    header = jws.header
    if header.get("alg") not in policy.algorithms:
        raise InvalidToken("the token's alg is not allowed for this issuer")
    typ = header.get("typ")
    if typ != "at+jwt":  # the common case needs no media-type normalisation
        _check_typ(typ, policy.require_typ)
    kid = header.get("kid")
    key = keys.find(kid)
    if key is None:
        if kid is None:
            raise InvalidToken("the token has no kid and the issuer has several keys")
        raise UnknownKey("unknown key id", issuer=policy.issuer, kid=kid)
    try:
        verify_signature(jws, key)
        claims = parse_claims(jws.payload)
    except JOSEError as exc:
        raise InvalidToken(exc.reason) from None

    _check_types(claims, policy.require_typ)
    if not policy.required_claims <= claims.keys():
        missing = sorted(policy.required_claims - claims.keys())[0]
        raise InvalidToken(f"required claim {missing!r} is missing")

    iss = claims.get("iss")
    if iss is None:
        if policy.require_iss:
            raise InvalidToken("required claim 'iss' is missing")
    elif iss != policy.issuer:
        raise InvalidToken("the token's issuer does not match")
    aud = claims.get("aud")
    if aud is None:
        if policy.require_aud:
            raise InvalidToken("required claim 'aud' is missing")
    elif aud != policy.audience and (type(aud) is not list or policy.audience not in aud):
        raise InvalidToken("the token's audience does not include this API")

    exp, nbf, iat = _dates(claims)
    leeway = policy.leeway
    if not now < exp + leeway:
        raise InvalidToken("the token has expired")
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken("the token is not valid yet")
    if iat is not None and iat > now + leeway:
        raise InvalidToken("the token was issued in the future")
    max_lifetime = policy.max_lifetime
    if max_lifetime is not None and (
        exp - iat > max_lifetime if iat is not None else exp - now > max_lifetime + leeway
    ):
        raise InvalidToken("the token's lifetime exceeds the maximum")

    scope = claims.get("scope")
    cnf = claims.get("cnf")
    return VerifiedToken(  # positional: claims, issuer, subject, client_id, scopes, jti,
        claims,  # expires_at, issued_at, key_thumbprint, cnf
        iss,
        claims.get("sub"),
        claims.get("client_id"),
        frozenset(scope.split(" ")) if scope else _NO_SCOPES,
        claims.get("jti"),
        exp,
        iat,
        key.thumbprint,
        cnf,
    )


def select_policy(payload_iss: Any, policies: Mapping[str, AccessTokenPolicy]) -> AccessTokenPolicy:
    """The policy of the issuer named by the **unverified** ``iss`` claim.

    Routing only: the token is then verified with that issuer's keys alone,
    and :func:`verify_access_token` checks ``iss`` again after the signature.
    """
    if type(payload_iss) is not str:
        raise InvalidToken("the token names no issuer")
    policy = policies.get(payload_iss)
    if policy is None or policy.issuer != payload_iss:
        raise InvalidToken("unknown issuer")
    return policy
