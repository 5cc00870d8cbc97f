"""The JWT claims set and its value types (RFC 7519 §2, §4.1, §7.2).

§7.2 step 10: the payload of a JWT is a JSON object, the claims set; like the
header it must not have duplicate member names (§4; apishield rejects them
rather than keeping the last) and must be UTF-8 (RFC 8725 §3.7). Nesting is
bounded (16 levels) and the payload size is limited before parsing.

§2 defines ``NumericDate`` as a JSON number of seconds since the epoch, which
"can be non-integer". :func:`numeric_date` accepts exactly that: no strings,
no booleans (``true`` is an ``int`` in Python), nothing negative, non-finite
or beyond 2**53 (the range in which every integer is exact in IEEE 754
doubles, RFC 7493 §2.2).

:func:`decode_unverified_claims` exists for routing only (pick the issuer
policy by ``iss`` before choosing keys): its result is **untrusted** and must
never be used for any decision beyond choosing which issuer's keys to try.
"""

from __future__ import annotations

from typing import Any

from apishield.jose.errors import JOSEError
from apishield.jose.jsonobj import parse_json_object
from apishield.jose.rfc7515 import CompactJWS

__all__ = [
    "CLAIMS_MAX_BYTES",
    "CLAIMS_MAX_DEPTH",
    "MAX_NUMERIC_DATE",
    "decode_unverified_claims",
    "numeric_date",
    "parse_claims",
]

CLAIMS_MAX_BYTES = 32 * 1024
CLAIMS_MAX_DEPTH = 16
MAX_NUMERIC_DATE = 2**53


def parse_claims(payload: bytes) -> dict[str, Any]:
    """The claims set of a JWT payload; raises :class:`JOSEError`."""
    if len(payload) > CLAIMS_MAX_BYTES:
        raise JOSEError("the JWT claims set is too large")
    return parse_json_object(payload, max_depth=CLAIMS_MAX_DEPTH, what="JWT claims set")


def decode_unverified_claims(jws: CompactJWS) -> dict[str, Any]:
    """The claims of a JWS whose signature has **not** been checked: untrusted, for routing by ``iss``."""
    return parse_claims(jws.payload)


def numeric_date(value: Any, name: str) -> float:
    """``value`` as a NumericDate (§2); ``name`` (a claim name chosen by the caller) goes into the reason."""
    kind = type(value)
    if kind is not int and kind is not float:
        raise JOSEError(f"claim {name!r} must be a JSON number")
    # comparisons, not math.isfinite: a 400-digit integer must not raise OverflowError;
    # NaN fails both comparisons and infinity the upper bound
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise JOSEError(f"claim {name!r} is out of range for a NumericDate")
    return float(value)
