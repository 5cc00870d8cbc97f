"""``&&``, ``||``, ``!`` and ``? :``: CEL's commutative error absorption, and strictness elsewhere."""

from __future__ import annotations

import pytest

from tests.cel.support import ev, fails

T, F, E, N = "true", "false", "(1 / 0 == 1)", "1"  # E is an error, N a value that is not a bool
ERROR = "error"

AND_TABLE = [
    (T, T, True),
    (T, F, False),
    (F, T, False),
    (F, F, False),
    (F, E, False),
    (E, F, False),
    (T, E, ERROR),
    (E, T, ERROR),
    (E, E, ERROR),
    (F, N, False),
    (N, F, False),
    (T, N, ERROR),
    (N, T, ERROR),
    (N, N, ERROR),
    (E, N, ERROR),
]
OR_TABLE = [
    (T, T, True),
    (T, F, True),
    (F, T, True),
    (F, F, False),
    (T, E, True),
    (E, T, True),
    (F, E, ERROR),
    (E, F, ERROR),
    (E, E, ERROR),
    (T, N, True),
    (N, T, True),
    (F, N, ERROR),
    (N, F, ERROR),
    (N, E, ERROR),
]


@pytest.mark.parametrize(("a", "b", "expected"), AND_TABLE)
def test_and_absorbs_errors_commutatively(a: str, b: str, expected: object) -> None:
    source = f"{a} && {b}"
    if expected is ERROR:
        fails(source)
    else:
        assert ev(source) is expected


@pytest.mark.parametrize(("a", "b", "expected"), OR_TABLE)
def test_or_absorbs_errors_commutatively(a: str, b: str, expected: object) -> None:
    source = f"{a} || {b}"
    if expected is ERROR:
        fails(source)
    else:
        assert ev(source) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (f"{E} || {E} || {T}", True),
        (f"{T} && {E} && {F}", False),
        (f"{N} && {E} && {F} && {T}", False),
        (f"{F} || {F} || {F} || {F}", False),
        (f"{T} && {T} && {T} && {T}", True),
        (f"({E} || {T}) && ({F} || {T})", True),
        (f"{F} || ({E} || {T})", True),
    ],
)
def test_chains(source: str, expected: bool) -> None:
    assert ev(source) is expected


@pytest.mark.parametrize(
    "source", [f"{E} || {E} || {F}", f"{T} && {N} && {T}", f"{F} || {N} || {F}", f"{T} && {T} && {E}"]
)
def test_chains_that_fail(source: str) -> None:
    fails(source)


def test_missing_key_is_absorbed_like_any_error() -> None:
    token = {"roles": ["support"]}
    assert ev("token.customer_id == 'c1' || 'support' in token.roles", token=token) is True
    assert ev("token.customer_id == 'c1' && 'admin' in token.roles", token=token) is False
    assert "no such key" in fails("token.customer_id == 'c1' || 'admin' in token.roles", token=token)


def test_not() -> None:
    assert ev("!true") is False
    assert ev("!false") is True
    assert ev("!!true") is True
    assert ev("!!!true") is False
    assert "no matching overload" in fails("!1")
    assert "no matching overload" in fails("!null")
    fails(f"!{E}")


def test_runs_of_one_unary_operator_collapse_as_in_cel_go() -> None:
    # cel-go and cel-rust drop an even run of "!" or "-" while parsing: !!x is x, whatever x is
    assert ev("!!1") == 1
    assert ev("--'a'") == "a"
    assert ev("---1") == -1
    assert ev("- -1u") == 1
    assert "no matching overload" in fails("!!!1")
    assert "no matching overload" in fails("!(!1)")  # parentheses end the run
    assert "no matching overload" in fails("-(-(1u))")
    assert "no matching overload" in fails("!-1")


def test_conditional_takes_one_branch() -> None:
    assert ev(f"true ? 1 : {E}") == 1
    assert ev(f"false ? {E} : 'no'") == "no"
    assert ev("x > 2 ? 'big' : 'small'", x=3) == "big"
    assert ev("false ? 1 : true ? 2 : 3") == 2  # right-associative
    assert "no matching overload" in fails("1 ? 2 : 3")
    fails(f"{E} ? 1 : 2")


def test_precedence() -> None:
    assert ev("true || false && false") is True  # && binds tighter
    assert ev("1 + 2 * 3 == 7") is True
    assert ev("!false && 1 < 2") is True
    assert ev("-2 * -3") == 6
    assert ev("(true ? 1 : 2) + 3") == 4
    assert ev("true ? 1 : 2 + 3") == 1
