"""Verification keys from JWKs and JWK Sets (RFC 7517), vetted before use.

A key set fetched from an issuer is input, not configuration: RFC 8725 §3.1
says "each key MUST be used with exactly one algorithm", §3.5 and RFC 7518
§3.2-3.5 set minimum strengths, and RFC 7517 §4.2-4.3 let a key say it is not
for verification. This module turns a JWK into a :class:`VerificationKey`
bound to one algorithm, or refuses it:

* ``kty`` is RSA, EC, OKP or oct, and agrees with the algorithm and ``crv``
  (RFC 7518 §6, RFC 8037 §2); EC coordinates have the full coordinate length
  (RFC 7518 §6.2.1.2-3) and the point is on the curve (checked by
  ``cryptography`` on import);
* the algorithm is the JWK's ``alg`` (RFC 7517 §4.4), which must be allowed;
  else the caller's default; else the only allowed algorithm that fits the key
  type and curve. An RSA key without ``alg`` is ambiguous when both an RS and
  a PS algorithm (or two hash sizes) are allowed, and is refused;
* ``use`` (§4.2), when present, is ``sig``; ``key_ops`` (§4.3), when present,
  contains ``verify``;
* RSA moduli have 2048 to 8192 bits and no ROCA fingerprint; the public
  exponent is odd and at least 3 (so ``e = 1``, which makes every "signature"
  equal to its own padded message, is refused); the modulus is odd;
* a public key set carrying private members (``d``, ``p``, ``q``, ``dp``,
  ``dq``, ``qi``, ``oth``, or a symmetric ``k`` in an asymmetric key) is
  refused: whoever published it leaked the key;
* ``oct`` keys are accepted only when an HMAC algorithm is allowed, and are at
  least as long as the hash output (RFC 7518 §3.2).

Key sets (§5) are strict: one bad key refuses the whole set (the previous set
stays in use), as do duplicate ``kid`` values, a mix of symmetric and
asymmetric keys, and keys without ``kid`` in a set of more than one key, since
all of these make "which key verifies this token" ambiguous.

joserfc imports the key material (``*Key.import_key``); every policy decision
above is made here.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    load_der_public_key,
    load_pem_public_key,
    load_ssh_public_key,
)
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from apishield.jose.b64 import b64url_decode, b64url_encode
from apishield.jose.errors import JOSEError
from apishield.jose.rfc7515 import MAX_KID_LENGTH
from apishield.jose.rfc7518 import (
    ALGORITHMS,
    HMAC_ALGORITHMS,
    MAX_RSA_BITS,
    MIN_RSA_BITS,
    AlgSpec,
    signature_length,
)
from apishield.jose.rfc7638 import jwk_thumbprint
from apishield.jose.roca import has_roca_fingerprint

__all__ = [
    "KeySet",
    "VerificationKey",
    "import_hmac_secret",
    "import_jwk",
    "import_jwks",
]

MAX_KEYS = 100

# private members (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2); a secret "k" has no place in them either
_PRIVATE_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "RSA": ("d", "p", "q", "dp", "dq", "qi", "oth", "k"),
    "EC": ("d", "k"),
    "OKP": ("d", "k"),
    "oct": (),
}
_EC_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
_OKP_KEY_BYTES = {"Ed25519": 32, "Ed448": 57}
_KEY_IMPORT_ERRORS = (ValueError, TypeError, KeyError, JoseError, UnsupportedAlgorithm)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public (or HMAC) key bound to exactly one JWS algorithm (RFC 8725 §3.1).

    ``key`` is the joserfc key object (public part only for asymmetric keys);
    ``thumbprint`` its RFC 7638 SHA-256 thumbprint. ``signature_length``, the
    exact length of a valid signature, is derived from ``key`` when not given.
    """

    kid: str | None
    alg: str
    kty: str
    key: Any
    thumbprint: str
    signature_length: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        spec = ALGORITHMS.get(self.alg)
        if spec is None or spec.kty != self.kty:
            raise JOSEError("key type does not match its algorithm")
        if not spec.symmetric and self.key.is_private:
            raise JOSEError("a verification key holds only the public key")
        if not self.signature_length:
            object.__setattr__(self, "signature_length", _signature_length_of(spec, self.key))

    @property
    def spec(self) -> AlgSpec:
        return ALGORITHMS[self.alg]


