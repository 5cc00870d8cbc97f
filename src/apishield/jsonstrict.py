"""Strict JSON parsing for request bodies (RFC 8259, with RFC 7493 I-JSON rules).

A gateway and the service behind it must not read the same bytes differently.
JSON parsers disagree exactly where RFC 8259 is loose, so this parser refuses
those cases instead of picking a reading (I-JSON, RFC 7493 §2):

* duplicate member names in an object (§2.3): one parser keeps the first,
  another the last, and a smuggled ``"role": "admin"`` wins upstream;
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all, but Python's
  ``json`` accepts them);
* invalid UTF-8, a byte-order mark, lone surrogates (§2.1);
* numbers that do not fit a finite double (``1e400``), and integers too long
  to convert in bounded time;
* nesting deeper than a limit, checked *before* parsing in linear time, so a
  deeply nested document costs no recursion.

The caller forwards the re-serialised value, never the original bytes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["JSONRejected", "dumps", "parse"]

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NON_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JSONRejected(ValueError):
    """The body is not acceptable JSON; ``reason`` never contains body content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JSONRejected("duplicate member name in an object")
    return obj


def _constant(name: str) -> Any:
    raise JSONRejected(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise JSONRejected("a number is out of the range of a double")
    return value


def _int(text: str) -> int:
    if len(text) > 40:  # far beyond 64 bits; also keeps int() conversion cheap
        raise JSONRejected("integer out of the interoperable range")
    return int(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_float, parse_int=_int
)


def nesting_exceeds(data: bytes, max_depth: int) -> bool:
    """True when arrays/objects nest deeper than ``max_depth``; linear in the body size.

    Strings are removed first (brackets inside them do not count), then only
    the bracket characters are kept. A document with no more than
    ``max_depth`` opening brackets cannot be deeper (the common case, decided
    by two counts); otherwise one pass over the brackets tracks the depth.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False  # brackets inside strings only make this count larger: still a proof
    brackets = _STRINGS.sub(b"", data).translate(None, _NON_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in brackets:
        if byte == 91 or byte == 123:  # [ {
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def parse(data: bytes, max_depth: int = 64) -> Any:
    """Parse ``data`` strictly; raises :class:`JSONRejected` with a safe reason."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise JSONRejected("a byte-order mark is not allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONRejected("body is not valid UTF-8") from None
    if nesting_exceeds(data, max_depth):
        raise JSONRejected(f"nesting deeper than {max_depth} levels")
    try:
        value = _DECODER.decode(text)
    except JSONRejected:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRejected(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JSONRejected(f"nesting deeper than {max_depth} levels") from None
    return value


def dumps(value: Any) -> bytes:
    """Serialise a parsed value for forwarding; refuses what I-JSON forbids."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # lone surrogates, integers beyond 64 bits
        msg = str(exc)
        if "Integer exceeds" in msg:
            raise JSONRejected("integer out of the interoperable range") from None
        if "surrogate" in msg:
            raise JSONRejected("string contains a lone surrogate") from None
        raise JSONRejected("value cannot be represented as interoperable JSON") from None
