"""The comprehension macros as closures: ``all``, ``exists``, ``exists_one``, ``map``, ``filter``.

Each takes the range (a list, or a map whose keys are iterated), charges
its length to the evaluation's budget (:func:`~.program.charge`) before
looping, and binds each element to its variable's frame slot in turn.

``all`` and ``exists`` fold their predicates with ``&&`` and ``||``
semantics over the whole range: a deciding result (``false``, ``true``)
wins over errors met before or after it, so ``[0, 2].all(x, 1 / x == 1)``
is false; without one, the first error propagates. ``exists_one``, ``map``
and ``filter`` are strict: the first error is the result, and a predicate
that is not a bool is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apishield.cel.errors import CELEvalError
from apishield.cel.program import Program, charge
from apishield.cel.values import no_overload

__all__ = ["exists_one", "filter_", "map_", "quantifier"]


def _items(value: Any, macro: str) -> list[Any]:
    kind = type(value)
    if kind is list:
        return value  # type: ignore[no-any-return]
    if kind is dict:
        return list(value)
    raise no_overload(macro, value)


def quantifier(rng: Program, slot: int, predicate: Program, absorbing: bool, macro: str) -> Program:
    """``all`` (``absorbing=False``) and ``exists`` (``absorbing=True``)."""
    other = not absorbing

    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        items = _items(rng(act, loc), macro)
        charge(loc, len(items))
        error: CELEvalError | None = None
        for item in items:
            loc[slot] = item
            try:
                value = predicate(act, loc)
            except CELEvalError as exc:
                error = error or exc
                continue
            if value is absorbing:
                return absorbing
            if value is not other and error is None:
                error = no_overload(macro, value)
        if error is not None:
            raise error
        return other

    return f


def exists_one(rng: Program, slot: int, predicate: Program) -> Program:
    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        items = _items(rng(act, loc), "exists_one")
        charge(loc, len(items))
        count = 0
        for item in items:
            loc[slot] = item
            value = predicate(act, loc)
            if value is True:
                count += 1
            elif value is not False:
                raise no_overload("exists_one", value)
        return count == 1

    return f


def map_(rng: Program, slot: int, keep: Program | None, transform: Program) -> Program:
    """``map(x, t)``, or ``map(x, p, t)`` with the filter ``keep``."""

    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        items = _items(rng(act, loc), "map")
        charge(loc, len(items))
        out = []
        for item in items:
            loc[slot] = item
            if keep is not None:
                wanted = keep(act, loc)
                if wanted is False:
                    continue
                if wanted is not True:
                    raise no_overload("map", wanted)
            out.append(transform(act, loc))
        return out

    return f


def filter_(rng: Program, slot: int, predicate: Program) -> Program:
    def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
        items = _items(rng(act, loc), "filter")
        charge(loc, len(items))
        out = []
        for item in items:
            loc[slot] = item
            wanted = predicate(act, loc)
            if wanted is True:
                out.append(item)
            elif wanted is not False:
                raise no_overload("filter", wanted)
        return out

    return f
