"""Whatever the request data is, a rule yields a value or a CELEvalError (which denies), never a crash."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

from apishield.cel import CELCompileError, CELEvalError, CELSyntaxError, Uint, compile_expression
from tests.cel.corpus import EXPRESSIONS, VARIABLES
from tests.cel.generator import ExpressionGenerator

SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64,
    10**30,
    -0.0,
    1.5,
    math.nan,
    math.inf,
    "",
    "c1",
    "user",
    "\u0661",
    b"\xff",
    Uint(3),
]
KEYS = ["sub", "customer_id", "roles", "age", "limits", "max", "owner", "items", "qty", "tags", "status", "q"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.5:
        return {k: _value(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(0, 6))}
    return rng.choice(SCALARS)


def test_rules_over_hostile_data_only_fail_with_cel_errors() -> None:
    rng = random.Random(7)
    activations = [{name: _value(rng) for name in VARIABLES} for _ in range(12)]
    generator = ExpressionGenerator(11)
    sources = EXPRESSIONS + [generator.generate() for _ in range(200)]
    outcomes = {"value": 0, "error": 0}
    for source in sources:
        try:
            rule = compile_expression(source, variables=VARIABLES)
        except (CELSyntaxError, CELCompileError):
            continue
        for activation in activations:
            try:
                rule.evaluate(activation)
                outcomes["value"] += 1
            except CELEvalError:
                outcomes["error"] += 1
    assert outcomes["value"] > 1000 and outcomes["error"] > 1000


ODD_VALUES: list[Any] = [
    *SCALARS,
    "9" * 5000,
    10**5000,
    "\ud800",
    [],
    [1, "a"],
    {},
    {1: 2, "k": True},
    (1,),
    {1, 2},
    object(),
]
OPERATIONS = [
    *(f"{f}(x)" for f in ("size", "int", "uint", "double", "string", "bytes", "bool", "dyn")),
    *(f"x.{f}()" for f in ("size", "lowerAscii", "upperAscii")),
    *(f"x.{f}(y)" for f in ("contains", "startsWith", "endsWith", "matches")),
    *(f"x {op} y" for op in ("+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "in", "&&", "||")),
    "-x",
    "!x",
    "x[y]",
    "x.a",
    "has(x.a)",
    "x ? 1 : 2",
    "x.all(i, i)",
    "x.exists(i, i == y)",
    "x.map(i, i)",
    "x.filter(i, i)",
    "x.exists_one(i, true)",
    "{x: y}",
    "x == [y]",
    "'a' in x",
    "x in ['a', 'b']",
    "x == 1",
    "x < 5",
]


def test_every_operation_on_odd_values_only_fails_with_cel_errors() -> None:
    variables = frozenset({"x", "y"})
    for source in OPERATIONS:
        rule = compile_expression(source, variables=variables)
        for x in ODD_VALUES:
            for y in ODD_VALUES[::3]:
                with contextlib.suppress(CELEvalError):  # anything else fails the test
                    rule.evaluate({"x": x, "y": y})
