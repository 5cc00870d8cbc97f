"""CEL (Common Expression Language) for authorization rules, compiled to Python closures.

A rule such as ``path.customerId == token.customer_id || 'support' in token.roles``
is parsed once with cel-python's grammar (:mod:`.parser`), checked against
the variables its phase may read, and compiled into closures
(:mod:`.compiler`), so deciding a request costs about a microsecond::

    rule = compile_expression(source, variables=frozenset({"path", "token"}))
    allowed = rule.evaluate_bool({"path": {...}, "token": {...}})

Values are JSON-shaped Python data (:mod:`.values`). The semantics are the
CEL spec's, with cel-go (the reference implementation) deciding what the
spec leaves open; a differential test holds them to cel-rust and pins where
cel-rust departs from the spec. In short:

* ``&&``/``||`` absorb errors commutatively, and so do ``all``/``exists``;
* equality is heterogeneous across ``int``, ``uint`` and ``double``, never an
  error, and a bool is never a number (``true == 1`` is false);
* ``int``/``uint`` arithmetic is checked against 64-bit overflow;
* ``matches`` takes RE2 syntax only (:mod:`.regex`), checked when compiled;
* ``type()``, durations and timestamps are not provided (:mod:`.functions`);
* an evaluation is bounded (:mod:`.limits`).

Errors: :class:`CELSyntaxError` and :class:`CELCompileError` when compiling
(with the line and column inside the expression), :class:`CELEvalError`
when evaluating (the caller denies).
"""

from __future__ import annotations

from apishield.cel.errors import CELCompileError, CELEvalError, CELSyntaxError
from apishield.cel.expression import CompiledExpression, compile_expression
from apishield.cel.values import Uint

__all__ = [
    "CELCompileError",
    "CELEvalError",
    "CELSyntaxError",
    "CompiledExpression",
    "Uint",
    "compile_expression",
]
