"""The standard functions and conversions, and functions the caller adds."""

from __future__ import annotations

import math
from typing import Any

import pytest

from apishield.cel import CELCompileError, CELEvalError, Uint, compile_expression
from apishield.cel.conversions import format_double
from tests.cel.support import VARIABLES, ev, fails, refused


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("size('héllo')", 5),  # code points, not UTF-8 bytes
        ("'😀'.size()", 1),
        ("size(b'h\\xc3\\xa9')", 3),
        ("size([1, [2, 3]])", 2),
        ("{'a': 1, 'b': 2}.size()", 2),
        ("size('')", 0),
        ("'support-team'.contains('port')", True),
        ("'abc'.contains('')", True),
        ("'abc'.startsWith('ab')", True),
        ("'abc'.endsWith('bc')", True),
        ("'abc'.endsWith('b')", False),
        ("'ABC-é'.lowerAscii()", "abc-é"),
        ("'abc-é'.upperAscii()", "ABC-é"),
        ("dyn([1, 'a'])", [1, "a"]),
    ],
)
def test_string_and_size_functions(source: str, expected: object) -> None:
    assert ev(source) == expected


def test_functions_with_data_arguments() -> None:
    assert ev("x.startsWith(y)", x="abc", y="a") is True
    assert ev("x.contains(y)", x="abc", y="z") is False
    assert "no matching overload" in fails("x.startsWith('a')", x=1)
    assert "no matching overload" in fails("x.startsWith(y)", x="a", y=1)
    assert "no matching overload" in fails("size(x)", x=1)
    assert "no matching overload" in fails("size(x)", x=None)
    assert "no matching overload" in fails("x.lowerAscii()", x=b"A")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("int(42u)", 42),
        ("int(-123.456)", -123),
        ("int(1.9)", 1),
        ("int(-7.9)", -7),
        ("int('987')", 987),
        ("int('-12')", -12),
        ("int('+12')", 12),
        ("int(9223372036854775807u)", 9223372036854775807),
        ("uint(1729)", Uint(1729)),
        ("uint(3.14159)", Uint(3)),
        ("uint(-0.0)", Uint(0)),
        ("uint('300')", Uint(300)),
        ("double(1000000000000)", 1e12),
        ("double(123u)", 123.0),
        ("double('-987.654')", -987.654),
        ("double('6.02214e23')", 6.02214e23),
        ("double('.5')", 0.5),
        ("double('INF')", math.inf),
        ("string(123)", "123"),
        ("string(-456)", "-456"),
        ("string(9876u)", "9876"),
        ("string(123.456)", "123.456"),
        ("string(-4.5e-3)", "-0.0045"),
        ("string(b'\\303\\277')", "ÿ"),
        ("string(true)", "true"),
        ("string('s')", "s"),
        ("bytes('ÿ')", b"\xc3\xbf"),
        ("bytes(b'x')", b"x"),
        ("bool('true')", True),
        ("bool('F')", False),
        ("bool('1')", True),
        ("bool(false)", False),
    ],
)
def test_conversions(source: str, expected: object) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "source",
    [
        "int(18446744073709551615u)",
        "int(9223372036854775807.0)",
        "int(-9223372036854775808.0)",
        "int(1e99)",
        "int(0.0 / 0.0)",
        "int(1.0 / 0.0)",
        "int('9223372036854775808')",
        "int(' 1')",
        "int('1_000')",
        "int('0x10')",
        "int('1.5')",
        "int('١')",
        "int(true)",
        "int(null)",
        "uint(-1)",
        "uint(-0.5)",
        "uint(6.022e23)",
        "uint(18446744073709551616.0)",
        "uint('-1')",
        "uint('+1')",
        "double('1e400')",
        "double(' 1')",
        "double('1_0')",
        "double('0x10')",
        "double(true)",
        "string(b'\\000\\xff')",
        "string(null)",
        "string([1])",
        "bytes(1)",
        "bool('yes')",
        "bool(1)",
    ],
)
def test_conversion_errors(source: str) -> None:
    fails(source)


