"""Hand-built JWS tokens for tests: keys are generated here, headers and claims are raw bytes.

Tokens are assembled byte by byte (no JOSE library on the signing side) so a
test can produce exactly the malformed or hostile token it needs.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from apishield.jose import VerificationKey, import_jwk

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_CURVES = {"ES256": (ec.SECP256R1, 32), "ES384": (ec.SECP384R1, 48), "ES512": (ec.SECP521R1, 66)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _int_b64(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass
class Signer:
    """A private key (or HMAC secret) that signs for one algorithm family."""

    alg: str
    private: Any
    kid: str | None = None

    def sign(self, data: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        if alg.startswith("HS"):
            digest = getattr(hashlib, "sha" + alg[2:])
            return hmac.new(self.private, data, digest).digest()
        if alg.startswith("RS"):
            signature: bytes = self.private.sign(data, padding.PKCS1v15(), _HASHES[alg[2:]]())
            return signature
        if alg.startswith("PS"):
            hash_alg = _HASHES[alg[2:]]()
            pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            signature = self.private.sign(data, pss, hash_alg)
            return signature
        if alg.startswith("ES"):
            size = (self.private.curve.key_size + 7) // 8
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(_HASHES[alg[2:]]())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        signature = self.private.sign(data)  # EdDSA
        return signature

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        if isinstance(self.private, bytes):
            jwk: dict[str, Any] = {"kty": "oct", "k": b64(self.private)}
        elif isinstance(self.private, rsa.RSAPrivateKey):
            numbers = self.private.public_key().public_numbers()
            jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
        elif isinstance(self.private, ec.EllipticCurvePrivateKey):
            numbers_ec = self.private.public_key().public_numbers()
            size = (self.private.curve.key_size + 7) // 8
            crv = {256: "P-256", 384: "P-384", 521: "P-521"}[self.private.curve.key_size]
            jwk = {
                "kty": "EC",
                "crv": crv,
                "x": b64(numbers_ec.x.to_bytes(size, "big")),
                "y": b64(numbers_ec.y.to_bytes(size, "big")),
            }
        else:
            crv = "Ed25519" if isinstance(self.private, ed25519.Ed25519PrivateKey) else "Ed448"
            raw = self.private.public_key().public_bytes_raw()
            jwk = {"kty": "OKP", "crv": crv, "x": b64(raw)}
        if self.kid is not None:
            jwk["kid"] = self.kid
        jwk["alg"] = self.alg
        jwk.update(extra)
        return jwk

    def verification_key(self) -> VerificationKey:
        return import_jwk(self.public_jwk(), allowed_algs=frozenset({self.alg}))


def new_signer(alg: str, kid: str | None = "k1", *, rsa_bits: int = 2048) -> Signer:
    if alg.startswith("HS"):
        return Signer(alg, hashlib.sha512(f"test secret {alg} {kid}".encode()).digest(), kid)
    if alg[:2] in ("RS", "PS"):
        return Signer(alg, rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits), kid)
    if alg in _CURVES:
        return Signer(alg, ec.generate_private_key(_CURVES[alg][0]()), kid)
    if alg in ("EdDSA", "Ed25519"):
        return Signer(alg, ed25519.Ed25519PrivateKey.generate(), kid)
    return Signer(alg, ed448.Ed448PrivateKey.generate(), kid)


def make_token(
    signer: Signer,
    claims: dict[str, Any] | bytes,
    header: dict[str, Any] | bytes | None = None,
    *,
    sign_alg: str | None = None,
) -> str:
    """A compact JWS over ``header`` and ``claims`` (dicts are serialised, bytes used as they are)."""
    if header is None:
        header = {"alg": signer.alg, "typ": "at+jwt"}
        if signer.kid is not None:
            header["kid"] = signer.kid
    header_bytes = header if isinstance(header, bytes) else compact_json(header)
    claims_bytes = claims if isinstance(claims, bytes) else compact_json(claims)
    signing_input = f"{b64(header_bytes)}.{b64(claims_bytes)}"
    signature = signer.sign(signing_input.encode("ascii"), sign_alg)
    return f"{signing_input}.{b64(signature)}"


def self_signed_certificate(private: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.example")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
    )
    edwards = isinstance(private, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(private, None if edwards else hashes.SHA256())


def public_key_encodings(private: Any, jwk: dict[str, Any]) -> dict[str, bytes]:
    """A published public key in every encoding an HMAC-confusion attacker would try (JWT-05)."""
    public = private.public_key()
    spki_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cert = self_signed_certificate(private)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    out = {
        "pem": spki_pem,
        "pem-no-trailing-newline": spki_pem.rstrip(b"\n"),
        "pem-crlf": spki_pem.replace(b"\n", b"\r\n"),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-json-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "x5c-der": cert_der,
        "x5c-base64": base64.b64encode(cert_der),
        "certificate-pem": cert.public_bytes(serialization.Encoding.PEM),
    }
    if isinstance(private, rsa.RSAPrivateKey):
        out["pkcs1-pem"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        out["pkcs1-der"] = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        out["spki-base64"] = base64.b64encode(out["der"])
    return out
