"""The bounds that keep one rule from burning the gateway's CPU or memory.

A rule is written once by the policy's author, but it runs on data the
caller sends; these limits hold whatever that data is:

* the source is at most :data:`MAX_SOURCE_LENGTH` characters, and its syntax
  tree at most :data:`MAX_DEPTH` levels deep (``||`` and ``&&`` chains do not
  count: they are flattened), so compiling and evaluating never exhaust the
  Python stack; the spec asks for at least 32 of each;
* one evaluation visits at most :data:`MAX_ITERATIONS` elements in all its
  comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``)
  together, nested ones included; the range is charged before the loop runs;
* ``+`` refuses to build a string, bytes or list longer than
  :data:`MAX_CONCAT_LENGTH`, which stops the doubling tricks
  (``x.map(y, [y + y])...``) that are exponential in the source length;
* ``matches`` refuses a string longer than :data:`MAX_MATCH_LENGTH`: Python's
  backtracking search tries every start position, so even an ordinary
  pattern such as ``[a-z]+@`` costs time quadratic in the string when it
  fails (RE2 is linear); at this length the worst is tens of milliseconds.
"""

from __future__ import annotations

__all__ = ["MAX_CONCAT_LENGTH", "MAX_DEPTH", "MAX_ITERATIONS", "MAX_MATCH_LENGTH", "MAX_SOURCE_LENGTH"]

MAX_SOURCE_LENGTH = 4096
MAX_DEPTH = 100
MAX_ITERATIONS = 10_000
MAX_CONCAT_LENGTH = 1 << 20
MAX_MATCH_LENGTH = 4096
