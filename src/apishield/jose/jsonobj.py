"""JSON objects inside JOSE: the JOSE header and the JWT claims set.

RFC 7515 §4 and RFC 7519 §4 allow a recipient either to reject duplicate
member names or to keep the lexically last one; apishield rejects them, since
two parsers that pick different duplicates read two different tokens. RFC 8725
§3.7 requires UTF-8. The rules are those of :func:`apishield.jsonstrict.parse`
(I-JSON, RFC 7493 §2): no duplicates, no ``NaN``/``Infinity``, numbers that fit
a double, no byte-order mark, valid UTF-8, bounded nesting.

Tokens are parsed on every request, so there is a fast path with the same
result: the nesting limit is proven by counting brackets (a document with at
most ``max_depth`` opening brackets cannot nest deeper than ``max_depth``,
whatever is inside its strings), which spares the string-stripping depth scan
that ``jsonstrict.parse`` runs first; the document is then decoded by
jsonstrict's own decoder. Any document that the count cannot clear goes
through ``jsonstrict.parse`` itself. Both paths additionally refuse lone
surrogate escapes (``"\\ud800"``), which cannot be UTF-8 (RFC 8259 §8.2).
"""

from __future__ import annotations

import json
from typing import Any

from apishield import jsonstrict
from apishield.jose.errors import JOSEError

__all__ = ["parse_json_object"]


# jsonstrict's own decoder (duplicate names, NaN/Infinity, out-of-range numbers), so both
# paths apply the same rules; tests/jose/test_jsonobj.py checks they agree
_DECODER: json.JSONDecoder = jsonstrict._DECODER
_WHITESPACE = " \t\n\r"  # RFC 8259 §2 insignificant whitespace


def _parse_shallow(data: bytes) -> Any:
    if data.startswith(b"\xef\xbb\xbf"):
        raise jsonstrict.JSONRejected("a byte-order mark is not allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise jsonstrict.JSONRejected("body is not valid UTF-8") from None
    try:
        if text[:1] in _WHITESPACE:  # "" included: decode() reports the empty document
            return _DECODER.decode(text)
        value, end = _DECODER.raw_decode(text)
        if end != len(text) and text[end:].strip(_WHITESPACE):
            return _DECODER.decode(text)  # reports the trailing data
        return value
    except json.JSONDecodeError as exc:
        raise jsonstrict.JSONRejected(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_json_object(data: bytes, *, max_depth: int, what: str) -> dict[str, Any]:
    """Parse ``data`` as one JSON object under the rules above.

    ``what`` names the object in the error ("JOSE header", "JWT claims set");
    the reason never contains the data.
    """
    try:
        if data.count(b"{") + data.count(b"[") <= max_depth:
            value = _parse_shallow(data)
        else:
            value = jsonstrict.parse(data, max_depth)
    except jsonstrict.JSONRejected as exc:
        raise JOSEError(f"{what}: {exc.reason}") from None
    except (ValueError, RecursionError):  # e.g. an integer with more digits than Python allows
        raise JOSEError(f"{what}: malformed JSON") from None
    if not isinstance(value, dict):
        raise JOSEError(f"{what} is not a JSON object")
    if b"\\u" in data and _has_lone_surrogate(value):
        raise JOSEError(f"{what}: string contains a lone surrogate")
    return value
