"""CEL values as plain Python data, and the relations between them: equality, ordering, lookup.

The mapping is the JSON one, plus CEL's own scalars:

======================  ==============================================
CEL                     Python
======================  ==============================================
``bool``                ``bool``
``int``                 ``int`` (not ``bool``, not :class:`Uint`)
``uint``                :class:`Uint`, an ``int`` that knows it is unsigned
``double``              ``float``
``string``, ``bytes``   ``str``, ``bytes``
``null``                ``None``
``list``, ``map``       ``list``, ``dict``
======================  ==============================================

Python's own ``==`` is almost CEL's, with traps this module closes:
``True == 1`` and ``{1: 'a'}[True]`` hold in Python but not in CEL (a bool is
not a number), so every comparison looks at the exact ``type()`` first.
Numbers of different kinds compare by value (heterogeneous equality, as the
current spec and cel-go/cel-rust do): ``1 == 1.0 == 1u``; an ``int`` meets a
``double`` as a double, as cel-go converts it. Values of different kinds
are unequal, never an error; ordering them is an error, and so is ordering
NaN. Map lookups follow cel-go: a string key finds a string, an integral
number finds an ``int`` or ``uint`` key of the same value, a bool finds a bool;
a value that cannot be a key (null, a list...) is simply not found.

Activation data must be JSON-shaped: maps are ``dict`` and lists are
``list`` (a tuple, a set or another ``Mapping`` is not a CEL value here). An
integer from the data beyond the 64-bit range still compares by value;
arithmetic whose result leaves the range is an overflow error.
"""

from __future__ import annotations

import math
from typing import Any, Final

from apishield.cel.errors import CELEvalError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MISSING",
    "UINT_MAX",
    "Uint",
    "contains",
    "equal",
    "index",
    "less",
    "less_equal",
    "map_find",
    "map_get",
    "no_overload",
    "shown",
    "type_name",
]

INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 63) - 1
UINT_MAX: Final = (1 << 64) - 1


class Uint(int):
    """A CEL ``uint``; arithmetic on it goes through :mod:`apishield.cel.arith`, which keeps the type."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()

_NONE = type(None)
_TYPE_NAMES: Final[dict[type, str]] = {
    bool: "bool",
    int: "int",
    Uint: "uint",
    float: "double",
    str: "string",
    bytes: "bytes",
    list: "list",
    dict: "map",
    _NONE: "null_type",
}
_NUMBERS: Final = frozenset({int, Uint, float})
_ORDERED: Final = frozenset({int, Uint, float, str, bytes, bool})
_INTEGERS: Final = frozenset({int, Uint})


def type_name(value: Any) -> str:
    """The CEL name of the value's type (the Python name for what is not a CEL value)."""
    return _TYPE_NAMES.get(type(value)) or type(value).__name__


def no_overload(function: str, *args: Any) -> CELEvalError:
    kinds = ", ".join(type_name(a) for a in args)
    return CELEvalError(f"no matching overload for '{function}' applied to ({kinds})")


def _as_double(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer from the activation beyond any double
        return math.inf if value > 0 else -math.inf


# -- equality ---------------------------------------------------------------------------------


def equal(a: Any, b: Any) -> bool:
    """CEL ``==``: never an error; different kinds are unequal, numbers compare by value."""
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is list:
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
        if ta is dict:
            return _map_equal(a, b)
        return bool(a == b)
    if ta in _NUMBERS and tb in _NUMBERS:
        if ta is float:
            return bool(a == _as_double(b))
        if tb is float:
            return bool(_as_double(a) == b)
        return bool(a == b)
    return False


def _map_equal(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    if len(a) != len(b):
        return False
    for key, value in a.items():
        other = map_find(b, key)
        if other is MISSING or not equal(value, other):
            return False
    return True


# -- ordering ---------------------------------------------------------------------------------


def _ordered_pair(function: str, a: Any, b: Any) -> tuple[Any, Any]:
    """The two operands as values Python orders the CEL way, or an error."""
    ta = type(a)
    tb = type(b)
    if ta is tb and ta in _ORDERED:
        pass
    elif ta in _NUMBERS and tb in _NUMBERS:
        if ta is float:
            b = _as_double(b)
        elif tb is float:
            a = _as_double(a)
    else:
        raise no_overload(function, a, b)
    if (ta is float or tb is float) and (a != a or b != b):
        raise CELEvalError("NaN values cannot be ordered")
    return a, b


def less(a: Any, b: Any) -> bool:
    """CEL ``a < b`` (``a > b`` is ``less(b, a)``)."""
    ta = type(a)
    if ta is type(b) and (ta is int or ta is str):
        return bool(a < b)
    x, y = _ordered_pair("_<_", a, b)
    return bool(x < y)


def less_equal(a: Any, b: Any) -> bool:
    """CEL ``a <= b`` (``a >= b`` is ``less_equal(b, a)``)."""
    ta = type(a)
    if ta is type(b) and (ta is int or ta is str):
        return bool(a <= b)
    x, y = _ordered_pair("_<=_", a, b)
    return bool(x <= y)


# -- maps and membership ----------------------------------------------------------------------


def map_find(mapping: dict[Any, Any], key: Any) -> Any:
    """The value under ``key`` with CEL key semantics, or :data:`MISSING`."""
    tk = type(key)
    if tk is str:
        return mapping.get(key, MISSING)
    if tk is float:
        if not key.is_integer():
            return MISSING
        key = int(key)
        tk = int
    try:
        if mapping.get(key, MISSING) is MISSING:  # cheap miss; a hit may be a Python-only equality
            return MISSING
    except TypeError:  # unhashable: a list or map is never a key
        return MISSING
    accepted = _INTEGERS if tk in _INTEGERS else (tk,)
    for stored, value in mapping.items():
        if type(stored) in accepted and stored == key:
            return value
    return MISSING


def shown(key: Any) -> str:
    """A key for an error message: its repr, cut short (it may come from the request)."""
    if type(key) is bool:
        return "true" if key else "false"
    try:
        text = "null" if key is None else repr(key)
    except ValueError:  # an integer too long to print
        return f"a very large {type_name(key)}"
    return text if len(text) <= 40 else text[:37] + "..."


def map_get(mapping: dict[Any, Any], key: Any) -> Any:
    value = map_find(mapping, key)
    if value is MISSING:
        raise CELEvalError(f"no such key: {shown(key)}")
    return value


def index(container: Any, key: Any) -> Any:
    """CEL ``container[key]``: a list position (an integral number) or a map key."""
    tc = type(container)
    if tc is list:
        tk = type(key)
        if tk is int or tk is Uint:
            position = key
        elif tk is float and key.is_integer():
            position = int(key)
        else:
            raise no_overload("_[_]", container, key)
        if 0 <= position < len(container):
            return container[position]
        raise CELEvalError(f"index {shown(key)} out of range for a list of {len(container)}")
    if tc is dict:
        return map_get(mapping=container, key=key)
    raise no_overload("_[_]", container, key)


def contains(container: Any, needle: Any) -> bool:
    """CEL ``needle in container``: list membership by :func:`equal`, or a map key."""
    tc = type(container)
    if tc is list:
        tn = type(needle)
        if tn is str or tn is bytes or needle is None:
            return needle in container  # Python's == is exact for these against any JSON value
        return any(equal(element, needle) for element in container)
    if tc is dict:
        return map_find(container, needle) is not MISSING
    raise no_overload("@in", needle, container)
