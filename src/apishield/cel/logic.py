"""``&&`` and ``||`` as closures: commutative with respect to errors.

CEL's logical operators are not short-circuit operators in the C sense: an
operand that decides the result (``false`` for ``&&``, ``true`` for ``||``)
wins even when the other operand is an error or not a bool, whichever side
it is on. Otherwise an error propagates (which one, when both fail, is left
open by the spec). A non-bool operand is a "no matching overload" error that
can be absorbed like any other. Evaluation goes left to right and stops at
the first deciding operand, so ``false && x`` never evaluates ``x``.

Two operands get their own closure (the common case); a longer chain
``a || b || c`` is one n-ary closure that remembers the first error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apishield.cel.errors import CELEvalError
from apishield.cel.program import Program
from apishield.cel.values import no_overload

__all__ = ["conjunction", "disjunction"]


def _and2(a: Program, b: Program) -> Program:
    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        try:
            x = a(act, loc)
        except CELEvalError as exc:
            first = exc
        else:
            if x is False:
                return False
            if x is True:
                y = b(act, loc)
                if y is True or y is False:
                    return y
                raise no_overload("_&&_", x, y)
            first = no_overload("_&&_", x)
        if b(act, loc) is False:
            return False
        raise first

    return f


def _or2(a: Program, b: Program) -> Program:
    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        try:
            x = a(act, loc)
        except CELEvalError as exc:
            first = exc
        else:
            if x is True:
                return True
            if x is False:
                y = b(act, loc)
                if y is True or y is False:
                    return y
                raise no_overload("_||_", x, y)
            first = no_overload("_||_", x)
        if b(act, loc) is True:
            return True
        raise first

    return f


def _chain(operands: tuple[Program, ...], absorbing: bool, operator: str) -> Program:
    other = not absorbing

    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        error: CELEvalError | None = None
        for operand in operands:
            try:
                value = operand(act, loc)
            except CELEvalError as exc:
                error = error or exc
                continue
            if value is absorbing:
                return absorbing
            if value is not other and error is None:
                error = no_overload(operator, value)
        if error is not None:
            raise error
        return other

    return f


def conjunction(operands: tuple[Program, ...]) -> Program:
    """``a && b && ...`` (two operands at least)."""
    return _and2(*operands) if len(operands) == 2 else _chain(operands, False, "_&&_")


def disjunction(operands: tuple[Program, ...]) -> Program:
    """``a || b || ...`` (two operands at least)."""
    return _or2(*operands) if len(operands) == 2 else _chain(operands, True, "_||_")
