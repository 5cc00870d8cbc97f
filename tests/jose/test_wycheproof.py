"""Wycheproof vectors through apishield's JOSE layer (vendored in tests/vectors/wycheproof).

* ``json_web_signature_test.json``: every group; the key is the group's
  ``public`` JWK (else ``private``), its algorithm the key's ``alg`` (never the
  token's), and each ``jws`` goes through ``parse_compact_jws`` and
  ``verify_signature``. A refusal at key import counts as a rejection.
* ``json_web_key_test.json``: each group's key set through ``import_jwks``;
  "invalid" may surface at import or at verification.
* the raw signature files (ES256/384/512 in P1363 form, EdDSA, RS256/384/512,
  PS256/384/512): the key from ``publicKeyJwk``/``keyJwk`` (or, where a group
  has none, from the point's coordinates), ``sig`` over ``msg`` through
  ``verify_signature`` with the key's algorithm.

Every "valid" case must be accepted and every "invalid" one rejected;
"acceptable" outcomes are pinned in :data:`ACCEPTABLE`. The eight mislabelled
JWS cases are pinned in :data:`JWS_OVERRIDES` with the reason each label is
wrong, and a test proves each override is still needed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from apishield.jose import (
    ALGORITHMS,
    CompactJWS,
    JOSEError,
    b64url_encode,
    import_jwk,
    import_jwks,
    parse_compact_jws,
    verify_signature,
)
from tests.jose.vectors import WYCHEPROOF, load_if_present, requires_vectors

pytestmark = requires_vectors

ALL_ALGS = frozenset(ALGORITHMS)


@dataclass(frozen=True)
class Override:
    """A vector whose label or key is wrong upstream, and what a correct verifier does instead."""

    result: str | None  # the expected result, when the label is wrong
    alg: str | None  # the algorithm to pin, when the group JWK names the wrong one
    reason: str


_FIG20 = Override(
    None,
    "PS384",
    "RFC 7520 Figure 20 (§4.2) is a PS384 signature, but the group JWK says alg PS256; a verifier "
    "that pins the algorithm from the key (RFC 8725 §3.1) must reject it, so the key is pinned to "
    "PS384 as RFC 7520 states",
)
_FIG27 = Override(
    None,
    "ES512",
    "RFC 7520 Figure 27 (§4.3) is an ES512 signature, but the group JWK says alg ES521, which is "
    "not a registered JWA name; the key is pinned to ES512 as RFC 7520 states",
)
_SAME_AS_357 = Override(
    "valid",
    None,
    "byte-identical to tcId 357 (ValidMac, labelled valid): the token contains no padding or other "
    "defect, so a correct RFC 7515 verifier accepts it",
)
_QUESTION_MARK = Override(
    "invalid",
    None,
    "a '?' was inserted after signing: it is outside the base64url alphabet (RFC 7515 §2) and the MAC "
    "no longer covers the received signing input, so a correct verifier rejects it",
)

JWS_OVERRIDES: dict[int, Override] = {
    346: _FIG20,
    350: _FIG20,
    347: _FIG27,
    351: _FIG27,
    367: _SAME_AS_357,
    370: _SAME_AS_357,
    372: _QUESTION_MARK,
    373: _QUESTION_MARK,
}

# "acceptable" cases: either outcome is allowed; apishield's is pinned so a change is noticed
ACCEPTABLE: dict[tuple[str, int], bool] = {
    # PKCS#1 v1.5 DigestInfo without the NULL parameters: OpenSSL rejects it
    ("rsa_signature_2048_sha256_test.json", 8): False,
    ("rsa_signature_2048_sha384_test.json", 8): False,
    ("rsa_signature_2048_sha512_test.json", 8): False,
}

RAW_SIGNATURE_FILES = {
    "ecdsa_secp256r1_sha256_p1363_test.json": "ES256",
    "ecdsa_secp384r1_sha384_p1363_test.json": "ES384",
    "ecdsa_secp521r1_sha512_p1363_test.json": "ES512",
    "ed25519_test.json": "EdDSA",
    "rsa_signature_2048_sha256_test.json": "RS256",
    "rsa_signature_2048_sha384_test.json": "RS384",
    "rsa_signature_2048_sha512_test.json": "RS512",
    "rsa_pss_2048_sha256_mgf1_32_test.json": "PS256",
    "rsa_pss_2048_sha384_mgf1_48_test.json": "PS384",
    "rsa_pss_4096_sha512_mgf1_64_test.json": "PS512",
}
_EC_CURVES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}


def _cases(doc: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(group, test) for group in doc["testGroups"] for test in group["tests"]]


def _counts_id(name: str, doc: dict[str, Any] | None, overridden: int = 0) -> str:
    if doc is None:
        return f"{name}-missing"
    counts = Counter(test["result"] for _, test in _cases(doc))
    parts = [f"valid{counts['valid']}", f"invalid{counts['invalid']}"]
    if counts["acceptable"]:
        parts.append(f"acceptable{counts['acceptable']}")
    if overridden:
        parts.append(f"overridden{overridden}")
    return "-".join([name, *parts])


def _expected(test: dict[str, Any], override: Override | None) -> str:
    return override.result if override is not None and override.result else str(test["result"])


def _report(failures: list[str], tally: Counter[str]) -> str:
    return f"{len(failures)} mismatches (tally {dict(tally)}):\n" + "\n".join(failures[:40])


# -- json_web_signature_test.json ----------------------------------------------------------------

JWS_DOC = load_if_present(WYCHEPROOF / "json_web_signature_test.json")


def _jws_outcome(jwk: dict[str, Any], jws: Any, alg: str | None = None) -> tuple[bool, str]:
    """(accepted, reason): import the group key, parse and verify the token."""
    if alg is not None:
        jwk = {**jwk, "alg": alg}
    try:
        key = import_jwk(jwk, allowed_algs=ALL_ALGS)
        token = jws if isinstance(jws, str) else json.dumps(jws)  # JSON serialization: fed as text
        verify_signature(parse_compact_jws(token), key)
    except JOSEError as exc:
        return False, exc.reason
    return True, ""


@pytest.mark.parametrize(
    "doc", [JWS_DOC], ids=[_counts_id("json_web_signature", JWS_DOC, len(JWS_OVERRIDES))]
)
def test_json_web_signature(doc: dict[str, Any]) -> None:
    failures: list[str] = []
    tally: Counter[str] = Counter()
    for group, test in _cases(doc):
        override = JWS_OVERRIDES.get(test["tcId"])
        accepted, reason = _jws_outcome(
            group.get("public") or group["private"], test["jws"], override.alg if override else None
        )
        expected = _expected(test, override)
        tally[f"{expected}/{'accepted' if accepted else 'rejected'}"] += 1
        if accepted != (expected == "valid"):
            failures.append(
                f"tcId {test['tcId']} {group['comment']}/{test['comment']}: {expected}, got {reason!r}"
            )
    assert not failures, _report(failures, tally)
    assert sum(tally.values()) == doc["numberOfTests"]


@pytest.mark.parametrize("tc_id", sorted(JWS_OVERRIDES))
def test_json_web_signature_override_still_needed(tc_id: int) -> None:
    """Without its override, the case's upstream label disagrees with a correct verifier."""
    assert JWS_DOC is not None
    ((group, test),) = [(g, t) for g, t in _cases(JWS_DOC) if t["tcId"] == tc_id]
    override = JWS_OVERRIDES[tc_id]
    jwk = group.get("public") or group["private"]
    accepted, _ = _jws_outcome(jwk, test["jws"])
    if override.alg is not None:
        # with the group's own JWK the RFC 7520 figure cannot verify; with the RFC's algorithm it does
        assert not accepted
        assert _jws_outcome(jwk, test["jws"], override.alg)[0]
        assert test["result"] == "valid"
    else:
        assert override.result != test["result"]
        assert accepted == (override.result == "valid")


