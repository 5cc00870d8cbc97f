"""Compiling a CEL syntax tree into nested Python closures.

Theory of operation
===================

A rule is compiled once, when the policy loads, and evaluated on every
request, so everything that can be decided from the text alone is decided
here, and what remains at run time is a small tree of closures calling each
other. There is no interpreter loop, no dispatch on node types, no boxing of
values: each closure is the one piece of code its node needs, with its
children and constants bound as free variables.

The calling convention (:mod:`.program`). Every compiled node is a function
``f(act, loc)``: ``act`` is the activation (the caller's mapping of variable
names to JSON-shaped values) and ``loc`` is the evaluation's frame, a list
that holds the comprehension variables. Comprehension variables are resolved
to slots here (``[1, 2].all(x, ...)``: ``x`` is ``loc[k]``, a fixed ``k``),
so a loop body reads its variable by index, and a nested comprehension that
reuses the name simply gets another slot. Slot 0 holds what is left of the
evaluation's iteration budget (:data:`~.limits.MAX_ITERATIONS`); every
comprehension charges its range's length there before it loops. An
expression without comprehensions needs no frame and is handed a shared
empty list.

Errors are exceptions. A CEL error value (no such key, no matching
overload, overflow...) is a raised :class:`~.errors.CELEvalError`, which
costs nothing while nothing goes wrong: Python's ``try`` is free on the
happy path. The three places where CEL keeps going after an error are
exactly the places that catch it:

* ``a && b`` and ``a || b`` are commutative with respect to errors
  (:mod:`.logic`): an operand that decides the result (``false`` for ``&&``,
  ``true`` for ``||``) wins even if the other one failed or is not a bool;
  otherwise the error (either one) propagates. A chain ``a || b || c`` is
  one n-ary node evaluated left to right, remembering the first error;
* ``all`` and ``exists`` combine their predicates the same way, over the
  whole range (:mod:`.comprehensions`): ``[0, 2].all(x, 1 / x == 1)`` is
  false, not an error;
* ``c ? a : b`` evaluates only the branch it takes.

Everything else is strict: an error in any operand is the node's error.

Specialisation. Generic closures call the generic operations of
:mod:`.values` and :mod:`.arith`, which look at ``type()`` and implement
every overload. The shapes rules are actually written in get closures that
skip the dispatch, each exact for every input, not just the common one:

* a chain of selections from a variable (``token.customer_id``,
  ``item.owner.id``) is one closure doing ``act[name][field]...`` under a
  ``try``: a ``dict`` either has the string key or raises ``KeyError``, and
  every other value (list, string, number, null) raises ``TypeError`` on a
  string subscript; only on failure is the chain walked again, step by step,
  to say which step failed;
* ``x == 'literal'`` is Python's ``==``, exact because a ``str`` equals only
  a ``str``; ``x == true``/``x == null`` are identity tests; numbers go
  through :func:`~.values.equal`, since ``True == 1`` in Python;
* ``'literal' in x`` is Python's ``in`` on a list or dict (same reason),
  and ``x in ['a', 'b']`` with string literals is a ``frozenset`` lookup;
* ``s.startsWith('lit')`` and friends test ``type(s) is str`` and call the
  ``str`` method; ``s.matches('lit')`` uses the regex compiled here, so a
  pattern RE2 would reject fails the compilation, not a request.

What the compiler refuses (:class:`~.errors.CELCompileError`, with the
position): an identifier that is neither a declared variable nor a
comprehension variable in scope, an unknown or unsupported function, a
function called in a style or with a number of arguments it does not have,
a malformed macro, a literal regex that is not acceptable RE2. Everything
else, type errors included, is left to run time exactly as CEL without a
type checker does (``false && 1 / 0 == 1`` is ``false``, not an error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from apishield.cel import comprehensions
from apishield.cel.arith import add, divide, modulo, multiply, negate, subtract
from apishield.cel.errors import CELCompileError, CELEvalError
from apishield.cel.functions import BUILTINS, MACROS, UNSUPPORTED, Builtin, search
from apishield.cel.logic import conjunction, disjunction
from apishield.cel.program import Program
from apishield.cel.regex import RegexError, compile_re2
from apishield.cel.syntax import (
    Binary,
    Call,
    Conditional,
    Ident,
    Index,
    ListExpr,
    Literal,
    Logical,
    MapExpr,
    Node,
    Select,
    Unary,
)
from apishield.cel.values import (
    MISSING,
    Uint,
    contains,
    equal,
    index,
    less,
    less_equal,
    map_find,
    no_overload,
    shown,
    type_name,
)

__all__ = ["Compiler"]

_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": modulo,
}
_KEY_TYPES = frozenset({str, int, Uint, bool})


# -- explaining failed selections ------------------------------------------------------------


def _unbound(name: str) -> CELEvalError:
    return CELEvalError(f"no value for variable '{name}'")


def _field_error(value: Any, field: str) -> CELEvalError:
    if type(value) is dict:
        return CELEvalError(f"no such key: {shown(field)}")
    return CELEvalError(f"type '{type_name(value)}' does not support field selection")


def _walk_error(value: Any, fields: Sequence[str]) -> CELEvalError:
    """The error of selecting ``fields`` in turn from ``value``, which is known to fail."""
    for field in fields:
        if type(value) is not dict or field not in value:
            return _field_error(value, field)
        value = value[field]
    return _field_error(value, fields[-1])  # pragma: no cover - the caller saw a failure


def _root_error(act: Mapping[str, Any], name: str, fields: Sequence[str]) -> CELEvalError:
    if name not in act:
        return _unbound(name)
    return _walk_error(act[name], fields)


# -- the compiler -----------------------------------------------------------------------------


class Compiler:
    """One compilation: resolves names against ``variables`` and ``functions``, builds the closures."""

    def __init__(self, variables: frozenset[str], functions: Mapping[str, Callable[..., Any]]) -> None:
        self.variables = variables
        self.functions = functions
        self.used: set[str] = set()  # top-level variables the expression reads
        self.slots = 0  # comprehension variable slots (1..slots; slot 0 is the budget)
        self.scope: list[tuple[str, int]] = []  # comprehension variables in scope, innermost last

    def compile(self, node: Node) -> Program:
        if isinstance(node, Literal):
            value = node.value
            return lambda act, loc: value
        if isinstance(node, Ident):
            return self.ident(node)
        if isinstance(node, Select):
            return self.select(node)
        if isinstance(node, Index):
            return self.index(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Logical):
            return self.logical(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Conditional):
            return self.conditional(node)
        if isinstance(node, ListExpr):
            return self.list_expr(node)
        if isinstance(node, MapExpr):
            return self.map_expr(node)
        raise AssertionError(f"unknown node {node!r}")  # pragma: no cover

    # -- names and selection ------------------------------------------------------------------
    def local_slot(self, node: Ident) -> int | None:
        if not node.root:
            for name, slot in reversed(self.scope):
                if name == node.name:
                    return slot
        return None

    def variable(self, node: Ident) -> str:
        if node.name not in self.variables:
            known = ", ".join(sorted(self.variables)) or "none"
            raise CELCompileError(f"undeclared reference to '{node.name}' (variables: {known})", *node.pos)
        self.used.add(node.name)
        return node.name

    def ident(self, node: Ident) -> Program:
        slot = self.local_slot(node)
        if slot is not None:
            return lambda act, loc: loc[slot]
        name = self.variable(node)

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            try:
                return act[name]
            except KeyError:
                raise _unbound(name) from None

        return f

    def select(self, node: Select) -> Program:
        fields: list[str] = []
        base: Node = node
        while isinstance(base, Select):
            fields.append(base.field)
            base = base.operand
        fields.reverse()
        if isinstance(base, Ident):
            return self.path(base, tuple(fields))
        operand = self.compile(node.operand)
        field = node.field

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            value = operand(act, loc)
            try:
                return value[field]
            except (KeyError, TypeError):
                raise _field_error(value, field) from None

        return f

    def path(self, base: Ident, fields: tuple[str, ...]) -> Program:
        """``base.f1.f2...``: one subscript chain, re-walked only to explain a failure."""
        slot = self.local_slot(base)
        if slot is not None:
            if len(fields) == 1:
                (f1,) = fields

                def local1(act: Mapping[str, Any], loc: list[Any]) -> Any:
                    try:
                        return loc[slot][f1]
                    except (KeyError, TypeError):
                        raise _walk_error(loc[slot], fields) from None

                return local1

            def local_n(act: Mapping[str, Any], loc: list[Any]) -> Any:
                value = loc[slot]
                try:
                    for field in fields:
                        value = value[field]
                    return value
                except (KeyError, TypeError):
                    raise _walk_error(loc[slot], fields) from None

            return local_n
        name = self.variable(base)
        if len(fields) == 1:
            (f1,) = fields

            def root1(act: Mapping[str, Any], loc: list[Any]) -> Any:
                try:
                    return act[name][f1]
                except (KeyError, TypeError):
                    raise _root_error(act, name, fields) from None

            return root1
        if len(fields) == 2:
            f1, f2 = fields

            def root2(act: Mapping[str, Any], loc: list[Any]) -> Any:
                try:
                    return act[name][f1][f2]
                except (KeyError, TypeError):
                    raise _root_error(act, name, fields) from None

            return root2

        def root_n(act: Mapping[str, Any], loc: list[Any]) -> Any:
            try:
                value = act[name]
                for field in fields:
                    value = value[field]
                return value
            except (KeyError, TypeError):
                raise _root_error(act, name, fields) from None

        return root_n

    def index(self, node: Index) -> Program:
        operand = self.compile(node.operand)
        if isinstance(node.index, Literal) and type(node.index.value) is str:
            key = node.index.value

            def by_name(act: Mapping[str, Any], loc: list[Any]) -> Any:
                value = operand(act, loc)
                try:
                    return value[key]
                except (KeyError, TypeError):
                    if type(value) is dict:
                        raise CELEvalError(f"no such key: {shown(key)}") from None
                    raise no_overload("_[_]", value, key) from None

            return by_name
        key_of = self.compile(node.index)
        return lambda act, loc: index(operand(act, loc), key_of(act, loc))

    # -- operators ----------------------------------------------------------------------------
    def logical(self, node: Logical) -> Program:
        operands = tuple(self.compile(o) for o in node.operands)
        return conjunction(operands) if node.op == "&&" else disjunction(operands)

    def conditional(self, node: Conditional) -> Program:
        condition = self.compile(node.condition)
        yes = self.compile(node.if_true)
        no = self.compile(node.if_false)

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            c = condition(act, loc)
            if c is True:
                return yes(act, loc)
            if c is False:
                return no(act, loc)
            raise no_overload("_?_:_", c)

        return f

    def unary(self, node: Unary) -> Program:
        operand = self.compile(node.operand)
        if node.op == "-":
            return lambda act, loc: negate(operand(act, loc))

        def logical_not(act: Mapping[str, Any], loc: list[Any]) -> Any:
            value = operand(act, loc)
            if value is True:
                return False
            if value is False:
                return True
            raise no_overload("!_", value)

        return logical_not

    def binary(self, node: Binary) -> Program:
        op = node.op
        if op in ("==", "!="):
            return self.equality(node, negate=op == "!=")
        if op == "in":
            return self.membership(node)
        left = self.compile(node.left)
        right = self.compile(node.right)
        if op in _ARITHMETIC:
            fn = _ARITHMETIC[op]
            return lambda act, loc: fn(left(act, loc), right(act, loc))
        compare = less if op in ("<", ">") else less_equal
        if op in ("<", "<="):
            if isinstance(node.right, Literal) and type(node.right.value) is int:
                bound: int = node.right.value
                if op == "<":

                    def below(act: Mapping[str, Any], loc: list[Any]) -> Any:
                        x = left(act, loc)
                        return x < bound if type(x) is int else less(x, bound)

                    return below

                def at_most(act: Mapping[str, Any], loc: list[Any]) -> Any:
                    x = left(act, loc)
                    return x <= bound if type(x) is int else less_equal(x, bound)

                return at_most
            return lambda act, loc: compare(left(act, loc), right(act, loc))

        def swapped(act: Mapping[str, Any], loc: list[Any]) -> Any:
            x = left(act, loc)
            return compare(right(act, loc), x)

        return swapped

    def equality(self, node: Binary, negate: bool) -> Program:
        if isinstance(node.right, Literal):
            other, constant = node.left, node.right.value
        elif isinstance(node.left, Literal):
            other, constant = node.right, node.left.value
        else:
            left = self.compile(node.left)
            right = self.compile(node.right)

            def generic(act: Mapping[str, Any], loc: list[Any]) -> Any:
                x = left(act, loc)
                y = right(act, loc)
                kind = type(x)
                simple = kind is type(y) and kind is not list and kind is not dict
                same = x == y if simple else equal(x, y)
                return not same if negate else same

            return generic
        value = self.compile(other)
        kind = type(constant)
        if kind is str or kind is bytes:  # a str (bytes) equals only a str (bytes)
            if negate:
                return lambda act, loc: value(act, loc) != constant
            return lambda act, loc: value(act, loc) == constant
        if constant is None or kind is bool:  # singletons
            if negate:
                return lambda act, loc: value(act, loc) is not constant
            return lambda act, loc: value(act, loc) is constant
        if kind is int:

            def to_int(act: Mapping[str, Any], loc: list[Any]) -> Any:
                x = value(act, loc)
                same = x == constant if type(x) is int else equal(x, constant)
                return not same if negate else same

            return to_int
        if negate:
            return lambda act, loc: not equal(value(act, loc), constant)
        return lambda act, loc: equal(value(act, loc), constant)

    def membership(self, node: Binary) -> Program:
        needle_node, haystack_node = node.left, node.right
        if (
            isinstance(haystack_node, ListExpr)
            and haystack_node.items
            and all(isinstance(i, Literal) and type(i.value) is str for i in haystack_node.items)
        ):
            needle = self.compile(needle_node)
            items = [i.value for i in haystack_node.items if isinstance(i, Literal)]
            members = frozenset(items)

            def in_strings(act: Mapping[str, Any], loc: list[Any]) -> Any:
                x = needle(act, loc)
                if type(x) is str:
                    return x in members
                return contains(items, x)

            return in_strings
        haystack = self.compile(haystack_node)
        if isinstance(needle_node, Literal) and type(needle_node.value) is str:
            constant = needle_node.value

            def string_in(act: Mapping[str, Any], loc: list[Any]) -> Any:
                container = haystack(act, loc)
                kind = type(container)
                if kind is list or kind is dict:
                    return constant in container
                raise no_overload("@in", constant, container)

            return string_in
        needle = self.compile(needle_node)

        def generic(act: Mapping[str, Any], loc: list[Any]) -> Any:
            x = needle(act, loc)
            return contains(haystack(act, loc), x)

        return generic

    # -- literals -----------------------------------------------------------------------------
    def list_expr(self, node: ListExpr) -> Program:
        items = tuple(self.compile(i) for i in node.items)
        return lambda act, loc: [item(act, loc) for item in items]

    def map_expr(self, node: MapExpr) -> Program:
        entries = tuple((self.compile(k), self.compile(v)) for k, v in node.entries)

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            out: dict[Any, Any] = {}
            for key_of, value_of in entries:
                key = key_of(act, loc)
                if type(key) not in _KEY_TYPES:
                    raise CELEvalError(f"a map key is an int, uint, bool or string, not {type_name(key)}")
                if key in out:
                    if map_find(out, key) is not MISSING:
                        raise CELEvalError(f"repeated map key {shown(key)}")
                    raise CELEvalError("a map cannot hold both a bool key and the int 0 or 1 here")
                out[key] = value_of(act, loc)
            return out

        return f

    # -- calls --------------------------------------------------------------------------------
    def call(self, node: Call) -> Program:
        name = node.function
        if name in MACROS:
            return self.macro(node)
        if name in self.functions:
            return self.user_function(node, self.functions[name])
        builtin = BUILTINS.get(name)
        if builtin is None:
            what = "is not supported" if name in UNSUPPORTED else "is unknown"
            raise CELCompileError(f"function '{name}' {what}", *node.pos)
        return self.builtin(node, builtin)

    def arguments(self, node: Call) -> list[Node]:
        return ([node.target] if node.target is not None else []) + list(node.args)

    def builtin(self, node: Call, builtin: Builtin) -> Program:
        name = builtin.name
        if node.target is not None and not builtin.method:
            raise CELCompileError(f"{name}() is called as {name}(x), not as x.{name}()", *node.pos)
        if node.target is None and not builtin.function:
            raise CELCompileError(f"{name}() is called as x.{name}(...), not as {name}(x, ...)", *node.pos)
        nodes = self.arguments(node)
        if len(nodes) != builtin.arity:
            given = len(node.args)
            wanted = builtin.arity - (node.target is not None)
            raise CELCompileError(f"{name}() takes {wanted} argument(s), not {given}", *node.pos)
        special = self.special_call(name, nodes)
        if special is not None:
            return special
        impl = builtin.impl
        fns = [self.compile(n) for n in nodes]
        if len(fns) == 1:
            (a,) = fns
            return lambda act, loc: impl(a(act, loc))
        a, b = fns
        return lambda act, loc: impl(a(act, loc), b(act, loc))

    def special_call(self, name: str, nodes: list[Node]) -> Program | None:
        """Calls with a literal string argument, bound at compile time."""
        if len(nodes) != 2 or not isinstance(nodes[1], Literal) or type(nodes[1].value) is not str:
            return None
        constant: str = nodes[1].value
        test: Callable[[str, str], bool]
        if name == "matches":
            try:
                regex = compile_re2(constant)
            except RegexError as exc:
                raise CELCompileError(f"matches(): {exc}", *nodes[1].pos) from None

            def test(text: str, _: str) -> bool:
                return search(regex, text)

        elif name == "startsWith":
            test = str.startswith
        elif name == "endsWith":
            test = str.endswith
        elif name == "contains":
            test = str.__contains__
        else:
            return None
        text_of = self.compile(nodes[0])

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            text = text_of(act, loc)
            if type(text) is str:
                return test(text, constant)
            raise no_overload(name, text, constant)

        return f

    def user_function(self, node: Call, function: Callable[..., Any]) -> Program:
        name = node.function
        fns = tuple(self.compile(n) for n in self.arguments(node))

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            args = [g(act, loc) for g in fns]
            try:
                return function(*args)
            except CELEvalError:
                raise
            except Exception as exc:
                raise CELEvalError(f"function '{name}' failed: {type(exc).__name__}") from exc

        return f

    # -- macros -------------------------------------------------------------------------------
    def macro(self, node: Call) -> Program:
        """The expansion of a macro call."""
        name = node.function
        if name == "has":
            if node.target is not None or len(node.args) != 1:
                raise CELCompileError("has() is a macro written has(a.b)", *node.pos)
            return self.has(node.args[0])
        if node.target is None:
            raise CELCompileError(f"{name}() is a macro written range.{name}(x, ...)", *node.pos)
        arities = (2, 3) if name == "map" else (2,)
        if len(node.args) not in arities:
            raise CELCompileError(f"{name}() takes {' or '.join(map(str, arities))} arguments", *node.pos)
        variable = node.args[0]
        if not isinstance(variable, Ident) or variable.root:
            raise CELCompileError(f"{name}() needs a variable name as its first argument", *variable.pos)
        rng = self.compile(node.target)
        self.slots += 1
        slot = self.slots
        self.scope.append((variable.name, slot))
        try:
            body = [self.compile(a) for a in node.args[1:]]
        finally:
            self.scope.pop()
        if name == "all":
            return comprehensions.quantifier(rng, slot, body[0], False, "all")
        if name == "exists":
            return comprehensions.quantifier(rng, slot, body[0], True, "exists")
        if name == "exists_one":
            return comprehensions.exists_one(rng, slot, body[0])
        if name == "filter":
            return comprehensions.filter_(rng, slot, body[0])
        return comprehensions.map_(rng, slot, body[0] if len(body) == 2 else None, body[-1])

    def has(self, argument: Node) -> Program:
        if not isinstance(argument, Select):
            raise CELCompileError("has() needs a field selection, as in has(a.b)", *argument.pos)
        field = argument.field
        operand = self.compile(argument.operand)

        def f(act: Mapping[str, Any], loc: list[Any]) -> Any:
            value = operand(act, loc)
            if type(value) is dict:
                return field in value
            raise no_overload("has", value)

        return f
