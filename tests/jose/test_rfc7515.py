"""Compact JWS parsing and JOSE header rules (RFC 7515 §4, §5.2, §7.1; RFC 8725 §3)."""

from __future__ import annotations

import json

import pytest

from apishield.jose import JOSEError, media_type, parse_compact_jws
from apishield.jose.rfc7515 import REFUSED_HEADER_PARAMS, REGISTERED_HEADER_PARAMS
from tests.jose.tokens import b64

SIG = b64(b"\x01" * 32)
PAYLOAD = b64(b'{"sub":"alice"}')


def token(header: dict[str, object] | bytes | str, payload: str = PAYLOAD, signature: str = SIG) -> str:
    if isinstance(header, dict):
        header = json.dumps(header).encode()
    if isinstance(header, bytes):
        header = b64(header)
    return f"{header}.{payload}.{signature}"


def refused(value: str, match: str, **kwargs: object) -> str:
    with pytest.raises(JOSEError, match=match) as info:
        parse_compact_jws(value, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


# -- structure -----------------------------------------------------------------------------------


def test_parses_a_compact_jws() -> None:
    jws = parse_compact_jws(token({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}))
    assert (jws.alg, jws.kid, jws.typ) == ("ES256", "k1", "at+jwt")
    assert jws.payload == b'{"sub":"alice"}'
    assert jws.signature == b"\x01" * 32
    head, payload, _ = token({"alg": "ES256", "kid": "k1", "typ": "at+jwt"}).split(".")
    assert jws.signing_input == f"{head}.{payload}".encode()


def test_optional_header_members_default_to_none() -> None:
    jws = parse_compact_jws(token({"alg": "RS256"}))
    assert (jws.kid, jws.typ) == (None, None)


def test_empty_payload_is_allowed() -> None:
    assert parse_compact_jws(token({"alg": "HS256"}, payload="")).payload == b""


@pytest.mark.parametrize("count", [1, 2, 4, 6])
def test_segment_count(count: int) -> None:
    head = b64(b'{"alg":"RS256"}')
    refused(".".join([head] + [PAYLOAD] * (count - 1)), "exactly three segments")


def test_five_segments_are_a_jwe() -> None:
    for alg in ("dir", "RSA1_5", "ECDH-ES", "RSA-OAEP"):
        head = b64(json.dumps({"alg": alg, "enc": "A256GCM"}).encode())
        refused(f"{head}.ZW5j.aXY.Y2lwaGVy.dGFn", "JWE is not accepted")


def test_size_limit_before_decoding() -> None:
    huge = token({"alg": "RS256"}, payload="A" * 10_000)
    refused(huge, "too long")
    refused("!" * 9000, "too long")  # not even looked at
    assert parse_compact_jws(huge, max_length=20_000).payload == b"\x00" * 7500


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "empty"),
        (".a.b", "JOSE header is missing"),
        ("..", "JOSE header is missing"),
        (token({"alg": "RS256"}, signature=""), "signature is missing"),
        ('{"payload":"e30","signatures":[]}', "JSON serialization"),
        (token({"alg": "RS256"}) + "é", "non-ASCII"),
        (token({"alg": "RS256"}, signature=SIG + "="), "signature: invalid base64url"),
        (token({"alg": "RS256"}, payload=PAYLOAD + "=="), "payload: invalid base64url"),
        (token(b64(b'{"alg":"RS256"}') + "="), "JOSE header: invalid base64url"),
        (token({"alg": "RS256"}, payload="e30 "), "payload: invalid base64url"),
        (token({"alg": "RS256"}, payload="e3+"), "payload: invalid base64url"),
        (token({"alg": "RS256"}, signature="AB"), "non-canonical"),
    ],
)
def test_malformed(value: str, match: str) -> None:
    refused(value, match)


def test_not_a_string() -> None:
    with pytest.raises(JOSEError, match="must be a string"):
        parse_compact_jws(b"a.b.c")  # type: ignore[arg-type]


# -- header JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"[]", "not a JSON object"),
        (b'"RS256"', "not a JSON object"),
        (b"null", "not a JSON object"),
        (b" ", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b'{"alg":"RS256"} x', "malformed JSON"),
        (b'{"alg":"RS256","alg":"none"}', "duplicate member"),
        (b'{"alg":"RS256","x":{"a":1,"a":2}}', "duplicate member"),
        (b'{"alg":"RS256","x":NaN}', "NaN"),
        (b'{"alg":"RS256","x":"\xff"}', "UTF-8"),
        (b'\xef\xbb\xbf{"alg":"RS256"}', "byte-order mark"),
        (b'{"alg":"RS256","x":"\\ud800"}', "lone surrogate"),
        (b'{"alg":"RS256","x":' + b"[" * 20 + b"]" * 20 + b"}", "nesting"),
        (b'{"alg":"RS256","x":1' + b"0" * 5000 + b"}", "integer out of the interoperable range"),
        (b'{"alg":"RS256","x":1e400}', "out of the range of a double"),
    ],
)
def test_header_json(raw: bytes, match: str) -> None:
    refused(token(raw), match)


