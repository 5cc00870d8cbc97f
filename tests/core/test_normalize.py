"""Tests for :mod:`apishield.core.normalize` (one reading of the request target)."""

from __future__ import annotations

import pytest

from apishield.core.normalize import encode_query, encode_segment, parse_query, split_path
from apishield.problem import BadRequest


def refused_path(raw: bytes) -> str:
    with pytest.raises(BadRequest) as info:
        split_path(raw)
    assert info.value.http_status == 400
    assert info.value.detail is not None
    return info.value.detail


def refused_query(raw: bytes) -> str:
    with pytest.raises(BadRequest) as info:
        parse_query(raw)
    assert info.value.detail is not None
    return info.value.detail


# -- split_path: accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        (b"/", [""]),
        (b"/customers", ["customers"]),
        (b"/customers/42", ["customers", "42"]),
        (b"/customers/42/", ["customers", "42", ""]),
        (b"/a//b", ["a", "", "b"]),
        (b"/caf%C3%A9", ["caf\u00e9"]),
        (b"/caf%c3%a9", ["caf\u00e9"]),
        (b"/a%20b", ["a b"]),
        (b"/a%25b", ["a%b"]),
        (b"/a%3Bb", ["a;b"]),
        (b"/a%3Fb%23c", ["a?b#c"]),
        (b"/%41%42c", ["ABc"]),
        (b"/...", ["..."]),
        (b"/.well-known/x", [".well-known", "x"]),
        (b"/a.b/..c", ["a.b", "..c"]),
        (b"/a+b", ["a+b"]),
        (b"/~user/!$&'()*,=:@", ["~user", "!$&'()*,=:@"]),
    ],
)
def test_split_path_decodes_segments(raw: bytes, segments: list[str]) -> None:
    assert split_path(raw) == segments


def test_trailing_slash_gives_an_empty_last_segment() -> None:
    assert split_path(b"/items/") == ["items", ""]
    assert split_path(b"/items") == ["items"]


def test_split_happens_before_decoding() -> None:
    # %3F stays part of the segment; a decoded '?' never starts a query
    assert split_path(b"/files/a%3Fb") == ["files", "a?b"]


# -- split_path: refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"/a%2Fb", b"/a%2fb", b"/a%5Cb", b"/a%5cb", b"/a%00b", b"/%2F", b"/admin%2f..%2fusers"]
)
def test_encoded_slash_backslash_and_nul_are_refused(raw: bytes) -> None:
    assert refused_path(raw) == "Encoded '/', '\\' or NUL characters are not allowed in the path."


@pytest.mark.parametrize("raw", [b"/a;b", b"/admin;x/users", b"/a\\b", b"/a/b;", b"/a#b", b"/a b"])
def test_semicolon_backslash_fragment_and_space_are_refused(raw: bytes) -> None:
    assert "not allowed" in refused_path(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"/a/../b",
        b"/a/./b",
        b"/..",
        b"/.",
        b"/a/..",
        b"/a/.",
        b"/a/%2e%2e/b",
        b"/a/%2E%2E/b",
        b"/a/%2e./b",
        b"/a/.%2E/b",
        b"/a/%2e/b",
        b"/a/%2E",
    ],
)
def test_dot_segments_are_refused_also_when_encoded(raw: bytes) -> None:
    assert refused_path(raw) == "Dot segments are not allowed in the path."


@pytest.mark.parametrize("raw", [b"/a\x00b", b"/a\x01", b"/a\tb", b"/a\nb", b"/a\rb", b"/a\x7fb", b"/a\x1f"])
def test_raw_control_characters_are_refused(raw: bytes) -> None:
    assert "not allowed" in refused_path(raw)


@pytest.mark.parametrize(
    "raw", [b"/a%01b", b"/a%0A", b"/a%0d%0aX-Injected:%201", b"/a%09", b"/a%7F", b"/a%1f"]
)
def test_encoded_control_characters_are_refused(raw: bytes) -> None:
    assert refused_path(raw) == "Control characters are not allowed in the request target."


@pytest.mark.parametrize("raw", [b"/a%zz", b"/a%4", b"/a%", b"/%%41", b"/a%g1", b"/a%-1", b"/%4/b"])
def test_invalid_escapes_are_refused(raw: bytes) -> None:
    assert refused_path(raw) == "Invalid percent-encoding in the request target."


@pytest.mark.parametrize("raw", [b"/a%ff", b"/a%c3%28", b"/a%c3", b"/%ed%a0%80", b"/%c0%af"])
def test_non_utf8_after_decoding_is_refused(raw: bytes) -> None:
    assert refused_path(raw) == "The request target is not valid UTF-8 after decoding."


@pytest.mark.parametrize("raw", [b"/caf\xc3\xa9", b"/\xff"])
def test_raw_non_ascii_bytes_are_refused(raw: bytes) -> None:
    assert "not allowed" in refused_path(raw)


@pytest.mark.parametrize("raw", [b"", b"a/b", b"customers", b"*", b"http://host/a", b"%2Fa"])
def test_path_must_start_with_a_slash(raw: bytes) -> None:
    assert refused_path(raw) == "The request target must be an absolute path."


