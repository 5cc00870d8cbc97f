"""Tests for :mod:`apishield.jsonstrict` (strict RFC 8259 / I-JSON parsing and serialisation)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from apishield.jsonstrict import JSONRejected, dumps, nesting_exceeds, parse

SECRET = "secret-value-123"


def rejected(data: bytes, max_depth: int = 64) -> str:
    with pytest.raises(JSONRejected) as info:
        parse(data, max_depth)
    assert info.value.reason == str(info.value)
    return info.value.reason


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    # depth nested objects: {"a":{"a":...{}...}}
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


# -- duplicates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"role": "user", "role": "admin"}',
        b'{"a": 1, "b": 2, "a": 1}',
        b'{"outer": {"x": 1, "x": 2}}',
        b'[1, {"ok": true}, [{"deep": {"k": 1, "k": 2}}]]',
        b'{"\\u0061": 1, "a": 2}',
    ],
)
def test_duplicate_member_names_are_refused(data: bytes) -> None:
    assert rejected(data) == "duplicate member name in an object"


def test_same_name_in_sibling_objects_is_fine() -> None:
    assert parse(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


# -- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_refused(name: str) -> None:
    reason = rejected(f'{{"amount": {name}}}'.encode())
    assert reason == f"{name} is not a JSON number"


@pytest.mark.parametrize("data", [b"[1e400]", b"[-1e400]"])
def test_number_overflowing_a_double_is_refused(data: bytes) -> None:
    rejected(data)


@pytest.mark.parametrize("data", [b"[1e400]", b"[-1e400]", b'{"a": 1e999}'])
def test_parse_never_yields_non_finite_floats(data: bytes) -> None:
    # dumps() only ever sees values parse() produced, so it cannot meet inf or nan
    rejected(data)


def test_integer_literal_beyond_the_int_conversion_limit_is_rejected() -> None:
    rejected(b"[" + b"1" * 5000 + b"]")


def test_integer_beyond_any_interoperable_range_is_refused_while_parsing() -> None:
    # I-JSON (RFC 7493 §2.2): integers beyond IEEE 754 double precision are not interoperable;
    # literals longer than 40 digits are refused before int() conversion is attempted
    rejected(b"1" * 100)
    assert parse(b"1" * 40) == int("1" * 40)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30, {"n": [2**70]}])
def test_dumps_refuses_integers_beyond_64_bits(value: Any) -> None:
    with pytest.raises(JSONRejected) as info:
        dumps(value)
    assert info.value.reason == "integer out of the interoperable range"


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 0])
def test_dumps_accepts_64_bit_boundaries(value: int) -> None:
    assert dumps(value) == str(value).encode()


# -- encoding -------------------------------------------------------------------------------------


def test_byte_order_mark_is_refused() -> None:
    assert rejected(b'\xef\xbb\xbf{"a": 1}') == "a byte-order mark is not allowed"


@pytest.mark.parametrize(
    "data",
    [b'{"a": "\xff"}', b'"\xc3\x28"', b'"\xed\xa0\x80"', b'"\xf8\x88\x80\x80\x80"', b'{"a": "caf\xe9"}'],
)
def test_invalid_utf8_is_refused(data: bytes) -> None:
    assert rejected(data) == "body is not valid UTF-8"


def test_escaped_lone_surrogate_is_refused_on_dumps() -> None:
    value = parse(b'{"name": "\\ud800x"}')
    with pytest.raises(JSONRejected) as info:
        dumps(value)
    assert info.value.reason == "string contains a lone surrogate"


@pytest.mark.parametrize("value", ["\udfff", ["ok", {"k": "\ud83d"}], {"\ud800": 1}])
def test_dumps_refuses_lone_surrogates_anywhere(value: Any) -> None:
    with pytest.raises(JSONRejected):
        dumps(value)


def test_escaped_surrogate_pair_is_one_character() -> None:
    value = parse(b'"\\ud83d\\ude00"')
    assert value == "\U0001f600"
    assert dumps(value) == '"\U0001f600"'.encode()


def test_dumps_refuses_values_that_are_not_json() -> None:
    with pytest.raises(JSONRejected) as info:
        dumps({"a": {1, 2}})
    assert info.value.reason == "value cannot be represented as interoperable JSON"


# -- depth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3, 10, 64])
def test_arrays_exactly_at_the_limit_are_accepted(depth: int) -> None:
    value = parse(arrays(depth), max_depth=depth)
    for _ in range(depth - 1):
        assert isinstance(value, list)
        assert len(value) == 1
        value = value[0]
    assert value == []


@pytest.mark.parametrize("depth", [1, 2, 3, 10, 64])
def test_arrays_one_above_the_limit_are_refused(depth: int) -> None:
    assert rejected(arrays(depth + 1), max_depth=depth) == f"nesting deeper than {depth} levels"


@pytest.mark.parametrize("depth", [1, 2, 5, 64])
def test_objects_at_and_above_the_limit(depth: int) -> None:
    assert isinstance(parse(objects(depth), max_depth=depth), dict)
    assert rejected(objects(depth + 1), max_depth=depth) == f"nesting deeper than {depth} levels"


def test_mixed_nesting_counts_both_kinds() -> None:
    data = b'{"a": [1, {"b": [[], {"c": []}]}], "d": {}}'  # depth 6: { [ { [ { [
    assert parse(data, max_depth=6)["d"] == {}
    assert rejected(data, max_depth=5) == "nesting deeper than 5 levels"


def test_depth_is_the_deepest_branch_not_the_bracket_count() -> None:
    wide = b"[" + b",".join([b"[[]]"] * 500) + b"]"  # 1500 pairs, depth 3
    assert len(parse(wide, max_depth=3)) == 500
    assert nesting_exceeds(wide, 3) is False
    assert nesting_exceeds(wide, 2) is True


@pytest.mark.parametrize(
    "data",
    [
        b'["[[[[[[[[", "{{{{{{{{"]',
        b'{"k": "]]]]}}}}[[[[{{{{"}',
        b'["\\"[[[[[[", "]]]]\\"{{{{"]',
        b'["\\\\\\"[[[["]',
        b'{"[[[[": "{{{{"}',
    ],
)
def test_brackets_inside_strings_do_not_count(data: bytes) -> None:
    assert nesting_exceeds(data, 1) is False
    assert parse(data, max_depth=1) == json.loads(data)


def test_escaped_backslash_closes_the_string() -> None:
    # the string is a single backslash; the brackets after it are real nesting (depth 3)
    data = b'["\\\\", [[1]]]'
    assert parse(data, max_depth=3) == ["\\", [[1]]]
    assert rejected(data, max_depth=2) == "nesting deeper than 2 levels"


def test_document_at_the_largest_allowed_limit_is_accepted() -> None:
    # limits.max_json_depth is capped at 512 in the policy model
    assert parse(arrays(512), max_depth=512) is not None


@pytest.mark.parametrize(
    "data",
    [
        arrays(100_000),
        objects(100_000),
        b"[" * 100_000,
        b'{"a":' * 100_000 + b"1",
        b"[{" * 50_000 + b"}]" * 50_000,
    ],
)
def test_very_deep_documents_are_refused_without_recursion_error(data: bytes) -> None:
    assert rejected(data) == "nesting deeper than 64 levels"


def test_unbalanced_brackets_are_malformed() -> None:
    assert rejected(b"[}").startswith("malformed JSON")


# -- malformed input and safe reasons -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b'{"a": }',
        b'{"a": 1,}',
        b"[1, 2",
        b"{} {}",
        b"{'a': 1}",
        b'{"a": "tab\there"}',
        b'"bad \\x escape"',
        b"01",
        b"+1",
        b".5",
        b"True",
    ],
)
def test_malformed_json_is_refused(data: bytes) -> None:
    assert rejected(data).startswith("malformed JSON at line 1 column ")


@pytest.mark.parametrize(
    "data",
    [
        f'{{"k": "{SECRET}" "x"}}'.encode(),
        f'{{"{SECRET}" 1}}'.encode(),
        f'["{SECRET}'.encode(),
        f"[{SECRET}]".encode(),
        f'{{"a": "{SECRET}", "a": 2}}'.encode(),
        f'{{"{SECRET}": NaN}}'.encode(),
        f'"\\{SECRET}"'.encode(),
    ],
)
def test_reasons_never_contain_body_content(data: bytes) -> None:
    assert SECRET not in rejected(data)
    assert "secret" not in rejected(data)


def test_malformed_reason_has_line_and_column() -> None:
    assert rejected(b'{\n  "a": 1,\n  "b": ]\n}') == "malformed JSON at line 3 column 8: Expecting value"


# -- valid documents ------------------------------------------------------------------------------


VALID = [
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"0",
    b"-0",
    b"-12.5e-3",
    b'"text"',
    b'{"a": [1, 2.5, "x", null, true, false], "b": {"c": {}}, "": ""}',
    '{"name": "Zo\u00eb \u00e9t\u00e9 \u6771\u4eac \U0001f600"}'.encode(),
    b'{"escaped": "quote \\" backslash \\\\ slash \\/ tab \\t nl \\n u \\u00e9"}',
    b' \n\t{ "spaced" :\r\n [ 1 , 2 ] } \n',
    b'{"big": 9223372036854775807, "small": -9223372036854775808}',
]


@pytest.mark.parametrize("data", VALID)
def test_valid_documents_round_trip(data: bytes) -> None:
    value = parse(data)
    assert value == json.loads(data)
    out = dumps(value)
    assert orjson.loads(out) == value
    assert parse(out) == value


def test_dumps_output_is_compact() -> None:
    assert dumps(parse(b'{ "a" : [ 1 , 2 ] }')) == b'{"a":[1,2]}'


def test_rejected_is_a_value_error() -> None:
    assert issubclass(JSONRejected, ValueError)
