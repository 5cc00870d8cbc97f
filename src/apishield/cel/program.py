"""The calling convention of compiled code: a program is ``f(act, loc)``.

``act`` is the activation, the caller's mapping of variable names to
JSON-shaped values; it is only read. ``loc`` is the frame of one
evaluation, a fresh list: slot 0 holds what is left of the evaluation's
iteration budget, and slots 1..n hold the comprehension variables, each at
an index fixed by the compiler. A program without comprehensions never
touches its frame and is handed a shared empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from apishield.cel.errors import CELEvalError
from apishield.cel.limits import MAX_ITERATIONS

__all__ = ["Program", "charge", "new_frame"]

Program = Callable[[Mapping[str, Any], list[Any]], Any]


def new_frame(slots: int) -> tuple[Any, ...] | None:
    """The initial frame of a program with ``slots`` comprehension variables (None: no frame needed)."""
    return (MAX_ITERATIONS,) + (None,) * slots if slots else None


def charge(loc: list[Any], count: int) -> None:
    """Take ``count`` iterations from the evaluation's budget, before a comprehension loops."""
    left = loc[0] - count
    if left < 0:
        raise CELEvalError(f"comprehensions would visit more than {MAX_ITERATIONS} elements")
    loc[0] = left