# -- parse_query ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pairs"),
    [
        (b"", []),
        (b"a=1", [("a", "1")]),
        (b"a=1&b=2&a=3", [("a", "1"), ("b", "2"), ("a", "3")]),
        (b"q=a+b", [("q", "a b")]),
        (b"a+b=c+d", [("a b", "c d")]),
        (b"q=a%2Bb", [("q", "a+b")]),
        (b"q=a%20b", [("q", "a b")]),
        (b"a=1&&b=2", [("a", "1"), ("b", "2")]),
        (b"&a=1&", [("a", "1")]),
        (b"&&", []),
        (b"flag", [("flag", "")]),
        (b"flag&x=1", [("flag", ""), ("x", "1")]),
        (b"empty=", [("empty", "")]),
        (b"=v", [("", "v")]),
        (b"a=b=c", [("a", "b=c")]),
        (b"filter%5Bcolor%5D=red", [("filter[color]", "red")]),
        (b"filter[color]=red", [("filter[color]", "red")]),
        (b"path=/a/b?c", [("path", "/a/b?c")]),
        (b"n=caf%C3%A9", [("n", "caf\u00e9")]),
        (b"a=1;b=2", [("a", "1;b=2")]),
        (b"a=x%26y%3Dz", [("a", "x&y=z")]),
    ],
)
def test_parse_query(raw: bytes, pairs: list[tuple[str, str]]) -> None:
    assert parse_query(raw) == pairs


@pytest.mark.parametrize("raw", [b"a=%zz", b"a=%4", b"a=%", b"%zz=1", b"a=1&b=%g0"])
def test_query_invalid_escapes_are_refused(raw: bytes) -> None:
    assert refused_query(raw) == "Invalid percent-encoding in the request target."


@pytest.mark.parametrize("raw", [b"a=1#frag", b"#", b"a=%231#x"])
def test_query_fragment_is_refused(raw: bytes) -> None:
    assert refused_query(raw) == "The query string contains characters that are not allowed."


@pytest.mark.parametrize("raw", [b"a= b", b"a=\x00", b"a=\x7f", b"a=\xc3\xa9", b"a=1\r\nb=2"])
def test_query_raw_spaces_controls_and_non_ascii_are_refused(raw: bytes) -> None:
    assert refused_query(raw) == "The query string contains characters that are not allowed."


@pytest.mark.parametrize("raw", [b"a=%00", b"a=%0a", b"a%0d=1"])
def test_query_encoded_controls_are_refused(raw: bytes) -> None:
    assert refused_query(raw) == "Control characters are not allowed in the request target."


@pytest.mark.parametrize("raw", [b"a=%ff", b"a=%c3"])
def test_query_non_utf8_is_refused(raw: bytes) -> None:
    assert refused_query(raw) == "The request target is not valid UTF-8 after decoding."


# -- encoding and round trips ---------------------------------------------------------------------

AWKWARD = [
    "&",
    "=",
    "+",
    ";",
    "%",
    "a b",
    "?",
    "#",
    "caf\u00e9",
    "\u6771\u4eac",
    "\U0001f600",
    "~*'()",
    "%2F",
    "a+b=c&d",
]


@pytest.mark.parametrize("value", AWKWARD)
def test_segment_round_trip(value: str) -> None:
    encoded = encode_segment(value)
    assert encoded.isascii()
    assert "/" not in encoded
    assert split_path(("/x/" + encoded).encode("ascii")) == ["x", value]


@pytest.mark.parametrize("value", [*AWKWARD, "/", "a/b", "", "\\"])
def test_query_round_trip(value: str) -> None:
    encoded = encode_query([(value, value), ("k", value)])
    assert encoded.isascii()
    assert parse_query(encoded.encode("ascii")) == [(value, value), ("k", value)]


def test_encode_segment_escapes_separators() -> None:
    assert encode_segment(";") == "%3B"
    assert encode_segment("%") == "%25"
    assert encode_segment("a b") == "a%20b"
    assert encode_segment("?#") == "%3F%23"
    assert encode_segment("caf\u00e9") == "caf%C3%A9"
    assert encode_segment("sub-delims!$&'()*+,=:@") == "sub-delims!$&'()*+,=:@"


def test_encoded_slash_in_a_segment_stays_unforwardable() -> None:
    # a decoded segment can never hold '/' or '\\' (split_path refuses their escapes);
    # encoding such a value produces exactly the escapes split_path refuses
    for value in ("/", "a/b", "\\"):
        assert "Encoded" in refused_path(("/" + encode_segment(value)).encode("ascii"))


def test_encode_query_is_canonical() -> None:
    assert encode_query([("q", "a b"), ("x", "1&y=2"), ("p", "a+b")]) == "q=a%20b&x=1%26y%3D2&p=a%2Bb"
    assert encode_query([("flag", "")]) == "flag="
    assert encode_query([]) == ""


def test_canonical_query_survives_a_second_parse() -> None:
    pairs = parse_query(b"a=1;b=2&c=%2B+x&d")
    again = parse_query(encode_query(pairs).encode("ascii"))
    assert again == pairs == [("a", "1;b=2"), ("c", "+ x"), ("d", "")]