@dataclass(frozen=True, slots=True)
class KeySet:
    """The verification keys of one issuer, addressed by ``kid``.

    Build it with :func:`import_jwks` or :meth:`of`; both enforce the set rules
    in the module docstring.
    """

    keys: tuple[VerificationKey, ...]
    by_kid: dict[str | None, VerificationKey]

    @classmethod
    def of(cls, keys: Iterable[VerificationKey]) -> KeySet:
        """A key set from already imported keys; raises :class:`JOSEError` on an ambiguous set."""
        keys = tuple(keys)
        if not keys:
            raise JOSEError("the key set has no keys")
        if len(keys) > MAX_KEYS:
            raise JOSEError(f"the key set has more than {MAX_KEYS} keys")
        if len({key.spec.symmetric for key in keys}) > 1:
            raise JOSEError("the key set mixes symmetric and asymmetric keys")
        by_kid: dict[str | None, VerificationKey] = {}
        for key in keys:
            if key.kid is None and len(keys) > 1:
                raise JOSEError("a key without kid in a set of several keys")
            if key.kid in by_kid:
                raise JOSEError("duplicate kid in the key set")
            by_kid[key.kid] = key
        return cls(keys, by_kid)

    @classmethod
    def single(cls, key: VerificationKey) -> KeySet:
        """A key set of one key (a configured HMAC secret or PEM public key)."""
        return cls.of((key,))

    @property
    def symmetric(self) -> bool:
        return self.keys[0].spec.symmetric

    def find(self, kid: str | None) -> VerificationKey | None:
        """The key for a token's ``kid``, by exact match; ``None`` when there is none.

        A token without ``kid`` uses the set's only key; a set whose only key
        has no ``kid`` verifies tokens with any ``kid``. Keys are never tried
        one after the other.
        """
        key = self.by_kid.get(kid)
        if key is None and len(self.keys) == 1 and (kid is None or self.keys[0].kid is None):
            return self.keys[0]
        return key


def _signature_length_of(spec: AlgSpec, key: Any) -> int:
    if spec.kty == "RSA":
        return signature_length(spec, rsa_bits=key.raw_value.key_size)
    if spec.kty == "OKP":
        return signature_length(spec, crv=key.curve_name)
    return signature_length(spec)


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise JOSEError(f"JWK member {name!r} is missing or not a string")
    try:
        return b64url_decode(value)
    except JOSEError as exc:
        raise JOSEError(f"JWK member {name!r}: {exc.reason}") from None


def _check_use(jwk: Mapping[str, Any]) -> None:
    if "use" in jwk and jwk["use"] != "sig":
        raise JOSEError("the key is not meant for signatures (use)")
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise JOSEError("key_ops is not an array of strings")
        if len(set(ops)) != len(ops):
            raise JOSEError("key_ops lists an operation twice")
        if "verify" not in ops:
            raise JOSEError("key_ops does not allow verify")


def _check_allowed(allowed_algs: frozenset[str]) -> None:
    unknown = [alg for alg in allowed_algs if alg not in ALGORITHMS]
    if unknown or not allowed_algs:
        raise JOSEError("allowed_algs must be a non-empty set of supported JWS algorithms (never none)")


def _fits(spec: AlgSpec, kty: str, crv: Any) -> bool:
    return spec.kty == kty and (not spec.curves or crv in spec.curves)


