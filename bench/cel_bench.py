"""Cost of one authorization rule evaluation: apishield's compiled CEL against cel-rust and celpy.

For a few realistic rules it times, per evaluation, over the same
JSON-shaped activation:

* ``apishield``: ``CompiledExpression.evaluate_bool`` (compiled once to closures);
* ``cel-rust``: the ``cel`` module (common-expression-language), the program
  compiled once, its ``Context`` built from the activation on every call, as
  a gateway must (the cheapest of the ways the module offers);
* ``celpy``: cel-python's ``Runner``, compiled once, the activation converted
  with ``json_to_cel`` on every call (its values must be celpy types).

All three must agree on every rule before anything is timed. Rounds
interleave the implementations (rotating which goes first) so drift in
machine load hits all alike; the table shows the median µs per evaluation
and, for the two others, the median over rounds of their time divided by
apishield's in the same round (the least noisy ratio). celpy is slow, so it
runs fewer evaluations per round. The target is apishield <= 2 µs.

Run: ``python bench/cel_bench.py [--rounds N] [--number N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celpy

import cel as cel_rust
from apishield.cel import compile_expression
from apishield.core.activation import RULE_VARIABLES

TOKEN = {
    "sub": "alice",
    "customer_id": "c1",
    "partner_id": "p7",
    "roles": ["user", "support"],
    "scope": "orders:read orders:write",
    "iss": "https://issuer.example.com/",
    "exp": 1_700_000_000,
}
RULES = [
    (
        "owner check",
        "path.customerId == token.customer_id || 'support' in token.roles",
        {"path": {"customerId": "c2"}, "token": TOKEN},
    ),
    (
        "list item rule",
        "item.owner == token.customer_id && item.status != 'deleted'",
        {"item": {"id": 17, "owner": "c1", "status": "open", "total": 99.5}, "token": TOKEN},
    ),
    (
        "partner rule",
        "has(token.partner_id) && item.partnerId == token.partner_id",
        {"item": {"id": 3, "partnerId": "p7"}, "token": TOKEN},
    ),
    (
        "role comprehension",
        "token.roles.exists(r, r in ['admin', 'support']) && token.scope.contains('orders:write')",
        {"token": TOKEN},
    ),
]
IMPLEMENTATIONS = ("apishield", "cel-rust", "celpy")


@dataclass
class Case:
    name: str
    evaluate: dict[str, Callable[[], Any]]


def _case(name: str, source: str, activation: dict[str, Any]) -> Case:
    ours = compile_expression(source, variables=RULE_VARIABLES)
    program = cel_rust.compile(source)
    env = celpy.Environment()
    runner = env.program(env.compile(source))

    def apishield() -> Any:
        return ours.evaluate_bool(activation)

    def rust() -> Any:
        return program.execute(cel_rust.Context(activation))

    def python() -> Any:
        return runner.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()})

    return Case(name, {"apishield": apishield, "cel-rust": rust, "celpy": python})


def _per_op(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    cases = [_case(*rule) for rule in RULES]
    for case in cases:  # warm up, and prove the three agree
        results = {impl: bool(fn()) for impl, fn in case.evaluate.items()}
        if len(set(results.values())) != 1:
            raise SystemExit(f"{case.name}: implementations disagree: {results}")
    numbers = {
        "apishield": args.number,
        "cel-rust": max(args.number // 10, 1),
        "celpy": max(args.number // 200, 1),
    }
    samples: dict[tuple[str, str], list[float]] = {(c.name, i): [] for c in cases for i in IMPLEMENTATIONS}
    for round_ in range(args.rounds):
        for case in cases:
            shift = round_ % len(IMPLEMENTATIONS)
            for impl in IMPLEMENTATIONS[shift:] + IMPLEMENTATIONS[:shift]:
                samples[(case.name, impl)].append(_per_op(case.evaluate[impl], numbers[impl]))
    header = (
        f"{'rule':<20}{'apishield µs':>14}{'cel-rust µs':>13}{'celpy µs':>11}"
        f"{'rust/ours':>11}{'celpy/ours':>12}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        ours = samples[(case.name, "apishield")]
        rust = samples[(case.name, "cel-rust")]
        python = samples[(case.name, "celpy")]
        rust_ratio = statistics.median(r / o for r, o in zip(rust, ours, strict=True))
        python_ratio = statistics.median(p / o for p, o in zip(python, ours, strict=True))
        print(
            f"{case.name:<20}{statistics.median(ours):>14.2f}{statistics.median(rust):>13.2f}"
            f"{statistics.median(python):>11.1f}{rust_ratio:>10.1f}x{python_ratio:>11.0f}x"
        )
    worst = max(statistics.median(samples[(c.name, "apishield")]) for c in cases)
    print(f"\napishield's slowest rule: {worst:.2f} µs per evaluation (target <= 2 µs)")


if __name__ == "__main__":
    main()
