"""The values of CEL literal tokens: numbers in range, strings and bytes with their escapes.

The lexer (celpy's grammar) is deliberately lenient inside quotes; the
escapes are checked here, per the spec: ``\\\\ \\? \\" \\' \\```, ``\\a \\b \\f \\n
\\r \\t \\v``, ``\\xHH`` (also ``\\X``), three octal digits ``\\[0-3][0-7][0-7]``,
and in strings only ``\\uHHHH`` and ``\\UHHHHHHHH`` (a code point, never a
surrogate). In a string, ``\\x`` and octal escapes name code points; in bytes
they name octets, and other characters stand for their UTF-8 encoding. Raw
literals (``r'...'``) keep backslashes as they are. A single-quoted literal
cannot span lines; a triple-quoted one can.

Each decoder raises :class:`LiteralError` with the offset in the token where
the problem is, which the parser turns into a line and column.
"""

from __future__ import annotations

import re

from apishield.cel.values import INT_MAX, INT_MIN, UINT_MAX, Uint

__all__ = ["LiteralError", "bytes_literal", "float_literal", "int_literal", "string_literal", "uint_literal"]

_SIMPLE_ESCAPES = {
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_DOT_WITHOUT_DIGIT = re.compile(r"\.(?![0-9])")


class LiteralError(ValueError):
    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def int_literal(text: str) -> int:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10)
    if negative:
        value = -value
    if not INT_MIN <= value <= INT_MAX:
        raise LiteralError("integer literal out of the 64-bit range")
    return value


def uint_literal(text: str) -> Uint:
    digits = text[:-1]
    value = int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10)
    if value > UINT_MAX:
        raise LiteralError("unsigned integer literal out of the 64-bit range")
    return Uint(value)


def float_literal(text: str) -> float:
    dot = _DOT_WITHOUT_DIGIT.search(text)
    if dot is not None:
        raise LiteralError("a digit must follow the decimal point", dot.start() + 1)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise LiteralError("floating-point literal out of range")
    return value


def _split(text: str, prefix_letters: str) -> tuple[bool, str, int, bool]:
    """(raw, body, offset of body, triple-quoted) of a quoted token after its prefix letters."""
    i = 0
    raw = False
    while i < len(text) and text[i] in prefix_letters:
        raw = raw or text[i] in "rR"
        i += 1
    quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else text[i]
    body = text[i + len(quote) : len(text) - len(quote)]
    return raw, body, i + len(quote), len(quote) == 3


def _decode(body: str, base: int, *, raw: bool, triple: bool, as_bytes: bool) -> list[int] | str:
    if not triple:
        for j, ch in enumerate(body):
            if ch in "\r\n":
                raise LiteralError("a quoted literal cannot span lines; use triple quotes", base + j)
    if raw:
        return [*body.encode()] if as_bytes else body
    units: list[int] = []  # code points, or octets for bytes
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            units.extend(ch.encode() if as_bytes else (ord(ch),))
            i += 1
            continue
        start = i
        kind = body[i + 1] if i + 1 < n else ""
        if kind in _SIMPLE_ESCAPES:
            units.append(ord(_SIMPLE_ESCAPES[kind]))
            i += 2
        elif kind in "xX" or (kind in "uU" and not as_bytes):
            width = {"x": 2, "X": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not set(digits) <= _HEX:
                raise LiteralError(f"\\{kind} takes {width} hexadecimal digits", base + start)
            code = int(digits, 16)
            if kind in "uU" and (0xD800 <= code <= 0xDFFF or code > 0x10FFFF):
                raise LiteralError(f"\\{kind}{digits} is not a Unicode scalar value", base + start)
            units.append(code)
            i += 2 + width
        elif kind in "0123":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not set(digits) <= _OCTAL:
                raise LiteralError("an octal escape takes three digits, \\000 to \\377", base + start)
            units.append(int(digits, 8))
            i += 4
        elif kind.isdigit():
            raise LiteralError("an octal escape takes three digits, \\000 to \\377", base + start)
        elif kind in "uU":
            raise LiteralError(f"\\{kind} escapes are not allowed in bytes literals", base + start)
        else:
            shown = f"\\{kind}" if kind else "\\"
            raise LiteralError(f"invalid escape sequence {shown!r}", base + start)
    return units if as_bytes else "".join(map(chr, units))


def string_literal(text: str) -> str:
    raw, body, base, triple = _split(text, "rR")
    decoded = _decode(body, base, raw=raw, triple=triple, as_bytes=False)
    assert isinstance(decoded, str)
    return decoded


def bytes_literal(text: str) -> bytes:
    raw, body, base, triple = _split(text, "bBrR")
    decoded = _decode(body, base, raw=raw, triple=triple, as_bytes=True)
    assert isinstance(decoded, list)
    return bytes(decoded)