def test_json_web_signature_mislabels_are_as_documented() -> None:
    """367/370 are byte-identical to 357; 372/373 carry a '?' that 357 does not."""
    assert JWS_DOC is not None
    tokens = {t["tcId"]: t["jws"] for _, t in _cases(JWS_DOC)}
    assert tokens[367] == tokens[357] == tokens[370]
    assert "?" in tokens[372] and "?" in tokens[373] and "?" not in tokens[357]
    assert tokens[372].replace("?", "") == tokens[357] == tokens[373].replace("?", "")


# -- json_web_key_test.json ----------------------------------------------------------------------

JWK_DOC = load_if_present(WYCHEPROOF / "json_web_key_test.json")


def _jwks_outcome(keyset: dict[str, Any], jws: str) -> tuple[bool, str]:
    try:
        keys = import_jwks(keyset, allowed_algs=ALL_ALGS)
        token = parse_compact_jws(jws)
        key = keys.find(token.kid)
        if key is None:
            return False, "no key with the token's kid"
        verify_signature(token, key)
    except JOSEError as exc:
        return False, exc.reason
    return True, ""


@pytest.mark.parametrize("doc", [JWK_DOC], ids=[_counts_id("json_web_key", JWK_DOC)])
def test_json_web_key(doc: dict[str, Any]) -> None:
    failures: list[str] = []
    tally: Counter[str] = Counter()
    for group, test in _cases(doc):
        accepted, reason = _jwks_outcome(group.get("public") or group["private"], test["jws"])
        tally[f"{test['result']}/{'accepted' if accepted else 'rejected'}"] += 1
        if accepted != (test["result"] == "valid"):
            failures.append(f"tcId {test['tcId']} {group['comment']}/{test['comment']}: got {reason!r}")
    assert not failures, _report(failures, tally)
    assert sum(tally.values()) == doc["numberOfTests"]


