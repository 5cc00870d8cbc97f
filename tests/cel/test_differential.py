"""Differential test: apishield's CEL against cel-rust (the ``cel`` module of common-expression-language).

Every expression of the corpus (:mod:`tests.cel.corpus`, hand-written) and of
the generator (:mod:`tests.cel.generator`, seeded) is evaluated over every
activation by both implementations; they must agree: equal values (uint and
int compare by value, since cel-rust returns both as Python ints; NaN equals
NaN; a bool is never a number), or both an error of any kind (a syntax or
compile error counts as an error).

Where cel-rust departs from the spec, the case is not skipped: it is pinned
in :data:`DIVERGENCES` with what each side returns and why, and the test
checks both sides. If a new cel-rust fixes one, its row fails and must go.
The table also lists the few places where this implementation itself
departs from the spec, for the same reason: so the choice is visible.

==============================  =============  ============  ==============================================
expression                      spec, ours     cel-rust      why
==============================  =============  ============  ==============================================
``size('héllo')``               5              6             cel-rust counts UTF-8 bytes, not code points
``-(-9223372036854775808)``     error          -2^63         cel-rust's int negation wraps
``-true``                       error          false         cel-rust negates bools; no -bool in the spec
``[0, 2].all(x, 1/x == 1)``     false          error         cel-rust's all()/exists() stop at an error;
                                                             the spec absorbs it as && and || do
``{1: 'a'}[1u]``                'a'            error         cel-rust's key lookup does not cross int,
``{1: 'a'}[1.0]``, ``1.0 in``   'a', true      error         uint and double (cel-go's does)
``null in {'a': 1}``            false          error         not a key type: absent (cel-go)
``[7, 8][1.0]``                 8              error         an integral double may index a list (spec)
``[1] + {'a': 2}``              error          [1, 'a']      cel-rust appends map keys: no such overload
``{'a': 1, 'a': 2}``            error          {'a': 2}      duplicate map keys are an error (spec)
``string(b'\\377')``            error          '\\ufffd'     invalid UTF-8 is an error, not replaced
``string(true)``                'true'         error         cel-rust has no string(bool)
``bool('true')``                true           error         cel-rust's core has no bool()
``matches('xyz', 'y')``         true           error         cel-rust has no global-style matches()
``string(1e20)``                '1e+20'        '1000...0'    cel-go's %g formatting (the spec is silent)
``'\u0661'.matches('\\d')``     false          true          RE2's \\d is ASCII, Rust regex's is Unicode
``'ABC'.lowerAscii()``          'abc'          error         cel-go strings extension, not in cel-rust
``{true: 1, 1: 2}``             error (ours)   2 entries     spec: two keys; a Python dict cannot hold both
``{1: 'a', 1u: 'b'}``           error (ours)   2 entries     ours: 1 and 1u are one key
==============================  =============  ============  ==============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

import cel as cel_rust
from apishield.cel import CELCompileError, CELEvalError, CELSyntaxError, compile_expression
from tests.cel.corpus import ACTIVATIONS, EXPRESSIONS, VARIABLES
from tests.cel.generator import ExpressionGenerator


class _Error:
    def __repr__(self) -> str:
        return "ERROR"


ERROR: Any = _Error()
GENERATED_COUNT = 500
SEED = 20240611


def ours(source: str, activations: list[dict[str, Any]], variables: frozenset[str] = VARIABLES) -> list[Any]:
    try:
        expression = compile_expression(source, variables=variables)
    except (CELSyntaxError, CELCompileError):
        return [ERROR] * len(activations)
    results = []
    for activation in activations:
        try:
            results.append(expression.evaluate(activation))
        except CELEvalError:
            results.append(ERROR)
    return results


def _rust_error(exc: BaseException) -> Any:
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    return ERROR  # including a Rust panic, which PyO3 raises as a BaseException


def theirs(source: str, activations: list[dict[str, Any]]) -> list[Any]:
    try:
        program = cel_rust.compile(source)
    except BaseException as exc:
        return [_rust_error(exc)] * len(activations)
    results = []
    for activation in activations:
        try:
            results.append(program.execute(activation))
        except BaseException as exc:
            results.append(_rust_error(exc))
    return results


def same(a: Any, b: Any) -> bool:
    """Agreement of two results, strict about kinds where cel-rust's Python values show them."""
    if a is ERROR or b is ERROR:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, int) and isinstance(b, int):  # int or uint on either side
        return int(a) == int(b)
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        if len(a) != len(b):
            return False
        pairs = {_key(k): v for k, v in b.items()}
        return all(_key(k) in pairs and same(v, pairs[_key(k)]) for k, v in a.items())
    return type(a) is type(b) and a == b


def _key(key: Any) -> tuple[str, Any]:
    """A dict key that keeps bools apart from ints (and uint with int)."""
    if isinstance(key, bool):
        return "bool", key
    return ("int" if isinstance(key, int) else type(key).__name__), key


def disagreements(sources: list[str]) -> list[str]:
    found = []
    for source in sources:
        for n, (a, b) in enumerate(zip(ours(source, ACTIVATIONS), theirs(source, ACTIVATIONS), strict=True)):
            if not same(a, b):
                found.append(f"{source!r} on activation {n}: apishield {a!r}, cel-rust {b!r}")
    return found


