"""The type conversion functions: ``int``, ``uint``, ``double``, ``string``, ``bytes``, ``bool``, ``dyn``.

They follow cel-go, the reference implementation, wherever the spec leaves
a detail open:

* ``int(double)`` and ``uint(double)`` truncate toward zero and refuse NaN,
  infinities and anything outside the target range (``int(-9223372036854775808.0)``
  is out of range: the bound is exclusive, as in the conformance tests);
* ``int(string)``/``uint(string)`` read ASCII decimal digits only, with an
  optional sign for ``int`` (Go's ``ParseInt``/``ParseUint``: no spaces, no
  underscores, no ``0x``); ``double(string)`` reads a decimal number,
  ``inf``/``infinity``/``nan`` in any case, and refuses overflow to infinity;
* ``string(double)`` prints what Go's ``%g`` prints: shortest round-trip
  digits, scientific notation when the exponent is below -4 or at least 6
  (``1e+06``, ``1.5e-05``), ``+Inf``/``-Inf``/``NaN``;
* ``string(bytes)`` must be valid UTF-8; ``string(bool)`` is ``"true"``/``"false"``;
* ``bool(string)`` accepts Go's ``ParseBool`` spellings (``1 t T TRUE true True``
  and their false counterparts).
"""

from __future__ import annotations

import decimal
import math
import re
from typing import Any

from apishield.cel.errors import CELEvalError
from apishield.cel.values import INT_MAX, INT_MIN, UINT_MAX, Uint, no_overload

__all__ = ["format_double", "to_bool", "to_bytes", "to_double", "to_int", "to_string", "to_uint"]

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_UINT_TEXT = re.compile(r"[0-9]+")
_DOUBLE_TEXT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))")
_TWO_63 = 9223372036854775808.0
_TWO_64 = 18446744073709551616.0
_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


def _range_error(function: str) -> CELEvalError:
    return CELEvalError(f"{function}() argument out of range")


def to_int(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is Uint:
        if value > INT_MAX:
            raise _range_error("int")
        return int(value)
    if kind is float:
        if value != value or not -_TWO_63 < value < _TWO_63:
            raise _range_error("int")
        return int(value)
    if kind is str:
        if _INT_TEXT.fullmatch(value) is None:
            raise CELEvalError("int() of a string that is not a decimal integer")
        digits = value.lstrip("+-").lstrip("0") or "0"
        if len(digits) > 19:  # checked before int(), which refuses very long text
            raise _range_error("int")
        number = -int(digits) if value.startswith("-") else int(digits)
        if not INT_MIN <= number <= INT_MAX:
            raise _range_error("int")
        return number
    raise no_overload("int", value)


def to_uint(value: Any) -> Uint:
    kind = type(value)
    if kind is Uint:
        return value  # type: ignore[no-any-return]
    if kind is int:
        if not 0 <= value <= UINT_MAX:
            raise _range_error("uint")
        return Uint(value)
    if kind is float:
        if value != value or not 0.0 <= value < _TWO_64:
            raise _range_error("uint")
        return Uint(int(value))
    if kind is str:
        if _UINT_TEXT.fullmatch(value) is None:
            raise CELEvalError("uint() of a string that is not a decimal integer")
        digits = value.lstrip("0") or "0"
        if len(digits) > 20:
            raise _range_error("uint")
        number = int(digits)
        if number > UINT_MAX:
            raise _range_error("uint")
        return Uint(number)
    raise no_overload("uint", value)


def to_double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is Uint:
        try:
            return float(value)
        except OverflowError:
            raise _range_error("double") from None
    if kind is str:
        if _DOUBLE_TEXT.fullmatch(value) is None:
            raise CELEvalError("double() of a string that is not a number")
        number = float(value)
        if math.isinf(number) and "n" not in value.lower():  # 1e400, not "inf"
            raise _range_error("double")
        return number
    raise no_overload("double", value)


def format_double(value: float) -> str:
    """``value`` as Go's ``%g`` prints it (what cel-go's ``string(double)`` returns)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    parts = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    assert isinstance(parts.exponent, int)
    point = len(digits) + parts.exponent  # the decimal point sits after this many digits
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def to_string(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is Uint:
        try:
            return str(int(value))
        except ValueError:  # an integer from the data too long to print
            raise _range_error("string") from None
    if kind is float:
        return format_double(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is bytes:
        try:
            return value.decode("utf-8")  # type: ignore[no-any-return]
        except UnicodeDecodeError:
            raise CELEvalError("string() of bytes that are not valid UTF-8") from None
    raise no_overload("string", value)


def to_bytes(value: Any) -> bytes:
    kind = type(value)
    if kind is bytes:
        return value  # type: ignore[no-any-return]
    if kind is str:
        try:
            return value.encode("utf-8")  # type: ignore[no-any-return]
        except UnicodeEncodeError:
            raise CELEvalError("bytes() of a string that is not valid Unicode") from None
    raise no_overload("bytes", value)


def to_bool(value: Any) -> bool:
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[no-any-return]
    if kind is str:
        try:
            return _BOOLS[value]
        except KeyError:
            raise CELEvalError("bool() of a string that is not a boolean") from None
    raise no_overload("bool", value)
