"""Strict JSON parsing for request bodies (RFC 8259, with RFC 7493 I-JSON rules).

A gateway and the service behind it must not read the same bytes differently.
JSON parsers disagree exactly where RFC 8259 is loose, so this parser refuses
those cases instead of picking a reading (I-JSON, RFC 7493 §2):

* duplicate member names in an object (§2.3): one parser keeps the first,
  another the last, and a smuggled ``"role": "admin"`` wins upstream;
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all, but Python's
  ``json`` accepts them);
* invalid UTF-8, a byte-order mark, lone surrogates (§2.1);
* nesting deeper than a limit, checked *before* parsing so a deeply nested
  document costs linear time and no recursion.

The caller forwards the re-serialised value, never the original bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["JSONRejected", "dumps", "parse"]

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LEAF_PAIRS = re.compile(rb"\{\}|\[\]")
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


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def nesting_exceeds(data: bytes, max_depth: int) -> bool:
    """True when arrays/objects nest deeper than ``max_depth``.

    Strings are removed first (brackets inside them do not count), then only
    the bracket characters are kept; each pass deletes the innermost ``{}`` and
    ``[]`` pairs, so the number of passes needed to empty it is the depth.
    """
    brackets = _STRINGS.sub(b"", data).translate(None, _NON_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = _LEAF_PAIRS.sub(b"", brackets)
    # what is left is either deeper nesting (pairs remain) or unbalanced brackets,
    # which the parser reports as malformed
    return _LEAF_PAIRS.search(brackets) is not None


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