def _choose_alg(
    jwk: Mapping[str, Any], kty: str, allowed_algs: frozenset[str], default_alg: str | None
) -> AlgSpec:
    crv = jwk.get("crv")
    if "alg" in jwk:
        alg = jwk["alg"]
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise JOSEError("the key's alg is not a supported JWS algorithm")
        if alg not in allowed_algs:
            raise JOSEError("the key's alg is not allowed")
    elif default_alg is not None:
        if default_alg not in allowed_algs:
            raise JOSEError("the default algorithm is not allowed")
        alg = default_alg
    else:
        if kty == "oct" and not allowed_algs & HMAC_ALGORITHMS:
            raise JOSEError("symmetric keys are not allowed")
        candidates = sorted(a for a in allowed_algs if _fits(ALGORITHMS[a], kty, crv))
        if not candidates:
            raise JOSEError("no allowed algorithm fits this key")
        if len(candidates) > 1:
            raise JOSEError("ambiguous alg: the key has no alg and several allowed algorithms fit it")
        alg = candidates[0]
    spec = ALGORITHMS[alg]
    if spec.kty != kty:
        raise JOSEError("key type does not match its algorithm")
    if spec.curves and crv not in spec.curves:
        raise JOSEError("curve does not match its algorithm")
    return spec


