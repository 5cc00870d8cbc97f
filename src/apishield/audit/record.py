"""One encoded event on its way to a sink, and its line in the journal and JSON-lines files.

The writer encodes each event once, with ``orjson`` (``OPT_APPEND_NEWLINE``):
those bytes are what the sink stores, what the hash chain covers (without
the newline) and what the journal holds. Without tamper evidence a line is
the event itself; with it, the event is wrapped with its link::

    {"seq":1712345678901234,"hash":"<64 hex>","event":{...the exact event text...}}

The wrapper's prefix has a fixed form, so the event's bytes are cut out of
the line exactly as they were hashed (no re-encoding).

An event ``orjson`` refuses (a lone surrogate in a string, a value of a type
JSON has none for) is encoded again after replacing those values; an event
never fails its batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from apishield.audit.chain import Link

__all__ = ["Record", "encode", "line_of", "parse_line"]

_WRAPPED = re.compile(rb'\{"seq":(-?[0-9]{1,20}),"hash":"([0-9a-f]{64})","event":')


@dataclass(slots=True)
class Record:
    event: dict[str, Any]
    encoded: bytes  # the JSON text and a newline
    link: Link | None = None

    @property
    def text(self) -> bytes:
        """The JSON text as stored and hashed (without the newline)."""
        return self.encoded[:-1]

    def line(self) -> bytes:
        return line_of(self.encoded, self.link)

    @classmethod
    def from_line(cls, line: bytes) -> Record:
        """A record back from a journal or JSON-lines line (without its newline); raises ValueError."""
        text, link = parse_line(line)
        event = orjson.loads(text)
        if not isinstance(event, dict):
            raise ValueError("the line does not hold a JSON object")
        return cls(event, text + b"\n", link)


def line_of(encoded: bytes, link: Link | None) -> bytes:
    if link is None:
        return encoded
    return b'{"seq":%d,"hash":"%s","event":%s}\n' % (link.seq, link.hash.encode(), encoded[:-1])


def parse_line(line: bytes) -> tuple[bytes, Link | None]:
    """``(event text, link)`` of a line without its newline."""
    match = _WRAPPED.match(line)
    if match is None or not line.endswith(b"}"):
        return line, None
    return line[match.end() : -1], Link(int(match.group(1)), match.group(2).decode())


def encode(event: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``(event, bytes)``: the event (a cleaned copy if it had to be) and its JSON text with a newline."""
    try:
        return event, orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):
        clean = _clean(event)
        return clean, orjson.dumps(clean, option=orjson.OPT_APPEND_NEWLINE)


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 64) else str(value)
    if isinstance(value, dict):
        return {_clean(str(k), depth + 1): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return _clean(repr(value), depth + 1)
