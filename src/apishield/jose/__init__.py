"""JOSE for apishield: compact JWS parsing, key vetting and signature checks.

apishield owns the policy (RFC 8725): which tokens parse
(:mod:`~apishield.jose.rfc7515`); which keys are usable, and with which single
algorithm (:mod:`~apishield.jose.rfc7517`, :mod:`~apishield.jose.rfc7518`);
that a key only verifies its own algorithm (:mod:`~apishield.jose.rfc8725`);
and how a claims set is read (:mod:`~apishield.jose.rfc7519`). joserfc is used
for key import and the signature primitive only. Nothing here does I/O.
"""

from __future__ import annotations

from apishield.jose.b64 import b64url_decode, b64url_encode
from apishield.jose.errors import JOSEError
from apishield.jose.rfc7515 import CompactJWS, media_type, parse_compact_jws
from apishield.jose.rfc7517 import KeySet, VerificationKey, import_hmac_secret, import_jwk, import_jwks
from apishield.jose.rfc7518 import ALGORITHMS
from apishield.jose.rfc7519 import decode_unverified_claims, parse_claims
from apishield.jose.rfc8725 import verify_signature

__all__ = [
    "ALGORITHMS",
    "CompactJWS",
    "JOSEError",
    "KeySet",
    "VerificationKey",
    "b64url_decode",
    "b64url_encode",
    "decode_unverified_claims",
    "import_hmac_secret",
    "import_jwk",
    "import_jwks",
    "media_type",
    "parse_claims",
    "parse_compact_jws",
    "verify_signature",
]
