"""Helpers shared by the CEL tests: compile-and-evaluate in one call."""

from __future__ import annotations

from typing import Any

import pytest

from apishield.cel import CELCompileError, CELEvalError, CELSyntaxError, compile_expression

VARIABLES = frozenset(
    {"token", "principal", "path", "query", "headers", "body", "response", "item", "resource", "x", "y"}
)


def ev(source: str, **activation: Any) -> Any:
    """The value of ``source`` over ``activation`` (its keys are declared variables)."""
    return compile_expression(source, variables=VARIABLES | frozenset(activation)).evaluate(activation)


def fails(source: str, **activation: Any) -> str:
    """The message of the evaluation error ``source`` must raise."""
    expression = compile_expression(source, variables=VARIABLES | frozenset(activation))
    with pytest.raises(CELEvalError) as info:
        expression.evaluate(activation)
    return info.value.message


def refused(source: str, variables: frozenset[str] = VARIABLES) -> CELSyntaxError | CELCompileError:
    """The static error ``source`` must raise."""
    with pytest.raises((CELSyntaxError, CELCompileError)) as info:
        compile_expression(source, variables=variables)
    assert isinstance(info.value, CELSyntaxError | CELCompileError)
    return info.value
