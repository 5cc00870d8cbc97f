"""The compiled form of a rule, and the one function that makes it.

:func:`compile_expression` parses, checks names against the variables the
caller allows, and compiles to closures (:mod:`.compiler`); the result is
immutable and safe to share between requests and threads, as long as the
activation it is given is not mutated during an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apishield.cel.compiler import Compiler
from apishield.cel.errors import CELCompileError, CELEvalError
from apishield.cel.functions import BUILTINS, MACROS
from apishield.cel.parser import RESERVED, parse
from apishield.cel.program import Program, new_frame
from apishield.cel.values import type_name

__all__ = ["CompiledExpression", "compile_expression"]

_NO_FRAME: list[Any] = []  # the frame of expressions without comprehensions: never touched


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A rule ready to run: ``evaluate`` it with an activation (variable name -> JSON-shaped value)."""

    source: str
    variables: frozenset[str]  # the top-level identifiers the expression reads
    _program: Program = field(repr=False, compare=False)
    _frame: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The value of the expression; :class:`CELEvalError` if it is an error."""
        frame = self._frame
        try:
            return self._program(activation, _NO_FRAME if frame is None else list(frame))
        except RecursionError:
            raise CELEvalError("the data nests too deeply to evaluate") from None

    def evaluate_bool(self, activation: Mapping[str, Any]) -> bool:
        """The value, which must be a bool; anything else is a :class:`CELEvalError`."""
        frame = self._frame
        try:
            result = self._program(activation, _NO_FRAME if frame is None else list(frame))
        except RecursionError:
            raise CELEvalError("the data nests too deeply to evaluate") from None
        if result is True or result is False:
            return result
        raise CELEvalError(f"the expression evaluated to a value of type {type_name(result)}, not bool")


def _check_functions(functions: Mapping[str, Callable[..., Any]]) -> None:
    for name, function in functions.items():
        if not name.isidentifier() or name in RESERVED:
            raise CELCompileError(f"{name!r} cannot name a CEL function")
        if name in BUILTINS or name in MACROS:
            raise CELCompileError(f"function '{name}' is built in and cannot be replaced")
        if not callable(function):
            raise CELCompileError(f"function '{name}' is not callable")


def compile_expression(
    source: str,
    *,
    variables: frozenset[str],
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> CompiledExpression:
    """Compile ``source``, which may read ``variables`` and call ``functions`` besides the standard ones.

    A function is called with the CEL values of its arguments (the receiver
    first, for ``x.f(y)``); whatever it raises becomes a :class:`CELEvalError`.
    Raises :class:`CELSyntaxError` or :class:`CELCompileError`.
    """
    functions = dict(functions or {})
    _check_functions(functions)
    tree = parse(source)
    compiler = Compiler(frozenset(variables), functions)
    try:
        program = compiler.compile(tree)
    except RecursionError:  # pragma: no cover - the parser's depth limit comes first
        raise CELCompileError("expression nests too deeply") from None
    return CompiledExpression(source, frozenset(compiler.used), program, new_frame(compiler.slots))