def _import_rsa(jwk: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    if e < 3:
        raise JOSEError("RSA public exponent is too small")
    if e % 2 == 0:
        raise JOSEError("RSA public exponent is even")
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise JOSEError(f"RSA key is shorter than {MIN_RSA_BITS} bits")
    if bits > MAX_RSA_BITS:
        raise JOSEError(f"RSA key is longer than {MAX_RSA_BITS} bits")
    if n % 2 == 0:  # cryptography accepts it; a product of two odd primes never is
        raise JOSEError("RSA modulus is even")
    if has_roca_fingerprint(n):
        raise JOSEError("RSA key has the ROCA fingerprint (CVE-2017-15361)")
    members = {
        "kty": "RSA",
        "n": b64url_encode(n.to_bytes((bits + 7) // 8, "big")),
        "e": b64url_encode(e.to_bytes((e.bit_length() + 7) // 8, "big")),
    }
    return RSAKey.import_key(dict(members)), members


def _import_ec(jwk: Mapping[str, Any], crv: str) -> tuple[Any, dict[str, str]]:
    size = _EC_COORDINATE_BYTES[crv]
    x, y = _member(jwk, "x"), _member(jwk, "y")
    if len(x) != size or len(y) != size:
        raise JOSEError("EC coordinate does not have the full length of the curve")
    members = {"kty": "EC", "crv": crv, "x": b64url_encode(x), "y": b64url_encode(y)}
    return ECKey.import_key(dict(members)), members


def _import_okp(jwk: Mapping[str, Any], crv: str) -> tuple[Any, dict[str, str]]:
    x = _member(jwk, "x")
    if len(x) != _OKP_KEY_BYTES[crv]:
        raise JOSEError("OKP public key does not have the length of the curve")
    members = {"kty": "OKP", "crv": crv, "x": b64url_encode(x)}
    return OKPKey.import_key(dict(members)), members


def _import_oct(secret: bytes, spec: AlgSpec, allow_weak: bool) -> tuple[Any, dict[str, str]]:
    if not secret:
        raise JOSEError("empty HMAC key")
    if _looks_like_asymmetric_key(secret):
        raise JOSEError("the HMAC key is an encoded asymmetric key (algorithm confusion)")
    if len(secret) < spec.hash_bytes and not allow_weak:
        raise JOSEError(f"HMAC key for {spec.name} is shorter than {spec.hash_bytes} bytes")
    members = {"kty": "oct", "k": b64url_encode(secret)}
    with warnings.catch_warnings():
        # a short legacy secret was explicitly allowed (allow_weak); joserfc would warn again
        warnings.simplefilter("ignore", SecurityWarning)
        return OctKey.import_key(dict(members)), members


_KEY_MARKERS = (
    b"-----BEGIN",
    b"---- BEGIN",
    b"ssh-rsa ",
    b"ssh-dss ",
    b"ssh-ed25519 ",
    b"ssh-ed448 ",
    b"ecdsa-sha2-",
    b"sk-ssh-ed25519",
    b"sk-ecdsa-sha2-",
)
_LOADERS = (
    load_pem_public_key,
    load_der_public_key,
    load_ssh_public_key,
    x509.load_pem_x509_certificate,
    x509.load_der_x509_certificate,
)


def _parses_as_key(data: bytes) -> bool:
    for loader in _LOADERS:
        try:
            loader(data)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return True
    return False


def _looks_like_asymmetric_key(secret: bytes) -> bool:
    """True for public keys and certificates in any common encoding (JWT-05).

    An HMAC key that is really a published public key lets anyone who has
    the public key forge tokens (the RS256 to HS256 confusion).
    """
    if any(marker in secret for marker in _KEY_MARKERS) or _parses_as_key(secret):
        return True
    stripped = secret.strip()
    if stripped.startswith(b"{"):  # a JWK in JSON
        try:
            value = json.loads(stripped)
        except ValueError:
            return False
        return isinstance(value, dict) and "kty" in value
    try:  # base64 of DER, e.g. an x5c entry
        der = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(der) > 32 and _parses_as_key(der)


def import_jwk(
    jwk: Mapping[str, Any], *, allowed_algs: frozenset[str], default_alg: str | None = None
) -> VerificationKey:
    """Vet one JWK and bind it to one algorithm; raises :class:`JOSEError`."""
    if not isinstance(jwk, Mapping):
        raise JOSEError("a JWK must be a JSON object")
    _check_allowed(allowed_algs)
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _PRIVATE_MEMBERS:
        raise JOSEError("unsupported key type")
    if any(name in jwk for name in _PRIVATE_MEMBERS[kty]):
        raise JOSEError("private key material in a public key set")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
        raise JOSEError(f"kid must be a non-empty string of at most {MAX_KID_LENGTH} characters")
    _check_use(jwk)
    spec = _choose_alg(jwk, kty, allowed_algs, default_alg)
    try:
        if kty == "RSA":
            key, members = _import_rsa(jwk)
        elif kty == "EC":
            key, members = _import_ec(jwk, jwk["crv"])
        elif kty == "OKP":
            key, members = _import_okp(jwk, jwk["crv"])
        else:
            key, members = _import_oct(_member(jwk, "k"), spec, allow_weak=False)
    except JOSEError:
        raise
    except _KEY_IMPORT_ERRORS:
        raise JOSEError("the key material is invalid") from None
    return VerificationKey(kid=kid, alg=spec.name, kty=kty, key=key, thumbprint=jwk_thumbprint(members))


def import_jwks(
    doc: Mapping[str, Any], *, allowed_algs: frozenset[str], default_alg: str | None = None
) -> KeySet:
    """Vet a JWK Set (RFC 7517 §5); one invalid key refuses the whole set."""
    if not isinstance(doc, Mapping):
        raise JOSEError("a JWK Set must be a JSON object")
    entries = doc.get("keys")
    if not isinstance(entries, list):
        raise JOSEError("a JWK Set needs a 'keys' array")
    if len(entries) > MAX_KEYS:
        raise JOSEError(f"the key set has more than {MAX_KEYS} keys")
    keys = []
    for index, entry in enumerate(entries):
        try:
            keys.append(import_jwk(entry, allowed_algs=allowed_algs, default_alg=default_alg))
        except JOSEError as exc:
            raise JOSEError(f"key #{index}: {exc.reason}") from None
    return KeySet.of(keys)


def import_hmac_secret(secret: bytes, alg: str, *, allow_weak: bool = False) -> VerificationKey:
    """An HMAC verification key from a configured shared secret (legacy HS256/384/512).

    Secrets shorter than the hash output are refused unless ``allow_weak``;
    empty secrets and encoded public keys or certificates are always refused.
    """
    if alg not in HMAC_ALGORITHMS:
        raise JOSEError("not an HMAC algorithm")
    if not isinstance(secret, bytes):
        raise JOSEError("the HMAC secret must be bytes")
    try:
        key, members = _import_oct(secret, ALGORITHMS[alg], allow_weak=allow_weak)
    except JOSEError:
        raise
    except _KEY_IMPORT_ERRORS:
        raise JOSEError("the key material is invalid") from None
    return VerificationKey(kid=None, alg=alg, kty="oct", key=key, thumbprint=jwk_thumbprint(members))
