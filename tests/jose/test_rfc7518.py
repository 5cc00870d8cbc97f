"""The algorithm table and the signature wrapper (RFC 7518 §3, RFC 8037, RFC 8725 §3.1)."""

from __future__ import annotations

import inspect

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc._rfc7518.jws_algs import HMACAlgorithm

from apishield.jose import ALGORITHMS, CompactJWS, JOSEError, verify_signature
from apishield.jose.rfc7518 import ecdsa_scalars_in_range, verify
from tests.jose.tokens import new_signer

MESSAGE = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


def test_table() -> None:
    assert "none" not in ALGORITHMS
    assert {a for a, s in ALGORITHMS.items() if s.symmetric} == {"HS256", "HS384", "HS512"}
    assert {a: s.hash_bytes for a, s in ALGORITHMS.items() if s.symmetric} == {
        "HS256": 32,
        "HS384": 48,
        "HS512": 64,
    }
    assert {a: s.fixed_signature_length for a, s in ALGORITHMS.items() if s.kty == "EC"} == {
        "ES256": 64,
        "ES384": 96,
        "ES512": 132,
    }


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_group_orders(alg: str) -> None:
    """n is the curve order: n - 1 is a valid private scalar and n is not."""
    n = ALGORITHMS[alg].group_order
    ec.derive_private_key(n - 1, CURVES[alg])
    with pytest.raises(ValueError):
        ec.derive_private_key(n, CURVES[alg])


def test_hmac_primitive_compares_in_constant_time() -> None:
    """apishield relies on joserfc's HMAC verify using hmac.compare_digest."""
    assert "compare_digest" in inspect.getsource(HMACAlgorithm.verify)


def _jws(alg: str, signature: bytes) -> CompactJWS:
    return CompactJWS({"alg": alg}, b"", MESSAGE, signature)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_psychic_and_out_of_range_signatures(alg: str) -> None:
    signer = new_signer(alg)
    key = signer.verification_key()
    size = ALGORITHMS[alg].fixed_signature_length // 2
    n = ALGORITHMS[alg].group_order
    good = signer.sign(MESSAGE)
    verify_signature(_jws(alg, good), key)
    r, s = int.from_bytes(good[:size], "big"), int.from_bytes(good[size:], "big")
    specials = [0, 1, n - 1, n, n + 1, 2 ** (8 * size) - 1]
    for bad_r in specials:
        for bad_s in specials:
            sig = bad_r.to_bytes(size, "big") + bad_s.to_bytes(size, "big")
            with pytest.raises(JOSEError, match="signature verification failed"):
                verify_signature(_jws(alg, sig), key)
    for bad_r, bad_s in ((r + n, s), (r, s + n)):  # the unreduced twins of a valid signature
        if max(bad_r, bad_s) < 2 ** (8 * size):  # representable in the field size (always for P-521)
            with pytest.raises(JOSEError, match="signature verification failed"):
                verify_signature(_jws(alg, bad_r.to_bytes(size, "big") + bad_s.to_bytes(size, "big")), key)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_signature_must_be_exact_r_s(alg: str) -> None:
    signer = new_signer(alg)
    key = signer.verification_key()
    good = signer.sign(MESSAGE)
    size = len(good) // 2
    der = encode_dss_signature(int.from_bytes(good[:size], "big"), int.from_bytes(good[size:], "big"))
    for sig in (der, good + b"\x00", b"\x00" + good, good[:-1], good[1:], b"", b"\x00" * len(good)):
        with pytest.raises(JOSEError, match="signature verification failed"):
            verify_signature(_jws(alg, sig), key)


def test_rsa_signature_must_have_the_modulus_length() -> None:
    signer = new_signer("RS256")
    key = signer.verification_key()
    good = signer.sign(MESSAGE)
    assert key.signature_length == len(good) == 256
    for sig in (b"\x00" + good, good + b"\x00", good[:-1], good.lstrip(b"\x00")[:255], b""):
        with pytest.raises(JOSEError, match="signature verification failed"):
            verify_signature(_jws("RS256", sig), key)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_truncated_or_extended_mac(alg: str) -> None:
    signer = new_signer(alg)
    key = signer.verification_key()
    good = signer.sign(MESSAGE)
    verify_signature(_jws(alg, good), key)
    for sig in (good[:-1], good[:16], good + b"\x00", b"", bytes(len(good))):
        with pytest.raises(JOSEError):
            verify_signature(_jws(alg, sig), key)


@pytest.mark.parametrize("alg", ["EdDSA", "Ed448"])
def test_eddsa_lengths(alg: str) -> None:
    signer = new_signer(alg)
    key = signer.verification_key()
    good = signer.sign(MESSAGE)
    verify_signature(_jws(alg, good), key)
    for sig in (good[:-1], good + b"\x00", bytes(len(good))):
        with pytest.raises(JOSEError):
            verify_signature(_jws(alg, sig), key)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ecdsa_range_check_itself(alg: str) -> None:
    """The range check runs before the backend (which rejects these too, so test it directly)."""
    n = ALGORITHMS[alg].group_order
    size = ALGORITHMS[alg].fixed_signature_length // 2

    def sig(r: int, s: int) -> bytes:
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    assert ecdsa_scalars_in_range(sig(1, 1), n)
    assert ecdsa_scalars_in_range(sig(n - 1, n - 1), n)
    for r, s in ((0, 0), (0, 1), (1, 0), (n, 1), (1, n), (n + 1, 1), (n - 1, n)):
        assert not ecdsa_scalars_in_range(sig(r, s), n)


def test_wrapper_refuses_wrong_length_before_the_backend() -> None:
    signer = new_signer("ES256")
    key = signer.verification_key()
    assert verify(key.spec, key.key, MESSAGE, signer.sign(MESSAGE), 64)
    assert not verify(key.spec, key.key, MESSAGE, signer.sign(MESSAGE), 65)


# -- algorithm pinning (RFC 8725 §3.1) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("key_alg", "header_alg"),
    [
        ("RS256", "PS256"),
        ("RS256", "RS512"),
        ("PS256", "RS256"),
        ("ES256", "ES384"),
        ("RS256", "HS256"),
        ("EdDSA", "Ed25519"),
    ],
)
def test_header_alg_must_equal_the_key_alg(key_alg: str, header_alg: str) -> None:
    signer = new_signer(key_alg)
    key = signer.verification_key()
    if header_alg[:2] in ("RS", "PS") and key_alg[:2] in ("RS", "PS"):
        signature = signer.sign(MESSAGE, header_alg)  # a real signature of the substituted algorithm
    else:
        signature = signer.sign(MESSAGE)
    with pytest.raises(JOSEError, match="does not match the key"):
        verify_signature(_jws(header_alg, signature), key)
