"""CEL's ``matches``: RE2 syntax and meaning, run on Python's ``re``.

CEL patterns are RE2 patterns, and a match is found anywhere in the string
(``re.search``). Python's engine reads most RE2 syntax the same way; this
module translates where the meaning differs and refuses what RE2 lacks, so a
pattern that works here works in every CEL implementation:

* refused (not RE2): backreferences (``\\1``, ``(?P=n)``), look-around
  (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), atomic groups and possessive
  quantifiers, conditionals, comments, ``\\Z``, ``\\G`` and other escapes RE2
  does not know;
* refused (RE2, but no Python equivalent): Unicode classes ``\\pL``/``\\p{Greek}``,
  ``\\C``, the ungreedy flag ``U``, negated POSIX classes, ``\\D \\W \\S`` inside
  brackets, and inline flags anywhere but the start unless scoped ``(?i:...)``;
* translated: ``\\d \\w \\s \\b`` and their negations are ASCII in RE2 (Python's
  are Unicode) and become explicit ASCII sets; ``$`` without the ``m`` flag
  matches only at the very end (Python's also before a final newline) and
  becomes ``\\Z``; ``\\z`` becomes ``\\Z``; ``[[:alpha:]]`` and the other POSIX
  classes become ranges; ``\\Q...\\E`` becomes escaped text; ``(?<name>``
  becomes ``(?P<name>``; ``\\x{...}`` becomes a code point; ``a{,3}`` is
  literal text in RE2 and is escaped; repetition counts above 1000 are
  refused as in RE2.

RE2 runs in linear time; Python's ``re`` backtracks. An unbounded
repetition of a group that itself holds an unbounded repetition or
alternatives (``(a+)+``, ``(\\w+\\s?)*``, ``(a|ab)*``) can take exponential
time on hostile input, so those are refused too (``(a|b)*`` is ``[ab]*``).
Adjacent repetitions over overlapping characters (``a*a*a*b``) still cost
polynomial time on a long enough failing input, and an unanchored search
is quadratic even for ``[a-z]+@`` (each start position is tried), so
``matches`` also bounds the length of the string it searches
(:data:`~.limits.MAX_MATCH_LENGTH`). Patterns are policy, written by the
operator, and should anchor and stay simple.

Case-insensitive matching folds case with Python's Unicode rules, which
agree with RE2's except for a few special characters.
"""

from __future__ import annotations

import functools
import re
import warnings

__all__ = ["RegexError", "compile_re2"]

_SHORTHAND = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
    "s": "[\\t\\n\\f\\r ]",
    "S": "[^\\t\\n\\f\\r ]",
}
_IN_CLASS = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_W = "[0-9A-Za-z_]"
_BOUNDARY = {
    "b": f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))",
    "B": f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))",
}
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_CONTROL_ESCAPES = frozenset("afnrtv")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])")
_MAX_REPEAT = 1000


class RegexError(ValueError):
    """The pattern is not RE2, or is RE2 this implementation refuses (the message says which)."""