def test_header_whitespace_is_fine() -> None:
    # RFC 7515 A.1 style: CRLF and spaces inside the header JSON
    assert parse_compact_jws(token(b'{"typ":"JWT",\r\n "alg":"HS256"}\r\n')).alg == "HS256"
    assert parse_compact_jws(token(b' \t{"alg":"HS256"}')).alg == "HS256"


# -- alg -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(alg: str) -> None:
    refused(token({"alg": alg}), "alg none")


@pytest.mark.parametrize("alg", [None, 256, True, ["RS256"], {"name": "RS256"}, ""])
def test_alg_must_be_a_nonempty_string(alg: object) -> None:
    refused(token({"alg": alg}), "alg is missing or not a string")
    refused(token({"typ": "JWT"}), "alg is missing")


# -- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("param", sorted(REFUSED_HEADER_PARAMS))
def test_key_bearing_and_processing_params_refused(param: str) -> None:
    reason = refused(token({"alg": "RS256", param: "https://attacker.example/x"}), "is not accepted")
    assert "attacker" not in reason


def test_refused_param_allowed_by_the_caller() -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}
    value = token({"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk})
    refused(value, "'jwk' is not accepted")
    jws = parse_compact_jws(value, allowed_header_params=frozenset({"alg", "typ", "jwk"}))
    assert jws.header["jwk"] == jwk


def test_unknown_params_are_ignored() -> None:
    jws = parse_compact_jws(token({"alg": "RS256", "x-vendor": {"a": [1, 2]}, "iss": "x"}))
    assert jws.header["x-vendor"] == {"a": [1, 2]}


@pytest.mark.parametrize("kid", [None, 7, ["a"], {"a": 1}, True, "", "k" * 257])
def test_kid_must_be_a_bounded_string(kid: object) -> None:
    refused(token({"alg": "RS256", "kid": kid}), "kid must be a non-empty string")


def test_kid_is_kept_verbatim() -> None:
    for kid in (
        "../../../../dev/null",
        "x' UNION SELECT '1';--",
        "|sleep 10",
        "$(id)",
        "*)(uid=*",
        "k" * 256,
    ):
        assert parse_compact_jws(token({"alg": "RS256", "kid": kid})).kid == kid


@pytest.mark.parametrize("typ", [1, None, ["at+jwt"], {}])
def test_typ_must_be_a_string(typ: object) -> None:
    refused(token({"alg": "RS256", "typ": typ}), "typ must be a string")


# -- crit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ({"alg": "RS256", "crit": ["x-unknown"], "x-unknown": 1}, "not understood"),
        ({"alg": "RS256", "crit": ["x-unknown"]}, "absent"),
        ({"alg": "RS256", "crit": []}, "non-empty array"),
        ({"alg": "RS256", "crit": "exp"}, "non-empty array"),
        ({"alg": "RS256", "crit": None}, "non-empty array"),
        ({"alg": "RS256", "crit": [1]}, "distinct header parameter names"),
        ({"alg": "RS256", "crit": ["x", "x"], "x": 1}, "distinct"),
        ({"alg": "RS256", "crit": ["alg"]}, "defined by JWS or JWA"),
        ({"alg": "RS256", "crit": ["kid"], "kid": "k"}, "defined by JWS or JWA"),
        ({"alg": "RS256", "crit": ["exp"], "exp": 1}, "not understood"),
    ],
)
def test_crit(header: dict[str, object], match: str) -> None:
    refused(token(header), match)


def test_crit_with_an_understood_extension() -> None:
    value = token({"alg": "RS256", "crit": ["x-ok"], "x-ok": True})
    assert parse_compact_jws(value, understood_crit=frozenset({"x-ok"})).header["x-ok"] is True
    refused(value, "not understood", understood_crit=frozenset({"x-other"}))


@pytest.mark.parametrize("name", sorted(REGISTERED_HEADER_PARAMS - REFUSED_HEADER_PARAMS))
def test_crit_never_lists_registered_names(name: str) -> None:
    header: dict[str, object] = {"alg": "RS256", "crit": [name], name: "v"}
    if name == "alg":
        header[name] = "RS256"
    refused(token(header), "defined by JWS or JWA|must be a|not a string", understood_crit=frozenset({name}))


def test_b64_false_refused_with_or_without_crit() -> None:
    refused(token({"alg": "HS256", "b64": False}), "'b64' is not accepted")
    refused(token({"alg": "HS256", "b64": False, "crit": ["b64"]}), "'b64' is not accepted")


# -- typ as a media type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typ", "expected"),
    [
        ("at+jwt", "application/at+jwt"),
        ("AT+JWT", "application/at+jwt"),
        ("application/at+jwt", "application/at+jwt"),
        ("Application/AT+jwt", "application/at+jwt"),
        ("JWT", "application/jwt"),
        ("example/at+jwt", "example/at+jwt"),
    ],
)
def test_media_type(typ: str, expected: str) -> None:
    assert media_type(typ) == expected
