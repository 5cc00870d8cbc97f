"""JSON objects in JOSE (RFC 7515 §4, RFC 7519 §4/§7.2) and NumericDate (RFC 7519 §2).

The fast path of :func:`parse_json_object` must agree with
:func:`apishield.jsonstrict.parse` on every input: same value or same refusal.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from apishield import jsonstrict
from apishield.jose import CompactJWS, JOSEError, decode_unverified_claims, parse_claims
from apishield.jose.jsonobj import parse_json_object
from apishield.jose.rfc7519 import CLAIMS_MAX_BYTES, MAX_NUMERIC_DATE, numeric_date

CORPUS: list[bytes] = [
    b"{}",
    b'{"a":1}',
    b' {"a":1} ',
    b'{"a":1}\n',
    b'\t\r\n{"a":[1,2,{"b":null}]}',
    b'{"a":1}x',
    b'{"a":1}{}',
    b'{"a":1,"a":2}',
    b'{"a":{"b":1,"b":1}}',
    b'{"a":[{"b":1,"b":2}]}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":-Infinity}',
    b'{"a":1e400}',
    b'{"a":"\\u00e9","b":"\xc3\xa9"}',
    b'{"a":"\xff"}',
    b'\xef\xbb\xbf{"a":1}',
    b'{"a":"\\ud800"}',
    b'{"\\udfff":1}',
    b'{"a":"\\ud83d\\ude00"}',
    b"[]",
    b'"x"',
    b"null",
    b"1",
    b"",
    b" ",
    b"{",
    b'{"a":[' + b"[" * 3 + b"]" * 3 + b"]}",
    b'{"a":' + b"[" * 15 + b"]" * 15 + b"}",
    b'{"a":' + b"[" * 16 + b"]" * 16 + b"}",
    b'{"a":' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"a":"' + b"[" * 40 + b'"}',  # brackets inside a string do not nest
    b'{"a":"' + b"{" * 40 + b'","b":[[1]]}',
    b'{"a":[' * 3000 + b"]}" * 3000,
    b'{"a":1' + b"0" * 5000 + b"}",
    b"{'a':1}",
    b'{"a":1,}',
    b'{"a" : 1 , "b" : [ 1 , 2 ] }',
]


def _outcome(fn: Any, data: bytes) -> tuple[str, Any]:
    try:
        value = fn(data)
    except (JOSEError, jsonstrict.JSONRejected, ValueError):
        return "refused", None
    return "value", value


# refused here on top of jsonstrict: lone surrogates, which no UTF-8 text can carry
LONE_SURROGATES = {b'{"a":"\\ud800"}', b'{"\\udfff":1}'}


@pytest.mark.parametrize("data", CORPUS, ids=range(len(CORPUS)))
def test_fast_path_agrees_with_jsonstrict(data: bytes) -> None:
    ours = _outcome(lambda d: parse_json_object(d, max_depth=16, what="x"), data)
    reference = _outcome(lambda d: jsonstrict.parse(d, 16), data)
    if data in LONE_SURROGATES or (reference[0] == "value" and not isinstance(reference[1], dict)):
        assert reference[0] == "value"
        assert ours[0] == "refused"
    else:
        assert ours == reference


def test_reasons_name_the_object_and_never_the_data() -> None:
    with pytest.raises(JOSEError) as info:
        parse_json_object(b'{"secret-value":1,"secret-value":2}', max_depth=4, what="JWT claims set")
    assert info.value.reason == "JWT claims set: duplicate member name in an object"
    assert "secret" not in str(info.value)


def test_deep_nesting_costs_no_recursion() -> None:
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(JOSEError, match="nesting deeper than 16"):
        parse_json_object(deep, max_depth=16, what="x")


def test_claims_size_limit() -> None:
    big = b'{"a":"' + b"x" * CLAIMS_MAX_BYTES + b'"}'
    with pytest.raises(JOSEError, match="too large"):
        parse_claims(big)


def test_decode_unverified_claims() -> None:
    jws = CompactJWS({"alg": "RS256"}, b'{"iss":"https://a.example"}', b"", b"")
    assert decode_unverified_claims(jws) == {"iss": "https://a.example"}
    with pytest.raises(JOSEError, match="not a JSON object"):
        decode_unverified_claims(CompactJWS({"alg": "RS256"}, b"[1]", b"", b""))


@pytest.mark.parametrize(
    "value", [0, 1, 1_700_000_000, 1_700_000_000.5, MAX_NUMERIC_DATE, float(MAX_NUMERIC_DATE)]
)
def test_numeric_date_accepts(value: float) -> None:
    assert numeric_date(value, "exp") == float(value)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1700000000", "must be a JSON number"),
        (True, "must be a JSON number"),
        (False, "must be a JSON number"),
        (None, "must be a JSON number"),
        ([1], "must be a JSON number"),
        (-1, "out of range"),
        (-0.5, "out of range"),
        (MAX_NUMERIC_DATE + 1, "out of range"),
        (10**400, "out of range"),
        (math.inf, "out of range"),
        (math.nan, "out of range"),
    ],
)
def test_numeric_date_refuses(value: Any, match: str) -> None:
    with pytest.raises(JOSEError, match=match):
        numeric_date(value, "exp")
