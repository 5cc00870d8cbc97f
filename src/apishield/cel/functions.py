"""The standard functions a rule may call, with their call styles and arities.

================================  ============================  =====================================
function                          called as                     arguments (CEL types)
================================  ============================  =====================================
``size``                          ``size(x)``, ``x.size()``     string (code points), bytes, list, map
``contains``                      ``s.contains(t)``             string, string
``startsWith``, ``endsWith``      ``s.startsWith(t)``           string, string
``matches``                       ``s.matches(re)``,            string (bounded), RE2 pattern
                                  ``matches(s, re)``
``lowerAscii``, ``upperAscii``    ``s.lowerAscii()``            string (only ASCII letters change)
``int uint double string``        ``int(x)``                    see :mod:`.conversions`
``bytes bool dyn``
================================  ============================  =====================================

``lowerAscii``/``upperAscii`` come from cel-go's strings extension. The macros
(``has``, ``all``, ``exists``, ``exists_one``, ``map``, ``filter``) are not
functions; the compiler expands them. ``type()``, ``duration()``,
``timestamp()`` and the timestamp accessors are not provided: rules compare
JSON data, where times are strings or numbers, and type values add a
namespace of identifiers (``int``, ``string``...) for little use in policy.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apishield.cel import conversions
from apishield.cel.errors import CELEvalError
from apishield.cel.limits import MAX_MATCH_LENGTH
from apishield.cel.regex import RegexError, compile_re2
from apishield.cel.values import no_overload

__all__ = ["BUILTINS", "MACROS", "UNSUPPORTED", "Builtin", "search"]

MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
UNSUPPORTED = frozenset(
    {
        "type",
        "duration",
        "timestamp",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getMonth",
        "getSeconds",
    }
)

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    arity: int  # arguments, the receiver included
    method: bool  # may be called as x.f(...)
    function: bool  # may be called as f(x, ...)
    impl: Callable[..., Any]


def size(value: Any) -> int:
    kind = type(value)
    if kind is str or kind is list or kind is dict or kind is bytes:
        return len(value)
    raise no_overload("size", value)


def _strings(name: str, test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def impl(text: Any, part: Any) -> bool:
        if type(text) is str and type(part) is str:
            return test(text, part)
        raise no_overload(name, text, part)

    return impl


def search(regex: re.Pattern[str], text: str) -> bool:
    """Whether ``regex`` matches somewhere in ``text``, which must not exceed the length bound."""
    if len(text) > MAX_MATCH_LENGTH:
        raise CELEvalError(f"matches() on a string longer than {MAX_MATCH_LENGTH} characters")
    return regex.search(text) is not None


def matches(text: Any, pattern: Any) -> bool:
    """``text.matches(pattern)`` with a pattern known only at run time (compiled once, cached)."""
    if type(text) is not str or type(pattern) is not str:
        raise no_overload("matches", text, pattern)
    try:
        regex = compile_re2(pattern)
    except RegexError as exc:
        raise CELEvalError(f"matches(): {exc}") from None
    return search(regex, text)


def _ascii_case(name: str, table: dict[int, int]) -> Callable[[Any], str]:
    def impl(text: Any) -> str:
        if type(text) is str:
            return text.translate(table)
        raise no_overload(name, text)

    return impl


def dyn(value: Any) -> Any:
    return value


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("size", 1, True, True, size),
        Builtin("contains", 2, True, False, _strings("contains", str.__contains__)),
        Builtin("startsWith", 2, True, False, _strings("startsWith", str.startswith)),
        Builtin("endsWith", 2, True, False, _strings("endsWith", str.endswith)),
        Builtin("matches", 2, True, True, matches),
        Builtin("lowerAscii", 1, True, False, _ascii_case("lowerAscii", _LOWER)),
        Builtin("upperAscii", 1, True, False, _ascii_case("upperAscii", _UPPER)),
        Builtin("int", 1, False, True, conversions.to_int),
        Builtin("uint", 1, False, True, conversions.to_uint),
        Builtin("double", 1, False, True, conversions.to_double),
        Builtin("string", 1, False, True, conversions.to_string),
        Builtin("bytes", 1, False, True, conversions.to_bytes),
        Builtin("bool", 1, False, True, conversions.to_bool),
        Builtin("dyn", 1, False, True, dyn),
    )
}
