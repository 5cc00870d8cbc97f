"""Strict base64url as JWS uses it (RFC 7515 §2, RFC 4648 §5).

RFC 7515 §2 defines ``BASE64URL`` as the URL- and filename-safe alphabet with
"all trailing '=' characters omitted" and "without the inclusion of any line
breaks, whitespace, or other additional characters". Decoders in the wild
disagree about everything else (padding, ``+``/``/``, whitespace, stray bytes,
non-zero unused bits), and a token that two parties decode differently is a
token whose signature covers something other than what one of them reads.
So this decoder accepts exactly one encoding per byte string:

* only ``A-Z a-z 0-9 - _``;
* no padding; a length of 1 modulo 4 cannot be produced by any input;
* the unused low bits of the last character must be zero (RFC 4648 §3.5:
  "canonical encoding"), so ``AB`` and ``AA`` cannot both decode to ``0x00``.
"""

from __future__ import annotations

import base64
import binascii

from apishield.jose.errors import JOSEError

__all__ = ["b64url_decode", "b64url_decode_bytes", "b64url_encode"]

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# value of each alphabet character (other bytes never reach the lookup)
_VALUE = bytes(_ALPHABET.index(b) if b in _ALPHABET else 0 for b in range(256))
_PAD = (b"", b"", b"==", b"=")
# mask of the unused low bits of the last character, by length modulo 4
_UNUSED_BITS = (0, 0, 0x0F, 0x03)


def b64url_decode_bytes(data: bytes) -> bytes:
    """Decode ASCII bytes in strict base64url; raises :class:`JOSEError`."""
    if data.translate(None, _ALPHABET):
        raise JOSEError("invalid base64url: character outside the base64url alphabet")
    rest = len(data) % 4
    if rest == 1:
        raise JOSEError("invalid base64url: impossible length")
    if rest and _VALUE[data[-1]] & _UNUSED_BITS[rest]:
        raise JOSEError("invalid base64url: non-canonical trailing bits")
    try:
        return binascii.a2b_base64(data.translate(_TO_STANDARD) + _PAD[rest], strict_mode=True)
    except binascii.Error:  # pragma: no cover - excluded by the checks above
        raise JOSEError("invalid base64url") from None


def b64url_decode(data: str) -> bytes:
    """Decode a base64url string (RFC 7515 §2) strictly; raises :class:`JOSEError`."""
    if not data.isascii():
        raise JOSEError("invalid base64url: character outside the base64url alphabet")
    return b64url_decode_bytes(data.encode("ascii"))


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
