"""JWK and JWK Set vetting (RFC 7517, RFC 7518 §3 and §6, RFC 8725 §3.1/3.5), and HMAC secrets."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey

from apishield.jose import JOSEError, KeySet, import_hmac_secret, import_jwk, import_jwks
from apishield.jose.rfc7518 import ALGORITHMS
from tests.jose.tokens import b64, new_signer, public_key_encodings
from tests.jose.vectors import WYCHEPROOF, load_if_present

ALL = frozenset(ALGORITHMS)
RSA_2048 = new_signer("RS256", "rsa-1")
EC_P256 = new_signer("ES256", "ec-1")
ED25519 = new_signer("EdDSA", "ed-1")


def jwk_of(signer: Any, **changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = signer.public_jwk()
    for name, value in changes.items():
        if value is None:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return jwk


def refused(jwk: Any, match: str, allowed: frozenset[str] = ALL, **kwargs: Any) -> str:
    with pytest.raises(JOSEError, match=match) as info:
        import_jwk(jwk, allowed_algs=allowed, **kwargs)
    return info.value.reason


# -- algorithm binding (RFC 8725 §3.1) -----------------------------------------------------------


def test_alg_from_the_jwk() -> None:
    key = import_jwk(jwk_of(RSA_2048, alg="PS256"), allowed_algs=ALL)
    assert (key.alg, key.kty, key.kid) == ("PS256", "RSA", "rsa-1")


def test_jwk_alg_must_be_allowed_and_known() -> None:
    refused(jwk_of(RSA_2048, alg="RS256"), "not allowed", frozenset({"PS256"}))
    for alg in ("ES521", "RSA1_5", "A256GCM", "none", "rs256", 256):
        refused(jwk_of(RSA_2048, alg=alg), "not a supported JWS algorithm")


def test_default_alg_and_inference() -> None:
    rsa_jwk = jwk_of(RSA_2048, alg=None)
    assert import_jwk(rsa_jwk, allowed_algs=frozenset({"RS256", "ES256"})).alg == "RS256"
    refused(rsa_jwk, "ambiguous alg", frozenset({"RS256", "PS256"}))
    refused(rsa_jwk, "ambiguous alg", frozenset({"RS256", "RS512"}))
    assert import_jwk(rsa_jwk, allowed_algs=frozenset({"RS256", "PS256"}), default_alg="PS256").alg == "PS256"
    refused(rsa_jwk, "default algorithm is not allowed", frozenset({"RS256"}), default_alg="PS256")
    refused(rsa_jwk, "key type does not match", frozenset({"ES256"}), default_alg="ES256")
    refused(rsa_jwk, "no allowed algorithm fits", frozenset({"ES256", "HS256"}))
    ec_jwk = jwk_of(EC_P256, alg=None)
    assert import_jwk(ec_jwk, allowed_algs=ALL).alg == "ES256"  # the curve decides
    assert import_jwk(jwk_of(ED25519, alg=None), allowed_algs=frozenset({"EdDSA", "RS256"})).alg == "EdDSA"
    refused(jwk_of(ED25519, alg=None), "ambiguous alg", frozenset({"EdDSA", "Ed25519"}))


def test_allowed_algs_must_be_supported() -> None:
    refused(jwk_of(RSA_2048), "allowed_algs", frozenset({"RS256", "none"}))
    refused(jwk_of(RSA_2048), "allowed_algs", frozenset())


def test_kty_and_curve_consistency() -> None:
    refused(jwk_of(EC_P256, alg="ES384"), "curve does not match")
    refused(jwk_of(EC_P256, alg="RS256"), "key type does not match")
    refused(jwk_of(EC_P256, crv="P-384"), "curve does not match")
    refused({**jwk_of(EC_P256), "kty": "RSA"}, "key type does not match")
    refused(jwk_of(ED25519, alg="Ed448"), "curve does not match")
    for kty in ("oKP", "ec", "", None, 1, "X"):
        refused(jwk_of(EC_P256, kty=kty), "unsupported key type")
    refused(["not", "an", "object"], "JSON object")


def test_okp_encryption_curve_refused() -> None:
    refused({"kty": "OKP", "crv": "X25519", "x": b64(b"\x09" * 32)}, "no allowed algorithm fits")
    refused({"kty": "OKP", "crv": "X25519", "x": b64(b"\x09" * 32), "alg": "EdDSA"}, "curve does not match")


def test_ed448_and_fully_specified_names() -> None:
    ed448 = new_signer("Ed448")
    assert import_jwk(jwk_of(ed448), allowed_algs=ALL).alg == "Ed448"
    assert import_jwk(jwk_of(ed448, alg="EdDSA"), allowed_algs=ALL).signature_length == 114
    assert import_jwk(jwk_of(ED25519, alg="Ed25519"), allowed_algs=ALL).signature_length == 64


# -- use, key_ops, private members ---------------------------------------------------------------


def test_use_and_key_ops() -> None:
    assert import_jwk(jwk_of(EC_P256, use="sig", key_ops=["verify"]), allowed_algs=ALL).alg == "ES256"
    assert import_jwk(jwk_of(EC_P256, key_ops=["sign", "verify"]), allowed_algs=ALL).alg == "ES256"
    refused(jwk_of(EC_P256, use="enc"), r"not meant for signatures \(use\)")
    refused(jwk_of(EC_P256, use="SIG"), "use")
    refused(jwk_of(EC_P256, key_ops=["encrypt"]), "does not allow verify")
    refused(jwk_of(EC_P256, key_ops=[]), "does not allow verify")
    refused(jwk_of(EC_P256, key_ops="verify"), "array of strings")
    refused(jwk_of(EC_P256, key_ops=["verify", "verify"]), "twice")


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"])
def test_private_rsa_members_refused(member: str) -> None:
    reason = refused(jwk_of(RSA_2048, **{member: "AQAB"}), "private key material in a public key set")
    assert "AQAB" not in reason


@pytest.mark.parametrize("signer", [EC_P256, ED25519])
def test_private_curve_members_refused(signer: Any) -> None:
    refused(jwk_of(signer, d=b64(b"\x01" * 32)), "private key material")
    refused(jwk_of(signer, k=b64(b"\x01" * 32)), "private key material")


def test_real_private_jwk_refused() -> None:
    private = RSAKey.import_key(RSA_2048.private).as_dict(private=True)
    refused({**private, "alg": "RS256"}, "private key material")
    refused(
        {**ECKey.import_key(EC_P256.private).as_dict(private=True), "alg": "ES256"}, "private key material"
    )
    refused(
        {**OKPKey.import_key(ED25519.private).as_dict(private=True), "alg": "EdDSA"}, "private key material"
    )


# -- RSA -----------------------------------------------------------------------------------------


def _rsa_jwk(n: int, e: int, **extra: Any) -> dict[str, Any]:
    return {
        "kty": "RSA",
        "n": b64(n.to_bytes((n.bit_length() + 7) // 8, "big")),
        "e": b64(e.to_bytes((e.bit_length() + 7) // 8, "big")),
        "alg": "RS256",
        **extra,
    }


def test_rsa_key_size() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    refused(_rsa_jwk(small.n, small.e), "shorter than 2048 bits")
    n = RSA_2048.private.public_key().public_numbers().n
    assert import_jwk(_rsa_jwk(n, 65537), allowed_algs=ALL).signature_length == 256
    refused(_rsa_jwk((1 << 8200) | 1, 65537), "longer than 8192 bits")


def test_rsa_leading_zero_octets_do_not_count_as_key_size() -> None:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    padded = b"\x00" * 200 + numbers.n.to_bytes(128, "big")
    refused({"kty": "RSA", "alg": "RS256", "n": b64(padded), "e": "AQAB"}, "shorter than 2048 bits")
    big = RSA_2048.private.public_key().public_numbers()
    with_zero = {"kty": "RSA", "alg": "RS256", "n": b64(b"\x00" + big.n.to_bytes(256, "big")), "e": "AQAB"}
    assert (
        import_jwk(with_zero, allowed_algs=ALL).thumbprint
        == import_jwk(_rsa_jwk(big.n, 65537), allowed_algs=ALL).thumbprint
    )


@pytest.mark.parametrize(
    ("e", "match"), [(1, "too small"), (0, "too small"), (2, "too small"), (65536, "even")]
)
def test_rsa_exponent(e: int, match: str) -> None:
    n = RSA_2048.private.public_key().public_numbers().n
    refused(_rsa_jwk(n, e) if e else {**_rsa_jwk(n, 3), "e": "AA"}, match)


def test_rsa_exponent_three_is_accepted() -> None:
    key = rsa.generate_private_key(public_exponent=3, key_size=2048).public_key().public_numbers()
    assert import_jwk(_rsa_jwk(key.n, 3), allowed_algs=ALL).alg == "RS256"


def test_rsa_even_modulus_refused() -> None:
    n = RSA_2048.private.public_key().public_numbers().n
    refused(_rsa_jwk(n + 1, 65537), "modulus is even")  # cryptography alone would accept it


def test_roca_key_refused() -> None:
    doc = load_if_present(WYCHEPROOF / "json_web_key_test.json")
    if doc is None:
        pytest.skip("tests/vectors is missing")
    (group,) = [g for g in doc["testGroups"] if g["comment"] == "jws_rsa_roca_key"]
    refused(group["public"]["keys"][0], "ROCA")


def test_generated_keys_have_no_roca_fingerprint() -> None:
    for _ in range(3):
        n = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers().n
        assert import_jwk(_rsa_jwk(n, 65537), allowed_algs=ALL)


def test_rsa_members_must_be_strict_base64url() -> None:
    jwk = jwk_of(RSA_2048)
    refused({**jwk, "n": jwk["n"] + "="}, "JWK member 'n': invalid base64url")
    refused({**jwk, "e": "AQA+"}, "JWK member 'e'")
    refused({**jwk, "n": 12345}, "'n' is missing or not a string")
    refused(jwk_of(RSA_2048, e=None), "'e' is missing")


# -- EC and OKP ----------------------------------------------------------------------------------


def test_ec_point_must_be_on_the_curve() -> None:
    jwk = jwk_of(EC_P256)
    y = bytearray(base64.urlsafe_b64decode(jwk["y"] + "="))
    y[-1] ^= 1
    refused({**jwk, "y": b64(bytes(y))}, "key material is invalid")


def test_ec_coordinates_have_full_length() -> None:
    jwk = jwk_of(EC_P256)
    x = base64.urlsafe_b64decode(jwk["x"] + "=")
    refused({**jwk, "x": b64(x[1:])}, "full length")
    refused({**jwk, "x": b64(b"\x00" + x)}, "full length")


def test_okp_length() -> None:
    jwk = jwk_of(ED25519)
    refused({**jwk, "x": b64(b"\x01" * 31)}, "length of the curve")


# -- oct keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_oct_key_length(alg: str, size: int) -> None:
    assert import_jwk({"kty": "oct", "alg": alg, "k": b64(b"k" * size)}, allowed_algs=ALL).alg == alg
    refused({"kty": "oct", "alg": alg, "k": b64(b"k" * (size - 1))}, f"shorter than {size} bytes")
    refused({"kty": "oct", "alg": alg, "k": ""}, "empty HMAC key")


def test_oct_only_when_hmac_is_allowed() -> None:
    refused({"kty": "oct", "k": b64(b"k" * 64)}, "symmetric keys are not allowed", frozenset({"RS256"}))
    assert (
        import_jwk({"kty": "oct", "k": b64(b"k" * 64)}, allowed_algs=frozenset({"HS512", "RS256"})).alg
        == "HS512"
    )


def test_oct_key_that_is_a_public_key_refused() -> None:
    pem = RSA_2048.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refused({"kty": "oct", "alg": "HS256", "k": b64(pem)}, "algorithm confusion")


# -- kid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["", 5, ["k"], "k" * 257])
def test_kid_type(kid: Any) -> None:
    refused(jwk_of(EC_P256, kid=kid), "kid must be")


# -- thumbprints (RFC 7638) ----------------------------------------------------------------------


def test_thumbprint_rfc8037_example() -> None:
    # RFC 8037 A.2/A.3: the Ed25519 example key and its thumbprint
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert (
        import_jwk(jwk, allowed_algs=frozenset({"EdDSA"})).thumbprint
        == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    )


@pytest.mark.parametrize("signer", [RSA_2048, EC_P256, ED25519])
def test_thumbprint_matches_joserfc(signer: Any) -> None:
    key = import_jwk(jwk_of(signer, use="sig", kid="other"), allowed_algs=ALL)
    assert key.thumbprint == key.key.thumbprint()
    assert (
        key.thumbprint == import_jwk(jwk_of(signer), allowed_algs=ALL).thumbprint
    )  # members beyond do not count


# -- key sets (RFC 7517 §5) ----------------------------------------------------------------------


def test_key_set() -> None:
    second = new_signer("ES256", "ec-2")
    keys = import_jwks({"keys": [jwk_of(EC_P256), jwk_of(second)], "other": 1}, allowed_algs=ALL)
    assert [k.kid for k in keys.keys] == ["ec-1", "ec-2"]
    assert keys.find("ec-2") is keys.by_kid["ec-2"]
    assert keys.find("EC-2") is None and keys.find(None) is None and keys.find("ec-") is None
    assert not keys.symmetric


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([], "JSON object"),
        ({}, "'keys' array"),
        ({"keys": {}}, "'keys' array"),
        ({"keys": []}, "no keys"),
        ({"keys": [1]}, "key #0: a JWK must be a JSON object"),
    ],
)
def test_key_set_shape(doc: Any, match: str) -> None:
    with pytest.raises(JOSEError, match=match):
        import_jwks(doc, allowed_algs=ALL)


def test_one_bad_key_refuses_the_set() -> None:
    doc = {"keys": [jwk_of(EC_P256), jwk_of(RSA_2048, use="enc")]}
    with pytest.raises(JOSEError, match=r"key #1: the key is not meant for signatures"):
        import_jwks(doc, allowed_algs=ALL)


def test_duplicate_kid_refused() -> None:
    doc = {"keys": [jwk_of(EC_P256), jwk_of(new_signer("ES256", "ec-1"))]}
    with pytest.raises(JOSEError, match="duplicate kid"):
        import_jwks(doc, allowed_algs=ALL)


def test_mixed_symmetric_and_asymmetric_refused() -> None:
    doc = {"keys": [jwk_of(EC_P256), {"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(b"s" * 32)}]}
    with pytest.raises(JOSEError, match="mixes symmetric and asymmetric"):
        import_jwks(doc, allowed_algs=ALL)


def test_keys_without_kid() -> None:
    single = import_jwks({"keys": [jwk_of(EC_P256, kid=None)]}, allowed_algs=ALL)
    assert single.find(None) is single.keys[0]
    assert single.find("any") is single.keys[0]  # the set names no keys, so any kid may use its key
    with pytest.raises(JOSEError, match="without kid in a set of several"):
        import_jwks({"keys": [jwk_of(EC_P256, kid=None), jwk_of(RSA_2048)]}, allowed_algs=ALL)


def test_single_key_with_kid_only_matches_that_kid() -> None:
    keys = KeySet.single(import_jwk(jwk_of(EC_P256), allowed_algs=ALL))
    assert keys.find("ec-1") is keys.keys[0]
    assert keys.find(None) is keys.keys[0]
    assert keys.find("ec-2") is None


def test_too_many_keys() -> None:
    many = [jwk_of(EC_P256, kid=f"k{i}") for i in range(101)]
    with pytest.raises(JOSEError, match="more than 100 keys"):
        import_jwks({"keys": many}, allowed_algs=ALL)


# -- HMAC secrets and key confusion (JWT-04, JWT-05) ---------------------------------------------


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secret_length(alg: str, size: int) -> None:
    key = import_hmac_secret(b"s" * size, alg)
    assert (key.alg, key.kty, key.kid, key.signature_length) == (alg, "oct", None, size)
    with pytest.raises(JOSEError, match=f"shorter than {size} bytes"):
        import_hmac_secret(b"s" * (size - 1), alg)
    assert import_hmac_secret(b"s" * (size - 1), alg, allow_weak=True).alg == alg
    assert import_hmac_secret(b"secret", alg, allow_weak=True).alg == alg  # joserfc's warning is absorbed


@pytest.mark.parametrize("secret", [b"", b"secret", b"password", b"your-256-bit-secret", b"1"])
def test_blank_and_common_secrets_refused(secret: bytes) -> None:
    with pytest.raises(JOSEError, match=r"empty HMAC key|shorter than"):
        import_hmac_secret(secret, "HS256")


def test_empty_secret_refused_even_when_weak_is_allowed() -> None:
    with pytest.raises(JOSEError, match="empty HMAC key"):
        import_hmac_secret(b"", "HS256", allow_weak=True)


def test_hmac_secret_needs_an_hmac_alg() -> None:
    for alg in ("RS256", "none", "hs256"):
        with pytest.raises(JOSEError, match="not an HMAC algorithm"):
            import_hmac_secret(b"s" * 64, alg)
    with pytest.raises(JOSEError, match="must be bytes"):
        import_hmac_secret("s" * 64, "HS256")  # type: ignore[arg-type]


@pytest.mark.parametrize("signer", [RSA_2048, EC_P256, ED25519], ids=["rsa", "ec", "ed25519"])
def test_public_key_bytes_are_never_an_hmac_secret(signer: Any) -> None:
    for encoding, data in public_key_encodings(signer.private, signer.public_jwk()).items():
        for alg in ("HS256", "HS384", "HS512"):
            with pytest.raises(JOSEError, match="algorithm confusion"):
                import_hmac_secret(data, alg, allow_weak=True)
            with pytest.raises(JOSEError, match="algorithm confusion"):
                import_jwk({"kty": "oct", "alg": alg, "k": b64(data)}, allowed_algs=ALL)
        assert encoding


def test_verification_key_rejects_a_mismatched_construction() -> None:
    key = import_jwk(jwk_of(EC_P256), allowed_algs=ALL)
    with pytest.raises(JOSEError, match="does not match"):
        type(key)(kid=None, alg="RS256", kty="EC", key=key.key, thumbprint=key.thumbprint)
    rebuilt = type(key)(kid="x", alg="ES256", kty="EC", key=key.key, thumbprint=key.thumbprint)
    assert rebuilt.signature_length == 64
    with pytest.raises(JOSEError, match="only the public key"):
        type(key)(kid=None, alg="ES256", kty="EC", key=ECKey.import_key(EC_P256.private), thumbprint="t")
