"""Strict base64url (RFC 7515 §2): one encoding per byte string, nothing else accepted."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os

import pytest

from apishield.jose import JOSEError, b64url_decode, b64url_encode
from apishield.jose.b64 import b64url_decode_bytes

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("length", range(0, 70))
def test_round_trip(length: int) -> None:
    data = os.urandom(length)
    encoded = b64url_encode(data)
    assert "=" not in encoded
    assert b64url_decode(encoded) == data
    assert b64url_decode_bytes(encoded.encode()) == data
    assert encoded == base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_empty_is_empty() -> None:
    assert b64url_decode("") == b""


def test_exactly_one_encoding_per_byte_and_byte_pair() -> None:
    """Of all 2-character strings exactly 256 decode (one per byte); of 3 characters, 65536."""
    two = [a + b for a, b in itertools.product(ALPHABET, repeat=2)]
    decoded2 = {}
    for text in two:
        with contextlib.suppress(JOSEError):
            decoded2[text] = b64url_decode(text)
    assert len(decoded2) == 256
    assert {v for v in decoded2.values()} == {bytes([i]) for i in range(256)}
    assert all(b64url_encode(v) == k for k, v in decoded2.items())
    accepted3 = 0
    for a, b, c in itertools.product(ALPHABET, ALPHABET[:8], ALPHABET):  # a slice keeps it fast
        try:
            value = b64url_decode(a + b + c)
        except JOSEError:
            continue
        accepted3 += 1
        assert b64url_encode(value) == a + b + c
    assert accepted3 == 64 * 8 * 16  # the last character's 2 low bits must be zero


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("QQ==", "alphabet"),  # padding
        ("QQ=", "alphabet"),
        ("+/8", "alphabet"),  # the standard alphabet
        ("ab/c", "alphabet"),
        ("ab+c", "alphabet"),
        ("ab c", "alphabet"),  # whitespace anywhere
        (" abc", "alphabet"),
        ("abc\n", "alphabet"),
        ("ab\r\ncd", "alphabet"),
        ("ab\tc", "alphabet"),
        ("ab?c", "alphabet"),
        ("ab#c", "alphabet"),
        ("ab.c", "alphabet"),
        ("ab%3D", "alphabet"),
        ("ab\x00c", "alphabet"),
        ("abcdé", "alphabet"),  # non-ASCII
        ("\ufeffabc", "alphabet"),  # BOM
        ("A", "impossible length"),
        ("AAAAA", "impossible length"),
        ("AB", "non-canonical"),  # 0x00 with a non-zero unused bit
        ("QR", "non-canonical"),
        ("AAB", "non-canonical"),
        ("AAAAAAC", "non-canonical"),
    ],
)
def test_rejected(text: str, reason: str) -> None:
    with pytest.raises(JOSEError, match=reason):
        b64url_decode(text)


def test_rejection_reason_does_not_echo_input() -> None:
    secret = "c2VjcmV0LXRva2Vu?"
    with pytest.raises(JOSEError) as info:
        b64url_decode(secret)
    assert secret not in info.value.reason and "c2Vj" not in str(info.value)


def test_decode_bytes_rejects_the_same_inputs() -> None:
    for text in (b"QQ==", b"+/8", b"AB", b"A", b"a b"):
        with pytest.raises(JOSEError):
            b64url_decode_bytes(text)