def test_corpus_is_large_enough() -> None:
    generated = _generated()
    assert len(EXPRESSIONS) >= 250
    assert len(set(EXPRESSIONS) | set(generated)) >= 600
    assert len(ACTIVATIONS) >= 4


def test_hand_written_corpus_agrees_with_cel_rust() -> None:
    found = disagreements(EXPRESSIONS)
    assert not found, "\n".join(found[:30])


def _generated() -> list[str]:
    generator = ExpressionGenerator(SEED)
    return [generator.generate() for _ in range(GENERATED_COUNT)]


def test_generated_corpus_agrees_with_cel_rust() -> None:
    found = disagreements(_generated())
    assert not found, "\n".join(found[:30])


def test_both_sides_mostly_produce_values() -> None:
    """A corpus where everything fails would agree trivially."""
    results = [r for source in EXPRESSIONS + _generated() for r in ours(source, ACTIVATIONS)]
    values = [r for r in results if r is not ERROR]
    assert len(values) / len(results) > 0.6
    assert sum(1 for v in values if v is True) > 300
    assert sum(1 for v in values if v is False) > 300


# -- the pinned divergences -------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    source: str
    spec: Any  # what the spec says, and what apishield returns
    rust: Any  # what cel-rust returns
    reason: str


DIVERGENCES = [
    Divergence("size('héllo')", 5, 6, "cel-rust counts UTF-8 bytes; the spec counts code points"),
    Divergence("'héllo'.size()", 5, 6, "same, method style"),
    Divergence(
        "-(-9223372036854775808)", ERROR, -(2**63), "cel-rust's int negation wraps instead of overflowing"
    ),
    Divergence("-x", ERROR, -(2**63), "same, on data (x is -2^63)"),
    Divergence("[0, 2].all(x, 1 / x == 1)", False, ERROR, "cel-rust's all() stops at the first error"),
    Divergence("[0, 1].exists(x, 1 / x == 1)", True, ERROR, "cel-rust's exists() stops at the first error"),
    Divergence("{1: 'a'}[1u]", "a", ERROR, "cel-rust's map lookup does not find an int key by a uint"),
    Divergence("{1u: 'a'}[1]", "a", ERROR, "nor a uint key by an int"),
    Divergence("{1: 'a'}[1.0]", "a", ERROR, "nor an int key by an integral double (cel-go does)"),
    Divergence("1.0 in {1: 'a'}", True, ERROR, "same, for in"),
    Divergence(
        "[7, 8][1.0]", 8, ERROR, "a list index may be an integral double (conformance: zero_based_double)"
    ),
    Divergence("{'a': 1, 'a': 2}", ERROR, {"a": 2}, "the spec makes duplicate map keys an error"),
    Divergence("string(b'\\377')", ERROR, "\ufffd", "string() of invalid UTF-8 is an error, not replaced"),
    Divergence("string(true)", "true", ERROR, "cel-rust has no string(bool) overload"),
    Divergence("bool('true')", True, ERROR, "cel-rust's core library has no bool()"),
    Divergence("string(1e20)", "1e+20", "100000000000000000000", "string(double) follows cel-go's %g"),
    Divergence("string(1234567.0)", "1.234567e+06", "1234567", "same"),
    Divergence("string(1e-05)", "1e-05", "0.00001", "same"),
    Divergence("string(1.0 / 0.0)", "+Inf", "inf", "same"),
    Divergence(
        "'\u0661'.matches('\\\\d')", False, True, "RE2's \\d is ASCII; the Rust regex crate's is Unicode"
    ),
    Divergence(
        "'ABC'.lowerAscii()", "abc", ERROR, "lowerAscii is cel-go's strings extension, absent in cel-rust"
    ),
    Divergence("'abc'.upperAscii()", "ABC", ERROR, "same"),
    Divergence("matches('xyz', 'y')", True, ERROR, "cel-rust lacks the global-style matches(string, string)"),
    Divergence(
        "-true", ERROR, False, "cel-rust negates a bool; the spec has no -bool (unary_minus_not_bool)"
    ),
    Divergence(
        "[1] + {'a': 2}", ERROR, [1, "a"], "cel-rust appends a map's keys to a list; no such overload"
    ),
    Divergence("null in {'a': 1}", False, ERROR, "a value that cannot be a key is simply absent (cel-go)"),
    Divergence("[1] in {'a': 1}", False, ERROR, "same"),
    Divergence("1.5 in {1: 'a'}", False, ERROR, "same"),
    Divergence(
        "size({true: 1, 1: 2})",
        ERROR,
        2,
        "apishield departs from the spec (two distinct keys): a Python dict cannot hold both",
    ),
    Divergence(
        "size({1: 'a', 1u: 'b'})",
        ERROR,
        2,
        "apishield departs: 1 and 1u are one key (heterogeneous equality)",
    ),
]


@pytest.mark.parametrize("case", DIVERGENCES, ids=lambda d: d.source)
def test_pinned_divergence(case: Divergence) -> None:
    activation = [{"x": -(2**63)}]
    (mine,) = ours(case.source, activation, frozenset({"x"}))
    (rust,) = theirs(case.source, activation)
    assert same(mine, case.spec), f"apishield gives {mine!r}, the table says {case.spec!r}"
    assert same(rust, case.rust), f"cel-rust now gives {rust!r} (table: {case.rust!r}): update the table"
    assert not same(mine, rust)
