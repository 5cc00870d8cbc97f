"""JWS algorithms (RFC 7518 §3, RFC 8037 §3.1, RFC 9864 §2): what each needs and how it verifies.

The table is the single place that says, for each ``alg`` apishield accepts,
which key type and curve it requires and how large the key must be:

* ``HS256/384/512`` (§3.2): ``oct`` keys of at least the hash output size
  ("A key of the same size as the hash output ... or larger MUST be used");
* ``RS256/384/512`` (§3.3) and ``PS256/384/512`` (§3.5): RSA keys of at
  least 2048 bits ("A key of size 2048 bits or larger MUST be used");
* ``ES256/384/512`` (§3.4): EC keys on P-256, P-384 and P-521 respectively;
* ``EdDSA`` (RFC 8037 §3.1) with an ``OKP`` Ed25519 or Ed448 key, and the
  fully specified ``Ed25519`` and ``Ed448`` (RFC 9864 §2).

``none`` (§3.6) is absent on purpose: it can never verify anything.

:func:`verify` wraps the signature primitive (joserfc's algorithm objects,
which call ``cryptography``) with the checks a caller must not forget:

* the signature has the exact length of the algorithm and key: an HMAC
  output, the RSA modulus length (RFC 8017 §8.2.2 step 1), or R||S of the
  curve's size for ECDSA (§3.4: "the JWS Signature value MUST be a
  64-octet sequence" for P-256, and 96 / 132 octets for P-384 / P-521);
* for ECDSA, 0 < r < n and 0 < s < n before the values are converted to the
  DER form ``cryptography`` expects, so ``r = s = 0`` (CVE-2022-21449,
  "psychic signatures") and unreduced values never reach the backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

__all__ = [
    "ALGORITHMS",
    "HMAC_ALGORITHMS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "AlgSpec",
    "ecdsa_scalars_in_range",
    "signature_length",
    "verify",
]

MIN_RSA_BITS = 2048  # RFC 7518 §3.3 and §3.5
MAX_RSA_BITS = 8192  # apishield: larger moduli only make verification slow (a DoS lever)

# group orders n of the NIST curves (FIPS 186-5 / SEC 2), used for 0 < r, s < n
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P384_N = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
)
_P521_N = int(
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
    16,
)


@dataclass(frozen=True, slots=True)
class AlgSpec:
    """What one JWS ``alg`` requires of its key and of its signature."""

    name: str
    kty: str  # "oct" | "RSA" | "EC" | "OKP"
    curves: frozenset[str]  # allowed "crv" values; empty for oct and RSA
    hash_bytes: int  # digest size: HMAC minimum key length; 0 for EdDSA
    fixed_signature_length: int  # HMAC output or ECDSA R||S length; 0 when the key decides
    group_order: int  # ECDSA only: the curve order n

    @property
    def symmetric(self) -> bool:
        return self.kty == "oct"


def _spec(
    name: str, kty: str, curves: tuple[str, ...] = (), hash_bytes: int = 0, sig: int = 0, n: int = 0
) -> AlgSpec:
    return AlgSpec(name, kty, frozenset(curves), hash_bytes, sig, n)


ALGORITHMS: Mapping[str, AlgSpec] = MappingProxyType(
    {
        "HS256": _spec("HS256", "oct", hash_bytes=32, sig=32),
        "HS384": _spec("HS384", "oct", hash_bytes=48, sig=48),
        "HS512": _spec("HS512", "oct", hash_bytes=64, sig=64),
        "RS256": _spec("RS256", "RSA", hash_bytes=32),
        "RS384": _spec("RS384", "RSA", hash_bytes=48),
        "RS512": _spec("RS512", "RSA", hash_bytes=64),
        "PS256": _spec("PS256", "RSA", hash_bytes=32),
        "PS384": _spec("PS384", "RSA", hash_bytes=48),
        "PS512": _spec("PS512", "RSA", hash_bytes=64),
        "ES256": _spec("ES256", "EC", ("P-256",), hash_bytes=32, sig=64, n=_P256_N),
        "ES384": _spec("ES384", "EC", ("P-384",), hash_bytes=48, sig=96, n=_P384_N),
        "ES512": _spec("ES512", "EC", ("P-521",), hash_bytes=64, sig=132, n=_P521_N),
        "EdDSA": _spec("EdDSA", "OKP", ("Ed25519", "Ed448")),
        "Ed25519": _spec("Ed25519", "OKP", ("Ed25519",), sig=64),
        "Ed448": _spec("Ed448", "OKP", ("Ed448",), sig=114),
    }
)

HMAC_ALGORITHMS = frozenset(name for name, spec in ALGORITHMS.items() if spec.symmetric)

_EDDSA_SIGNATURE_LENGTH = {"Ed25519": 64, "Ed448": 114}  # RFC 8032 §5.1.6 and §5.2.6

# the primitive: joserfc's algorithm objects, looked up once
_PRIMITIVES: Mapping[str, Any] = MappingProxyType({name: JWSRegistry.algorithms[name] for name in ALGORITHMS})


def signature_length(spec: AlgSpec, *, rsa_bits: int = 0, crv: str | None = None) -> int:
    """The exact signature length for ``spec`` with a given key (decided at key import)."""
    if spec.fixed_signature_length:
        return spec.fixed_signature_length
    if spec.kty == "RSA":
        return (rsa_bits + 7) // 8
    return _EDDSA_SIGNATURE_LENGTH[crv or ""]


def verify(spec: AlgSpec, key: Any, signing_input: bytes, signature: bytes, length: int) -> bool:
    """True when ``signature`` is valid for ``signing_input`` under ``key`` with ``spec``.

    ``key`` is the joserfc key object; ``length`` the exact signature length
    from :func:`signature_length`. Malformed signatures are refused before the
    backend sees them.
    """
    if len(signature) != length:
        return False
    if spec.group_order and not ecdsa_scalars_in_range(signature, spec.group_order):
        return False
    try:
        return bool(_PRIMITIVES[spec.name].verify(signing_input, signature, key))
    except (ValueError, TypeError, JoseError):  # attacker input must fail closed, never crash
        return False


def ecdsa_scalars_in_range(signature: bytes, order: int) -> bool:
    """True when the R||S signature has 0 < r < n and 0 < s < n (the caller checked its length)."""
    half = len(signature) // 2
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    return 0 < r < order and 0 < s < order
