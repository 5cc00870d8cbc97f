"""``matches``: RE2 meaning on Python's ``re``; what RE2 lacks is refused when the rule compiles."""

from __future__ import annotations

import time

import pytest

from apishield.cel.limits import MAX_MATCH_LENGTH
from apishield.cel.regex import RegexError, compile_re2


def search(pattern: str, text: str) -> bool:
    return compile_re2(pattern).search(text) is not None


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("b", "abc", True),  # a match anywhere
        ("^b", "abc", False),
        ("abc$", "abc\n", False),  # RE2's $ is the very end, not before a final newline
        ("(?m)abc$", "abc\nx", True),
        ("(?m:c$)\n", "abc\n", True),
        ("abc\\z", "abc", True),
        ("\\Aab", "abc", True),
        ("\\d", "١", False),  # ASCII classes, as in RE2
        ("\\d", "7", True),
        ("\\w+", "é", False),
        ("\\s", "\u00a0", False),
        ("\\S", "x", True),
        ("\\bcat\\b", "a cat!", True),
        ("\\bcat\\b", "concat", False),
        ("\\Bcat", "concat", True),
        ("[[:alpha:]]+[[:digit:]]", "ab1", True),
        ("^[[:xdigit:]]+$", "0aF", True),
        ("[\\d_]+", "4_2", True),
        ("[^\\s]", " ", False),
        ("\\Qa.b*\\E", "a.b*", True),
        ("\\Qa.b\\E", "axb", False),
        ("(?P<word>x)(?<other>y)", "xy", True),
        ("\\x{41}\\x42", "AB", True),
        ("a{,3}", "a{,3}", True),  # not a repetition in RE2: literal text
        ("a{2}", "aa", True),
        ("(?i)ABC", "abc", True),
        ("(?i:a)B", "Ab", False),
        ("(?s).", "\n", True),
        (".", "\n", False),
        ("[a&&b~~|]", "&", True),
        ("[]a]", "]", True),
        ("(a|b)c", "bc", True),
        ("(?:ab)+", "abab", True),
        ("a+?b", "aab", True),
        ("[a-c]*d", "abcd", True),
    ],
)
def test_re2_meaning(pattern: str, text: str, expected: bool) -> None:
    assert search(pattern, text) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "backreferences"),
        ("(?P<n>a)(?P=n)", "backreferences"),
        ("a(?=b)", "look-around"),
        ("a(?!b)", "look-around"),
        ("(?<=a)b", "look-around"),
        ("(?<!a)b", "look-around"),
        ("(?>a)", "unsupported group"),
        ("(?(1)a|b)", "unsupported group"),
        ("(?#note)", "unsupported group"),
        ("a*+", "possessive"),
        ("a++", "possessive"),
        ("a**", "possessive"),
        ("\\pL", "Unicode class"),
        ("\\p{Greek}", "Unicode class"),
        ("\\Z", "escape \\Z"),
        ("\\C", "escape \\C"),
        ("\\G", "escape \\G"),
        ("\\N{DASH}", "escape \\N"),
        ("\\0", "octal"),
        ("(?U)a*", "flag 'U'"),
        ("(?x) a", "flag 'x'"),
        ("a(?i)b", "inline flags must start"),
        ("(?)a", "empty flag group"),
        ("[[:^alpha:]]", "negated POSIX"),
        ("[[:nope:]]", "unknown POSIX"),
        ("[\\D]", "inside brackets"),
        ("a{1001}", "above 1000"),
        ("a{3,2}", "bad repetition range"),
        ("*a", "repetition of nothing"),
        ("(*)", "repetition of nothing"),
        ("(a", "missing ')'"),
        ("a)", "unmatched ')'"),
        ("[a", "missing ']'"),
        ("a\\", "trailing backslash"),
        ("(a+)+b", "backtrack exponentially"),
        ("(\\w+\\s?)*$", "backtrack exponentially"),
        ("(a|aa)*b", "backtrack exponentially"),
        ("((a*))+", "backtrack exponentially"),
        ("(x+x+)+y", "backtrack exponentially"),
    ],
)
def test_refused(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_re2(pattern)
    assert reason in str(info.value)


def test_refusal_says_where() -> None:
    with pytest.raises(RegexError, match="at offset 3"):
        compile_re2("(a)\\1")


def test_accepted_patterns_fail_fast_enough_on_the_longest_string_matched() -> None:
    text = "ab" * (MAX_MATCH_LENGTH // 2)  # what matches() accepts at most
    for pattern in ("(ab)*c", "[a-z]+@", "(a|b)c*d", "[ab]*c", "^[a-z]+(-[a-z]+)?$"):
        regex = compile_re2(pattern)
        start = time.perf_counter()
        regex.search(text)
        assert time.perf_counter() - start < 0.25, pattern


def test_compiled_patterns_are_cached() -> None:
    assert compile_re2("x+y") is compile_re2("x+y")