class _Group:
    __slots__ = ("ambiguous", "multiline")

    def __init__(self, multiline: bool) -> None:
        self.multiline = multiline
        self.ambiguous = False  # contains an unbounded repetition or an alternation


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.groups = [_Group(multiline=False)]
        self.last_group: _Group | None = None  # the group the last atom was, if it was one
        self.can_repeat = False

    def fail(self, message: str) -> RegexError:
        return RegexError(f"{message} (at offset {self.i} of the pattern)")

    def atom(self, text: str, group: _Group | None = None) -> None:
        self.out.append(text)
        self.last_group = group
        self.can_repeat = True

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            ch = p[self.i]
            if ch == "\\":
                self.escape()
            elif ch == "[":
                self.bracket()
            elif ch == "(":
                self.open_group()
            elif ch == ")":
                if len(self.groups) == 1:
                    raise self.fail("unmatched ')'")
                closed = self.groups.pop()
                self.groups[-1].ambiguous |= closed.ambiguous
                self.i += 1
                self.atom(")", closed)
            elif ch in "*+?{":
                self.repetition()
            elif ch == "$":
                self.i += 1
                self.out.append("$" if self.groups[-1].multiline else "\\Z")
                self.can_repeat = False
            elif ch in "^|":
                self.i += 1
                self.out.append(ch)
                self.can_repeat = False
                if ch == "|":
                    self.groups[-1].ambiguous = True
            else:
                self.i += 1
                self.atom(ch)
        if len(self.groups) != 1:
            raise self.fail("missing ')'")
        return "".join(self.out)

    # -- escapes ------------------------------------------------------------------------------
    def _hex_escape(self) -> str:
        """At ``\\x``: the escape as Python reads it."""
        p = self.p
        if p.startswith("{", self.i + 2):
            end = p.find("}", self.i + 3)
            digits = p[self.i + 3 : end] if end > 0 else ""
            if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail("bad \\x{...} escape")
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self.fail("\\x{...} beyond Unicode")
            self.i = end + 1
            return f"\\U{code:08x}"
        digits = p[self.i + 2 : self.i + 4]
        if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail("\\x takes two hexadecimal digits")
        self.i += 4
        return f"\\x{digits}"

    def _refuse_escape(self, c: str) -> RegexError:
        if c.isdigit():
            return self.fail("backreferences and octal escapes are not supported by RE2")
        if c in "pP":
            return self.fail("Unicode class escapes (\\p, \\P) are not supported")
        return self.fail(f"escape \\{c} is not supported")

    def escape(self) -> None:
        p = self.p
        if self.i + 1 >= len(p):
            raise self.fail("trailing backslash")
        c = p[self.i + 1]
        if c in _SHORTHAND:
            self.i += 2
            self.atom(_SHORTHAND[c])
        elif c in _BOUNDARY:
            self.i += 2
            self.out.append(_BOUNDARY[c])
            self.can_repeat = False
        elif c in "Az":
            self.i += 2
            self.out.append("\\A" if c == "A" else "\\Z")
            self.can_repeat = False
        elif c == "Q":
            end = p.find("\\E", self.i + 2)
            text = p[self.i + 2 :] if end < 0 else p[self.i + 2 : end]
            self.i = len(p) if end < 0 else end + 2
            if text:
                self.atom(re.escape(text))
        elif c == "E":  # a stray \E is ignored by RE2
            self.i += 2
        elif c == "x":
            self.atom(self._hex_escape())
        elif c in _CONTROL_ESCAPES or not c.isalnum():
            self.i += 2
            self.atom("\\" + c)
        else:
            raise self._refuse_escape(c)

    # -- bracket expressions ------------------------------------------------------------------
    def bracket(self) -> None:
        p = self.p
        start = self.i
        self.i += 1
        parts = ["["]
        if p.startswith("^", self.i):
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(p):
                self.i = start
                raise self.fail("missing ']'")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and p.startswith("[:", self.i):
                end = p.find(":]", self.i + 2)
                name = p[self.i + 2 : end] if end > 0 else ""
                if name.startswith("^"):
                    raise self.fail("negated POSIX classes are not supported")
                if name not in _POSIX:
                    raise self.fail(f"unknown POSIX class [:{name}:]")
                parts.append(_POSIX[name])
                self.i = end + 2
            elif c == "\\":
                if self.i + 1 >= len(p):
                    raise self.fail("trailing backslash")
                e = p[self.i + 1]
                if e in _IN_CLASS:
                    parts.append(_IN_CLASS[e])
                    self.i += 2
                elif e in "DWS":
                    raise self.fail(f"\\{e} inside brackets is not supported")
                elif e == "x":
                    parts.append(self._hex_escape())
                elif e in _CONTROL_ESCAPES or not e.isalnum():
                    parts.append("\\" + e)
                    self.i += 2
                else:
                    raise self._refuse_escape(e)
            else:
                parts.append("\\" + c if c in "[&~|" else c)
                self.i += 1
        parts.append("]")
        self.atom("".join(parts))

    # -- groups -------------------------------------------------------------------------------
    def open_group(self) -> None:
        p = self.p
        outer = self.groups[-1]
        if not p.startswith("(?", self.i):
            self.i += 1
            self.out.append("(")
            self.groups.append(_Group(outer.multiline))
            self.can_repeat = False
            return
        rest = p[self.i + 2 : self.i + 4]
        if rest.startswith(("P<", "<")) and not rest.startswith(("<=", "<!")):
            self.i += 3 if rest.startswith("P") else 2
            end = p.find(">", self.i)
            name = p[self.i + 1 : end] if end > 0 else ""
            if not name.isidentifier():
                raise self.fail("bad capture group name")
            self.i = end + 1
            self.out.append(f"(?P<{name}>")
            self.groups.append(_Group(outer.multiline))
            self.can_repeat = False
            return
        if rest.startswith(("=", "!", "<=", "<!")):
            raise self.fail("look-around assertions are not supported by RE2")
        if rest.startswith(("P=", "P>")):
            raise self.fail("backreferences are not supported by RE2")
        flags = _FLAGS.match(p, self.i)
        if flags is None:
            raise self.fail(f"unsupported group syntax '(?{rest[:1]}'")
        on, off, kind = flags.group(1), flags.group(2) or "", flags.group(3)
        if kind == ")" and not on and not off:
            raise self.fail("empty flag group '(?)'")
        for letter in on + off:
            if letter not in "ims":
                raise self.fail(f"flag {letter!r} is not supported")
        multiline = ("m" in on or outer.multiline) and "m" not in off
        self.i = flags.end()
        spelled = on + (f"-{off}" if off else "")
        if kind == ":":
            self.out.append(f"(?{spelled}:")
            self.groups.append(_Group(multiline))
            self.can_repeat = False
        elif self.out or off or len(self.groups) > 1:
            raise self.fail("inline flags must start the pattern, or be scoped as (?i:...)")
        else:
            self.out.append(f"(?{on})")
            outer.multiline = multiline

    # -- repetition ---------------------------------------------------------------------------
    def repetition(self) -> None:
        p = self.p
        c = p[self.i]
        if c == "{":
            m = _REPEAT.match(p, self.i)
            if m is None:  # not a repetition in RE2: literal text
                self.i += 1
                self.atom("\\{")
                return
            low = int(m.group(1))
            high = m.group(3)
            if low > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                raise self.fail(f"repetition count above {_MAX_REPEAT}")
            if high and int(high) < low:
                raise self.fail("bad repetition range")
            text = m.group(0)
            unbounded = m.group(2) is not None and not high
            self.i = m.end()
        else:
            text = c
            unbounded = c != "?"
            self.i += 1
        if not self.can_repeat:
            raise self.fail("repetition of nothing")
        if p.startswith("?", self.i):
            text += "?"
            self.i += 1
        elif p.startswith(("+", "*"), self.i) or (p.startswith("{", self.i) and _REPEAT.match(p, self.i)):
            raise self.fail("possessive or repeated quantifiers are not supported by RE2")
        if unbounded:
            if self.last_group is not None and self.last_group.ambiguous:
                raise self.fail(
                    "an unbounded repetition of a group holding a repetition or alternatives,"
                    " such as (a+)+ or (a|ab)*, can backtrack exponentially; use a character class"
                    " or rewrite the pattern"
                )
            self.groups[-1].ambiguous = True
        self.out.append(text)
        self.can_repeat = False


@functools.lru_cache(maxsize=256)
def compile_re2(pattern: str) -> re.Pattern[str]:
    """The compiled equivalent of an RE2 pattern; :class:`RegexError` if refused or invalid."""
    translated = _Translator(pattern).run()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(translated)
    except (re.error, FutureWarning, DeprecationWarning) as exc:
        raise RegexError(f"invalid regular expression: {exc}") from None