# -- raw signature files ---------------------------------------------------------------------------

RAW_DOCS = {name: load_if_present(WYCHEPROOF / name) for name in RAW_SIGNATURE_FILES}


def _group_jwk(group: dict[str, Any]) -> dict[str, Any]:
    jwk = group.get("publicKeyJwk") or group.get("keyJwk")
    if jwk:
        return dict(jwk)
    # a few ECDSA groups give the point only as hex coordinates
    point = group["publicKey"]
    crv, size = _EC_CURVES[point["curve"]]
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64url_encode(int(point["wx"], 16).to_bytes(size, "big")),
        "y": b64url_encode(int(point["wy"], 16).to_bytes(size, "big")),
    }


@pytest.mark.parametrize(
    ("name", "alg"),
    list(RAW_SIGNATURE_FILES.items()),
    ids=[
        _counts_id(f"{alg}-{name.removesuffix('_test.json')}", RAW_DOCS[name])
        for name, alg in RAW_SIGNATURE_FILES.items()
    ],
)
def test_signature_primitive(name: str, alg: str) -> None:
    doc = RAW_DOCS[name]
    assert doc is not None
    failures: list[str] = []
    tally: Counter[str] = Counter()
    for group in doc["testGroups"]:
        key = import_jwk(_group_jwk(group), allowed_algs=frozenset({alg}))
        assert key.alg == alg
        for test in group["tests"]:
            jws = CompactJWS({"alg": alg}, b"", bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
            try:
                verify_signature(jws, key)
                accepted = True
            except JOSEError:
                accepted = False
            tally[f"{test['result']}/{'accepted' if accepted else 'rejected'}"] += 1
            if test["result"] == "acceptable":
                expected = ACCEPTABLE[(name, test["tcId"])]
            else:
                expected = test["result"] == "valid"
            if accepted != expected:
                failures.append(f"tcId {test['tcId']} {test['comment']} {test['flags']}: {test['result']}")
    assert not failures, _report(failures, tally)
    assert sum(tally.values()) == doc["numberOfTests"]


def test_acceptable_table_covers_every_acceptable_case() -> None:
    found = {
        (name, test["tcId"])
        for name, doc in RAW_DOCS.items()
        if doc is not None
        for _, test in _cases(doc)
        if test["result"] == "acceptable"
    }
    assert found == set(ACCEPTABLE)
