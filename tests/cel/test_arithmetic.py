"""Arithmetic: 64-bit overflow, truncating division, IEEE doubles, concatenation."""

from __future__ import annotations

import math

import pytest

from apishield.cel import Uint
from apishield.cel.limits import MAX_CONCAT_LENGTH
from tests.cel.support import ev, fails

INT_MAX = 9223372036854775807


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("40 + 2", 42),
        ("42 - 50", -8),
        ("-30 * -2", 60),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("7 / -2", -3),
        ("-80 / -2", 40),
        ("47 % 5", 2),
        ("43 % -5", 3),
        ("-42 % -5", -2),
        ("-3 % 5", -3),
        ("-(42)", -42),
        ("-(-42)", 42),
        ("--1", 1),
        ("-9223372036854775808", -(2**63)),
        ("- 9223372036854775808", -(2**63)),
        ("9223372036854775807 - 1 + 1", INT_MAX),
        ("0x10 + 0x1F", 47),
        ("-0x10", -16),
        ("3u + 4u", 7),
        ("7u / 2u", 3),
        ("7u % 4u", 3),
        ("18446744073709551615u - 1u", 2**64 - 2),
        ("0x10u", 16),
        ("1.5 + 2.25", 3.75),
        ("1.0 / 4.0", 0.25),
        ("-(1.5)", -1.5),
        ("'ab' + 'cd'", "abcd"),
        ("b'a' + b'\\x00'", b"a\x00"),
        ("[1] + [2, 'x']", [1, 2, "x"]),
        ("[] + []", []),
    ],
)
def test_values(source: str, expected: object) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected) or type(result) is Uint


def test_uint_results_stay_uint() -> None:
    assert type(ev("1u + 2u")) is Uint
    assert type(ev("7u / 2u")) is Uint
    assert repr(ev("5u")) == "5u"


@pytest.mark.parametrize(
    "source",
    [
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "-9223372036854775808 + (-1)",
        "1 - (-9223372036854775807)",
        "-(-9223372036854775808)",
        "(-9223372036854775808) * -1",
        "(-9223372036854775808) / -1",
        "(-9223372036854775808) % -1",
        "5000000000 * 5000000000",
        "18446744073709551615u + 1u",
        "0u - 1u",
        "5000000000u * 5000000000u",
    ],
)
def test_overflow_is_an_error(source: str) -> None:
    assert "overflow" in fails(source)


@pytest.mark.parametrize(
    ("source", "word"), [("1 / 0", "division"), ("1 % 0", "modulus"), ("1u / 0u", "division")]
)
def test_integer_division_by_zero(source: str, word: str) -> None:
    assert word in fails(source)


def test_double_division_follows_ieee() -> None:
    assert ev("1.0 / 0.0") == math.inf
    assert ev("-1.0 / 0.0") == -math.inf
    assert ev("1.0 / -0.0") == -math.inf
    assert math.isnan(ev("0.0 / 0.0"))
    assert ev("1e308 * 10.0") == math.inf


@pytest.mark.parametrize(
    "source",
    [
        "1 + 1.0",
        "1 + 1u",
        "1u - 1",
        "2.0 * 2",
        "1.0 % 2.0",
        "'a' + 1",
        "'a' * 2",
        "[1] + 'a'",
        "b'a' + 'a'",
        "true + true",
        "null + null",
        "{} + {}",
        "-(1u)",
        "-1u",
        "-'a'",
        "-true",
    ],
)
def test_no_mixed_or_undefined_arithmetic(source: str) -> None:
    assert "no matching overload" in fails(source)


def test_bool_data_is_not_a_number() -> None:
    assert "no matching overload" in fails("x + 1", x=True)
    assert "no matching overload" in fails("x * 2", x=False)


def test_concatenation_is_bounded() -> None:
    big = "a" * (MAX_CONCAT_LENGTH // 2 + 1)
    assert "concatenation" in fails("x + x", x=big)
    assert len(ev("x + 'b'", x="a" * 10)) == 11
