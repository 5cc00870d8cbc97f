"""The three ways a CEL rule can fail: it does not parse, it cannot be compiled, it cannot be evaluated.

The first two happen once, when the policy is loaded, and carry the position
inside the expression (1-based line and column) so the policy loader can
point at the offending character. The third happens per request; the caller
treats it as a denial, and its message names what went wrong: type names,
and at most a key or index cut to a few dozen characters, never whole values.
"""

from __future__ import annotations

__all__ = ["CELCompileError", "CELEvalError", "CELSyntaxError"]


class _PositionedError(ValueError):
    """A static error, optionally located at ``line``/``column`` within the expression."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None or self.column is None:
            return self.message
        return f"line {self.line} column {self.column}: {self.message}"


class CELSyntaxError(_PositionedError):
    """The expression is not well-formed CEL (always carries ``line`` and ``column``)."""

    line: int
    column: int

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message, line, column)


class CELCompileError(_PositionedError):
    """Well-formed, but not accepted: unknown variable or function, wrong arity, unsupported construct."""


class CELEvalError(Exception):
    """Evaluation failed (no such key, no matching overload, overflow, ...): the rule denies."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
