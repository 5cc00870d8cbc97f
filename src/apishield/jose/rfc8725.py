"""Signature verification with the algorithm pinned by the key (RFC 8725 §3.1, RFC 7515 §5.2).

RFC 8725 §3.1: "Libraries MUST enable the caller to specify a supported set
of algorithms and MUST NOT use any other algorithms when performing
cryptographic operations", and "each key MUST be used with exactly one
algorithm". The algorithm therefore comes from the :class:`VerificationKey`
(fixed when the key was imported) and the header's ``alg`` must be exactly
that name (JWA names are case-sensitive). A token whose header says
``HS256`` can never be checked with an RSA key's bytes as an HMAC secret
(the key-confusion attack), and an ``RS256`` key never verifies ``PS256`` or
``RS512``.

RFC 7515 §5.2 step 8 then validates the signature over the received signing
input, with the length and range checks of :mod:`apishield.jose.rfc7518`.
"""

from __future__ import annotations

from apishield.jose import rfc7518
from apishield.jose.errors import JOSEError
from apishield.jose.rfc7515 import CompactJWS
from apishield.jose.rfc7517 import VerificationKey

__all__ = ["verify_signature"]


def verify_signature(jws: CompactJWS, key: VerificationKey) -> None:
    """Raise :class:`JOSEError` unless ``jws`` is signed by ``key`` with the key's algorithm."""
    if jws.header.get("alg") != key.alg:
        raise JOSEError("the token's alg does not match the key's algorithm")
    if not rfc7518.verify(key.spec, key.key, jws.signing_input, jws.signature, key.signature_length):
        raise JOSEError("signature verification failed")
