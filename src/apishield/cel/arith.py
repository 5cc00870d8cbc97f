"""CEL arithmetic: ``+ - * / %`` and unary ``-``, with 64-bit overflow checks.

No operator mixes kinds (``1 + 1.0`` and ``1 + 1u`` have no overload);
``int`` results outside the signed 64-bit range and ``uint`` results outside
the unsigned one are errors, as are division and modulus by zero on integers.
Integer division truncates toward zero and the remainder takes the sign of
the dividend (C, Go and Rust, not Python). ``double`` follows IEEE 754:
``1.0 / 0.0`` is infinity, and there is no ``double`` modulus. ``+`` also
concatenates strings, bytes and lists, up to :data:`~.limits.MAX_CONCAT_LENGTH`.
"""

from __future__ import annotations

import math
from typing import Any

from apishield.cel.errors import CELEvalError
from apishield.cel.limits import MAX_CONCAT_LENGTH
from apishield.cel.values import INT_MAX, INT_MIN, UINT_MAX, Uint, no_overload

__all__ = ["add", "divide", "modulo", "multiply", "negate", "subtract"]

_CONCATENABLE = frozenset({str, bytes, list})


def _int(result: int) -> int:
    if INT_MIN <= result <= INT_MAX:
        return result
    raise CELEvalError("integer overflow")


def _uint(result: int) -> Uint:
    if 0 <= result <= UINT_MAX:
        return Uint(result)
    raise CELEvalError("unsigned integer overflow")


def add(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int(a + b)
        if ta is float:
            return a + b
        if ta in _CONCATENABLE:
            if len(a) + len(b) > MAX_CONCAT_LENGTH:
                raise CELEvalError(f"concatenation longer than {MAX_CONCAT_LENGTH}")
            return a + b
        if ta is Uint:
            return _uint(a + b)
    raise no_overload("_+_", a, b)


def subtract(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int(a - b)
        if ta is float:
            return a - b
        if ta is Uint:
            return _uint(a - b)
    raise no_overload("_-_", a, b)


def multiply(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int:
            return _int(a * b)
        if ta is float:
            return a * b
        if ta is Uint:
            return _uint(a * b)
    raise no_overload("_*_", a, b)


def divide(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b):
        if ta is int or ta is Uint:
            if b == 0:
                raise CELEvalError("division by zero")
            quotient = abs(a) // abs(b)
            if (a < 0) != (b < 0):
                quotient = -quotient
            return _int(quotient) if ta is int else Uint(quotient)
        if ta is float:
            if b != 0.0:
                return a / b
            if a != a or a == 0.0:
                return math.nan
            return math.copysign(math.inf, a) * math.copysign(1.0, b)
    raise no_overload("_/_", a, b)


def modulo(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is type(b) and (ta is int or ta is Uint):
        if b == 0:
            raise CELEvalError("modulus by zero")
        if ta is int and a == INT_MIN and b == -1:
            raise CELEvalError("integer overflow")
        remainder = abs(a) % abs(b)
        return (-remainder if a < 0 else remainder) if ta is int else Uint(remainder)
    raise no_overload("_%_", a, b)


def negate(a: Any) -> Any:
    ta = type(a)
    if ta is int:
        return _int(-a)
    if ta is float:
        return -a
    raise no_overload("-_", a)
