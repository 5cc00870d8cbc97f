"""Parsing: literals and escapes, reserved words, syntax error positions, and the static limits."""

from __future__ import annotations

import pytest

from apishield.cel import CELCompileError, CELSyntaxError, Uint, compile_expression
from apishield.cel.limits import MAX_DEPTH, MAX_SOURCE_LENGTH
from tests.cel.support import VARIABLES, ev, refused


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("0", 0),
        ("007", 7),
        ("0xFF", 255),
        ("1u", Uint(1)),
        ("1U", Uint(1)),
        ("18446744073709551615u", Uint(2**64 - 1)),
        ("1.5", 1.5),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1.5e-3", 0.0015),
        ("1e-400", 0.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("'single'", "single"),
        ('"double"', "double"),
        ("'''tri'ple'''", "tri'ple"),
        ('"""a\nb"""', "a\nb"),
        ("'\\a\\b\\f\\n\\r\\t\\v'", "\a\b\f\n\r\t\v"),
        ("'\\\\ \\? \\\" \\' \\`'", "\\ ? \" ' `"),
        ("'\\x41\\X42'", "AB"),
        ("'\\101'", "A"),
        ("'\\303\\277'", "Ã¿"),  # octal escapes are code points in strings
        ("'\\u00e9\\U0001F600'", "é😀"),
        ("r'\\d+\\n'", "\\d+\\n"),
        ("R'\\'", "\\"),
        ("b'abc'", b"abc"),
        ("B'ÿ'", b"\xc3\xbf"),
        ("b'\\303\\277'", b"\xc3\xbf"),  # and octets in bytes
        ("b'\\xff\\377'", b"\xff\xff"),
        ("br'\\x'", b"\\x"),
        ("b'''a\nb'''", b"a\nb"),
        ("// a comment\n1 + // another\n2", 3),
        ("[]", []),
        ("{}", {}),
        ("[1, [2]]", [1, [2]]),
    ],
)
def test_literals(source: str, expected: object) -> None:
    result = ev(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("1 +", 1, 4, "unexpected end of expression"),
        ("a +* b", 1, 4, "unexpected '*'"),
        ("(1 + 2", 1, 7, "unexpected end of expression"),
        ("token.\n  1", 2, 3, "unexpected literal 1"),
        ("a ? b", 1, 6, "unexpected end of expression"),
        ("x $ y", 1, 3, "unexpected character '$'"),
        ("'abc", 1, 1, "unterminated string literal"),
        ("token.sub ==\n  'ab\ncd'", 2, 3, "unterminated string literal"),
        ("'\\q'", 1, 2, "invalid escape sequence '\\\\q'"),
        ("'ok' + 'a\\x4'", 2 - 1, 10, "\\x takes 2 hexadecimal digits"),
        ("'\\ud800'", 1, 2, "not a Unicode scalar value"),
        ("b'\\u00e9'", 1, 3, "not allowed in bytes"),
        ("'\\400'", 1, 2, "octal escape"),
        ("'''\nline two \\z'''", 2, 10, "invalid escape sequence"),
        ("9223372036854775808", 1, 1, "out of the 64-bit range"),
        ("-9223372036854775809", 1, 1, "out of the 64-bit range"),
        ("18446744073709551616u", 1, 1, "out of the 64-bit range"),
        ("1e400", 1, 1, "out of range"),
        ("1.", 1, 3, "unexpected end of expression"),
        ("1.e3 + ", 1, 8, "unexpected end of expression"),
        ("x.if", 1, 3, "'if' is a reserved word"),
        ("in + 1", 1, 1, "'in' is a reserved word"),
        ("while(1)", 1, 1, "'while' is a reserved word"),
        ("x.true", 1, 3, "unexpected literal true"),
        ("", 1, 1, "empty expression"),
        ("   \n ", 1, 1, "empty expression"),
        ("// only a comment", 1, 18, "unexpected end of expression"),
    ],
)
def test_syntax_errors_are_located(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(CELSyntaxError) as info:
        compile_expression(source, variables=VARIABLES)
    error = info.value
    assert (error.line, error.column) == (line, column), error
    assert message in error.message
    assert str(error) == f"line {line} column {column}: {error.message}"
    assert isinstance(error, ValueError)


def test_expected_tokens_are_named_when_few() -> None:
    assert refused("x.1").message == "unexpected literal 1; expected an identifier"


def test_unknown_variable_is_located() -> None:
    error = refused("token.sub == 'a' &&\n   tokn.sub == 'b'", frozenset({"token"}))
    assert isinstance(error, CELCompileError)
    assert (error.line, error.column) == (2, 4)
    assert "undeclared reference to 'tokn'" in error.message
    assert str(error).startswith("line 2 column 4: ")


def test_message_construction_is_unsupported() -> None:
    error = refused("Msg{a: 1}")
    assert isinstance(error, CELCompileError)
    assert "message construction" in error.message


def test_limits() -> None:
    refused_long = refused("1" * (MAX_SOURCE_LENGTH + 1))
    assert isinstance(refused_long, CELCompileError)
    assert "longer than" in refused_long.message
    assert str(refused_long) == refused_long.message  # no position
    assert ev("(" * 40 + "1" + ")" * 40) == 1
    assert ev(" + ".join(["1"] * 40)) == 40
    assert ev("x" + ".a" * 40, x=_nest(40)) == 0
    assert ev("!" * 40 + "true") is True
    assert ev(" || ".join(["false"] * 400) + " || true") is True  # flattened: no depth
    for deep in ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), "-" * (MAX_DEPTH + 2) + "1"):
        error = refused(deep)
        assert isinstance(error, CELCompileError)
        assert "nests deeper" in error.message


def _nest(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = {"a": value}
    return value


def test_deep_data_is_an_evaluation_error_not_a_crash() -> None:
    deep: object = 1
    for _ in range(5000):
        deep = [deep]
    from apishield.cel import CELEvalError

    rule = compile_expression("x == y", variables=frozenset({"x", "y"}))
    with pytest.raises(CELEvalError):
        rule.evaluate({"x": deep, "y": deep})
