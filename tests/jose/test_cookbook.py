"""RFC 7520 (JOSE Cookbook) examples: the compact figures verify, everything else is refused.

Positive: the compact outputs of §4.1 (RS256), §4.2 (PS384), §4.3 (ES512), §4.4
(HS256) and the Ed25519 example verify with the public part of the example key
(private members stripped, as a verifier would receive it); for the
deterministic algorithms (RS256, HS256) re-signing reproduces the signature.

Negative: the JSON serializations (general and flattened), the detached
payload of §4.5, the unprotected-header forms of §4.6/4.7, the several
signatures of §4.8 and RFC 7797 ``b64: false`` are not a compact JWS with an
attached payload and one signature, so they are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey

from apishield.jose import (
    JOSEError,
    b64url_decode,
    b64url_encode,
    import_jwk,
    parse_compact_jws,
    verify_signature,
)
from tests.jose.vectors import COOKBOOK, load, requires_vectors

pytestmark = requires_vectors

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
COMPACT_EXAMPLES = [
    "jws/4_1.rsa_v15_signature.json",
    "jws/4_2.rsa-pss_signature.json",
    "jws/4_3.ecdsa_signature.json",
    "jws/4_4.hmac-sha2_integrity_protection.json",
    "curve25519/jws.json",
]
JSON_ONLY_EXAMPLES = [
    "jws/4_6.protecting_specific_header_fields.json",
    "jws/4_7.protecting_content_only.json",
    "jws/4_8.multiple_signatures.json",
    "rfc7797/4.2.hmac-sha2_b64_false.json",
]
ALL_EXAMPLES = [*COMPACT_EXAMPLES, "jws/4_5.signature_with_detached_content.json", *JSON_ONLY_EXAMPLES]


def _example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = load(COOKBOOK / name)
    return doc


def _public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


@pytest.mark.parametrize("name", COMPACT_EXAMPLES)
def test_compact_example_verifies(name: str) -> None:
    example = _example(name)
    alg = example["input"]["alg"]
    key = import_jwk(_public(example["input"]["key"]), allowed_algs=frozenset({alg}))
    jws = parse_compact_jws(example["output"]["compact"])
    verify_signature(jws, key)
    assert jws.alg == alg
    assert jws.header == example["signing"]["protected"]
    assert jws.payload == example["input"]["payload"].encode("utf-8")
    assert jws.signing_input == example["signing"]["sig-input"].encode("ascii")


@pytest.mark.parametrize("name", COMPACT_EXAMPLES)
def test_compact_example_with_modified_payload_fails(name: str) -> None:
    example = _example(name)
    alg = example["input"]["alg"]
    key = import_jwk(_public(example["input"]["key"]), allowed_algs=frozenset({alg}))
    header, payload, signature = example["output"]["compact"].split(".")
    forged = b64url_encode(b64url_decode(payload) + b"!")
    with pytest.raises(JOSEError, match="signature verification failed"):
        verify_signature(parse_compact_jws(f"{header}.{forged}.{signature}"), key)


def test_rs256_example_is_reproducible() -> None:
    example = _example("jws/4_1.rsa_v15_signature.json")
    private = RSAKey.import_key(example["input"]["key"]).private_key
    assert private is not None
    signature = private.sign(example["signing"]["sig-input"].encode(), padding.PKCS1v15(), hashes.SHA256())
    assert b64url_encode(signature) == example["signing"]["sig"]


def test_hs256_example_is_reproducible() -> None:
    example = _example("jws/4_4.hmac-sha2_integrity_protection.json")
    secret = b64url_decode(example["input"]["key"]["k"])
    mac = hmac.new(secret, example["signing"]["sig-input"].encode(), hashlib.sha256).digest()
    assert b64url_encode(mac) == example["signing"]["sig"]


def _json_forms() -> list[tuple[str, str]]:
    if not COOKBOOK.is_dir():
        return []
    return [
        (name, form)
        for name in ALL_EXAMPLES
        for form in ("json", "json_flat")
        if form in _example(name)["output"]
    ]


@pytest.mark.parametrize(("name", "form"), _json_forms())
def test_json_serializations_are_refused(name: str, form: str) -> None:
    example = _example(name)
    serialized = json.dumps(example["output"][form])
    with pytest.raises(JOSEError, match="JSON serialization is not accepted"):
        parse_compact_jws(serialized)


def test_detached_content_is_refused() -> None:
    example = _example("jws/4_5.signature_with_detached_content.json")
    key = import_jwk(example["input"]["key"], allowed_algs=frozenset({"HS256"}))
    jws = parse_compact_jws(example["output"]["compact"])  # "header..signature": an empty payload
    assert jws.payload == b""
    with pytest.raises(JOSEError, match="signature verification failed"):
        verify_signature(jws, key)


def test_multiple_signatures_cannot_be_made_compact() -> None:
    """Each signature of §4.8 pasted into a compact form still needs its own key and header."""
    example = _example("jws/4_8.multiple_signatures.json")
    payload = example["output"]["json"]["payload"]
    outcomes = []
    for entry in example["output"]["json"]["signatures"]:
        if "protected" not in entry:  # the HS256 signature has only an unprotected header
            with pytest.raises(JOSEError, match="JOSE header is missing"):
                parse_compact_jws(f".{payload}.{entry['signature']}")
            outcomes.append("no protected header")
            continue
        jws = parse_compact_jws(f"{entry['protected']}.{payload}.{entry['signature']}")
        outcomes.append(jws.alg)
    assert outcomes  # one token can never carry them together: four segments or more are refused
    with pytest.raises(JOSEError, match="exactly three segments"):
        parse_compact_jws(
            ".".join([payload, *(e["signature"] for e in example["output"]["json"]["signatures"])])
        )


def test_protecting_content_only_has_no_protected_header() -> None:
    example = _example("jws/4_7.protecting_content_only.json")
    flat = example["output"]["json_flat"]
    with pytest.raises(JOSEError, match="JOSE header is missing"):
        parse_compact_jws(f".{flat['payload']}.{flat['signature']}")


def test_unencoded_payload_b64_false_is_refused() -> None:
    example = _example("rfc7797/4.2.hmac-sha2_b64_false.json")
    protected = b64url_encode(json.dumps(example["signing"]["protected"]).encode())
    payload = b64url_encode(example["input"]["payload"].encode())
    with pytest.raises(JOSEError, match="'b64' is not accepted"):
        parse_compact_jws(f"{protected}.{payload}.{example['signing']['sig']}")
    with pytest.raises(JOSEError, match="unencoded payloads"):
        parse_compact_jws(
            f"{protected}.{payload}.{example['signing']['sig']}",
            allowed_header_params=frozenset({"b64"}),
            understood_crit=frozenset({"b64"}),
        )


# -- the keys of RFC 7520 §3 ---------------------------------------------------------------------


def _jwk(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = load(COOKBOOK / "jwk" / name)
    return doc


@pytest.mark.parametrize("name", ["3_2.ec_private_key.json", "3_4.rsa_private_key.json"])
def test_private_keys_are_refused_as_verification_keys(name: str) -> None:
    with pytest.raises(JOSEError, match="private key material"):
        import_jwk(_jwk(name), allowed_algs=frozenset({"ES512", "RS256"}))


def test_ec_public_key_binds_to_the_curve_algorithm() -> None:
    key = import_jwk(_jwk("3_1.ec_public_key.json"), allowed_algs=frozenset({"ES512", "RS256"}))
    assert (key.alg, key.kty, key.kid) == ("ES512", "EC", "bilbo.baggins@hobbiton.example")
    with pytest.raises(JOSEError, match="no allowed algorithm fits"):
        import_jwk(_jwk("3_1.ec_public_key.json"), allowed_algs=frozenset({"ES256"}))


def test_rsa_public_key_without_alg() -> None:
    jwk = _jwk("3_3.rsa_public_key.json")
    assert import_jwk(jwk, allowed_algs=frozenset({"PS384", "ES256"})).alg == "PS384"
    with pytest.raises(JOSEError, match="ambiguous alg"):
        import_jwk(jwk, allowed_algs=frozenset({"RS256", "PS384"}))
    assert import_jwk(jwk, allowed_algs=frozenset({"RS256", "PS384"}), default_alg="RS256").alg == "RS256"


def test_symmetric_keys() -> None:
    mac = _jwk("3_5.symmetric_key_mac_computation.json")
    assert import_jwk(mac, allowed_algs=frozenset({"HS256"})).alg == "HS256"
    with pytest.raises(JOSEError, match="not allowed"):
        import_jwk(mac, allowed_algs=frozenset({"RS256"}))
    with pytest.raises(JOSEError):  # an A256GCM encryption key (use: enc)
        import_jwk(_jwk("3_6.symmetric_key_encryption.json"), allowed_algs=frozenset({"HS256"}))


def test_cookbook_files_are_vendored_with_their_license() -> None:
    assert (COOKBOOK / "LICENSE").is_file() and (COOKBOOK / "NOTICE.md").is_file()
    assert all((COOKBOOK / name).is_file() for name in ALL_EXAMPLES)
    assert len(_json_forms()) == 19  # 10 examples in general form, 9 of them also flattened
