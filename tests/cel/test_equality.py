"""Equality, ordering and membership: heterogeneous numbers, and no bool/int confusion."""

from __future__ import annotations

import math

import pytest

from apishield.cel import Uint
from tests.cel.support import ev, fails


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1.0", True),
        ("1 == 1u", True),
        ("1u == 1.0", True),
        ("2 == 1.0", False),
        ("-1 == 18446744073709551615u", False),
        ("1.5 == 1", False),
        ("[1, 2.0, 3u] == [1.0, 2u, 3]", True),
        ("{'a': 1} == {'a': 1.0}", True),
        ("{1: 'a', 2u: 'b'} == {1u: 'a', 2: 'b'}", True),
        ("0.0 / 0.0 == 0.0 / 0.0", False),
        ("0.0 / 0.0 != 0.0 / 0.0", True),
        ("-0.0 == 0.0", True),
        ("9223372036854775807 == 9223372036854775808.0", True),  # the int meets the double as a double
        ("'a' == 'a'", True),
        ("b'abc' == b'abc'", True),
        ("null == null", True),
    ],
)
def test_numbers_compare_by_value(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    "source",
    [
        "true == 1",
        "1 == true",
        "false == 0",
        "0 == false",
        "true == 1.0",
        "1u == true",
        "'1' == 1",
        "b'a' == 'a'",
        "null == false",
        "null == 0",
        "[] == {}",
        "[1] == [true]",
        "{'a': true} == {'a': 1}",
        "[1, 2] == [1, 2, 3]",
        "{'a': 1} == {'b': 1}",
        "{'a': 1} == {'a': 1, 'b': 2}",
    ],
)
def test_different_kinds_are_unequal_not_errors(source: str) -> None:
    assert ev(source) is False
    assert ev(source.replace("==", "!=")) is True


def test_bool_is_not_a_number_in_data() -> None:
    assert ev("x == 1", x=True) is False
    assert ev("x == true", x=1) is False
    assert ev("x == y", x=True, y=1) is False
    assert ev("x == y", x=[True], y=[1]) is False
    assert ev("x == y", x={"k": 0}, y={"k": False}) is False
    assert ev("x == 1.0", x=1) is True
    assert ev("x != y", x=1.0, y=1) is False


def test_membership() -> None:
    assert ev("1 in [true]") is False
    assert ev("true in [1]") is False
    assert ev("0 in [false, null]") is False
    assert ev("1 in [1.0]") is True
    assert ev("1u in [2, 1]") is True
    assert ev("'a' in ['b', 'a']") is True
    assert ev("'a' in x", x=["b", 1, None, True]) is False
    assert ev("null in [1, null]") is True
    assert ev("[1] in [[1.0], 2]") is True
    assert ev("{'a': 1} in [{'a': 1u}]") is True
    assert ev("x in ['admin', 'support']", x="support") is True
    assert ev("x in ['admin', 'support']", x=1) is False
    assert ev("0.0 / 0.0 in [0.0 / 0.0]") is False
    assert ev("'k' in {'k': 1}") is True
    assert ev("1 in {1: 'a'}") is True
    assert ev("1.0 in {1: 'a'}") is True
    assert ev("1 in {1u: 'a'}") is True
    assert ev("true in {1: 'a'}") is False
    assert ev("1 in {true: 'a'}") is False
    assert ev("'1' in {1: 'a'}") is False
    assert "no matching overload" in fails("'a' in 'abc'")
    assert "no matching overload" in fails("1 in 1")


def test_map_keys_keep_bool_and_int_apart() -> None:
    assert ev("{true: 'a'}[true]") == "a"
    assert "no such key" in fails("{1: 'a'}[true]")
    assert "no such key" in fails("{true: 'a'}[1]")
    assert ev("{1: 'a'}[1u]") == "a"
    assert ev("{1u: 'a'}[1]") == "a"
    assert ev("{1: 'a'}[1.0]") == "a"
    assert "no such key" in fails("{1: 'a'}[1.5]")
    assert ev("{true: 1, 2: 2, 5u: 3}[true]") == 1
    assert ev("x[0]", x={0: "zero", 1: "one"}) == "zero"
    assert "no such key" in fails("x[false]", x={0: "zero"})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("1u < 2u", True),
        ("1.5 < 2.5", True),
        ("1 < 1.5", True),
        ("2u > 1", True),
        ("-1 < 0u", True),
        ("1.0 <= 1u", True),
        ("9223372036854775807 >= 9223372036854775808.0", True),
        ("'a' < 'b'", True),
        ("'aBc' <= 'abc'", True),
        ("'a' < 'α'", True),
        ("b'\\x00' < b'\\x01'", True),
        ("false < true", True),
        ("true <= false", False),
    ],
)
def test_ordering(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    "source",
    ["1 < 'a'", "'a' > 1", "true < 1", "null < null", "[1] < [2]", "{} <= {}", "b'a' < 'a'", "1 >= true"],
)
def test_ordering_across_kinds_is_an_error(source: str) -> None:
    assert "no matching overload" in fails(source)


@pytest.mark.parametrize("source", ["x < 1.0", "1 < x", "x <= x", "x > 0", "2u >= x"])
def test_nan_cannot_be_ordered(source: str) -> None:
    assert "NaN" in fails(source, x=math.nan)


def test_data_ints_keep_their_kind() -> None:
    assert ev("x < y", x=1, y=Uint(2)) is True
    assert ev("x == y", x=Uint(3), y=3.0) is True