def test_conversions_of_huge_data_are_errors_not_crashes() -> None:
    assert "out of range" in fails("int(x)", x="9" * 5000)
    assert "out of range" in fails("uint(x)", x="9" * 5000)
    assert "out of range" in fails("double(x)", x="9" * 5000)
    assert "out of range" in fails("string(x)", x=10**5000)
    assert ev("int(x)", x="0" * 5000 + "42") == 42
    assert ev("uint(x)", x="0" * 30 + "18446744073709551615") == 2**64 - 1


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.0, "0"),
        (123.456, "123.456"),
        (100000.0, "100000"),
        (1000000.0, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e20, "1e+20"),
        (1e100, "1e+100"),
        (-2.5e-300, "-2.5e-300"),
        (0.1, "0.1"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_string_of_double_prints_like_go(value: float, text: str) -> None:
    assert format_double(value) == text


def test_regex_functions() -> None:
    assert ev("'alice@corp.example'.matches('^[a-z]+@corp\\\\.example$')") is True
    assert ev("matches('abc', 'b')") is True  # partial match, also as a function
    assert ev("'abc'.matches('^b')") is False
    assert ev("x.matches(y)", x="abc", y="c$") is True
    assert "matches()" in fails("x.matches(y)", x="abc", y="(a)\\1")
    assert "matches()" in fails("x.matches(y)", x="abc", y="[")
    assert "no matching overload" in fails("x.matches('a')", x=1)


def test_matches_bounds_the_string_it_searches() -> None:
    from apishield.cel.limits import MAX_MATCH_LENGTH

    assert ev("x.matches('b$')", x="a" * (MAX_MATCH_LENGTH - 1) + "b") is True
    assert "longer than" in fails("x.matches('b$')", x="a" * MAX_MATCH_LENGTH + "b")
    assert "longer than" in fails("x.matches(y)", x="a" * MAX_MATCH_LENGTH + "b", y="b$")
    assert ev("x.size() > 10 || x.matches('b$')", x="a" * MAX_MATCH_LENGTH + "b") is True


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("size()", "size() takes 1 argument(s), not 0"),
        ("size('a', 'b')", "size() takes 1 argument(s), not 2"),
        ("'a'.size(1)", "size() takes 0 argument(s), not 1"),
        ("'a'.startsWith()", "startsWith() takes 1 argument(s), not 0"),
        ("startsWith('a', 'b')", "is called as x.startsWith(...)"),
        ("'1'.int()", "is called as int(x)"),
        ("type(1)", "function 'type' is not supported"),
        ("timestamp('2024-01-01T00:00:00Z')", "function 'timestamp' is not supported"),
        ("duration('1s')", "function 'duration' is not supported"),
        ("frobnicate(1)", "function 'frobnicate' is unknown"),
        ("'a'.frobnicate()", "function 'frobnicate' is unknown"),
        ("'a'.matches('(?=a)')", "look-around"),
    ],
)
def test_call_errors_are_static(source: str, message: str) -> None:
    error = refused(source)
    assert isinstance(error, CELCompileError)
    assert message in error.message
    assert error.line == 1 and error.column is not None


def test_caller_functions() -> None:
    def tenant_of(subject: Any) -> str:
        return str(subject).split("@")[-1]

    def boom(_: Any) -> Any:
        raise RuntimeError("secret detail")

    functions = {"tenantOf": tenant_of, "boom": boom}
    rule = compile_expression(
        "tenantOf(token.sub) == 'corp' && token.sub.tenantOf() == 'corp'",
        variables=VARIABLES,
        functions=functions,
    )
    assert rule.evaluate_bool({"token": {"sub": "alice@corp"}}) is True
    failing = compile_expression("false || boom(1)", variables=VARIABLES, functions=functions)
    with pytest.raises(CELEvalError) as info:
        failing.evaluate({})
    assert "boom" in info.value.message and "RuntimeError" in info.value.message
    assert "secret" not in info.value.message


@pytest.mark.parametrize(
    ("functions", "message"),
    [
        ({"size": len}, "built in"),
        ({"all": len}, "built in"),
        ({"has": len}, "built in"),
        ({"in": len}, "cannot name"),
        ({"a-b": len}, "cannot name"),
        ({"f": 1}, "not callable"),
    ],
)
def test_caller_functions_cannot_replace_the_language(functions: Any, message: str) -> None:
    with pytest.raises(CELCompileError, match=message):
        compile_expression("true", variables=VARIABLES, functions=functions)
