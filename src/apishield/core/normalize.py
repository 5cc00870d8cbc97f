"""One reading of the request target, shared by routing, validation and forwarding.

Path confusion is the root of many gateway bypasses: the gateway routes
``/admin;x/..%2fusers`` one way and the upstream another. This module decides
what a request path *is*, once, and refuses what has no single reading
(RFC 3986 §3.3, §6.2.2; RFC 9110 §4.2.3):

* the raw path is split on ``/`` before percent-decoding, and an encoded
  ``/`` (``%2F``), ``\\`` (``%5C``) or NUL inside a segment is refused;
* dot segments (``.``, ``..``, also when percent-encoded) are refused rather
  than resolved, as are ``;`` (matrix parameters that Java servers strip),
  backslashes, control characters, invalid escapes and non-UTF-8 bytes;
* after validation the gateway forwards a target rebuilt from the decoded,
  validated values (:func:`encode_segment`), never the bytes it received.

Query strings are parsed as ``application/x-www-form-urlencoded`` pairs
(``+`` is a space) with the same refusal of bad escapes, and re-encoded
canonically when forwarded.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from apishield.problem import BadRequest

__all__ = ["encode_query", "encode_segment", "parse_query", "split_path"]

_BAD_RAW = re.compile(rb"[\x00-\x20\x7f-\xff\\;#]")
_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_ENCODED = re.compile(rb"%(?:2[fF]|5[cC]|00)")
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_SEGMENT_SAFE = "-._~!$&'()*+,=:@"
_QUERY_SAFE = "-._~!$'()*,:@/?"


def _unquote(raw: bytes, plus_is_space: bool) -> str:
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        if _ESCAPE.search(raw):
            raise BadRequest(detail="Invalid percent-encoding in the request target.")
        parts = raw.split(b"%")
        out = bytearray(parts[0])
        for part in parts[1:]:
            out.append(int(part[:2], 16))
            out += part[2:]
        raw = bytes(out)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(detail="The request target is not valid UTF-8 after decoding.") from None
    if _CTL.search(text):
        raise BadRequest(detail="Control characters are not allowed in the request target.")
    return text


def split_path(raw_path: bytes) -> list[str]:
    """Split and decode a raw path; raises :class:`BadRequest` if it has no single reading."""
    if not raw_path.startswith(b"/"):
        raise BadRequest(detail="The request target must be an absolute path.")
    if _BAD_RAW.search(raw_path):
        raise BadRequest(detail="The path contains characters that are not allowed (';', '\\', controls).")
    if _FORBIDDEN_ENCODED.search(raw_path):
        raise BadRequest(detail="Encoded '/', '\\' or NUL characters are not allowed in the path.")
    segments = [_unquote(s, False) for s in raw_path[1:].split(b"/")]
    for s in segments:
        if s in (".", ".."):
            raise BadRequest(detail="Dot segments are not allowed in the path.")
    return segments


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,=:@]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9\-._~!$'()*,:@/?]*")


def encode_segment(value: str) -> str:
    if _PLAIN_SEGMENT.fullmatch(value):
        return value  # nothing to escape: the common case costs one match
    return quote(value, safe=_SEGMENT_SAFE)


def _encode_query_part(value: str) -> str:
    if _PLAIN_QUERY.fullmatch(value):
        return value
    return quote(value, safe=_QUERY_SAFE)


def parse_query(query_string: bytes) -> list[tuple[str, str]]:
    """Parse a query string into decoded (name, value) pairs, in order."""
    if not query_string:
        return []
    if _BAD_RAW.search(query_string.replace(b";", b"").replace(b"\\", b"")) or b"#" in query_string:
        raise BadRequest(detail="The query string contains characters that are not allowed.")
    pairs = []
    for piece in query_string.split(b"&"):
        if not piece:
            continue
        name, sep, value = piece.partition(b"=")
        pairs.append((_unquote(name, True), _unquote(value, True) if sep else ""))
    return pairs


def encode_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{_encode_query_part(k)}={_encode_query_part(v)}" for k, v in pairs)
