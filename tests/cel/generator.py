"""A seeded generator of random CEL expressions over the corpus activations, for the differential test.

Expressions are built by type (bool, int, double, string, list of strings,
list of ints, map) from the variables of :mod:`tests.cel.corpus`, literals,
operators, functions and macros, so most of them evaluate to a value and
exercise real semantics; a few operands are deliberately of the wrong type
or missing, so the error paths (and their absorption by ``&&``/``||``) are
exercised too.

Two rules keep it off the known divergences of cel-rust (pinned separately
in the divergence table): macro bodies are built only from their own
variable and literals with operations that cannot fail (cel-rust stops
``all``/``exists`` at the first error instead of absorbing it), and unary
minus never applies to a value that could be the smallest int64 (cel-rust
wraps ``-(-2^63)``) or a bool (cel-rust negates it), and a list is only
added to a list (cel-rust appends a map's keys). Strings are ASCII, map keys and indexes are strings
and ints only, ``in`` a map looks for a string literal, and ``string()`` is
applied to an int leaf only.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["ExpressionGenerator"]

TYPES = ("bool", "int", "double", "string", "list", "ilist", "map")

PATHS = {
    "bool": ["token.admin", "query.debug", "principal.authenticated", "token.groups[0].owner"],
    "int": [
        "token.age",
        "path.orderId",
        "query.page",
        "item.qty",
        "body.amount",
        "token.limits.max",
        "response.status",
        "token.big",
    ],
    "double": ["token.score", "item.price", "query.ratio", "body.items[0].price"],
    "string": [
        "token.sub",
        "token.customer_id",
        "path.customerId",
        "item.status",
        "item.owner",
        "headers['x-tenant']",
        "token.email",
        "body.currency",
        "query.q",
    ],
    "list": ["token.roles", "item.tags", "principal.scopes", "principal.roles"],
    "ilist": ["body.items.map(i, i.qty)", "[path.orderId, query.page]"],
    "map": ["token.limits", "headers", "path", "response.body"],
}
STRINGS = ["''", "'a'", "'c1'", "'user'", "'support'", "'open'", "'EUR'", "'alice'", "'t1'", "'ab'", "'x'"]
DOUBLES = ["0.0", "0.5", "1.5", "2.5", "-1.0", "3.0", "1e10", "12.5"]
PATTERNS = ["'^a'", "'c[0-9]+'", "'^[a-z]+$'", "'o'", "'.*'", "'(?i)EUR'", "'@[a-z]+\\\\.example$'", "'^$'"]
FIELDS = ["max", "min", "owner", "x-tenant", "customerId", "status"]
NEGATABLE = ("token.age", "path.orderId", "item.qty", "query.page")


class ExpressionGenerator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.loop = 0  # macro variables made so far, to name them v1, v2...
        self.strict = 0  # > 0 while building a quantifier's range: no wrong-typed operands there

    def generate(self) -> str:
        kind = "bool" if self.rng.random() < 0.7 else self.rng.choice(TYPES)
        return self.expr(kind, 0)

    # -- dispatch ------------------------------------------------------------------------------
    def expr(self, kind: str, depth: int) -> str:
        rng = self.rng
        if depth >= 4 or rng.random() < 0.25:
            return self.leaf(kind)
        if self.strict == 0 and rng.random() < 0.06:  # a wrong-typed or missing operand: an error path
            return rng.choice([self.leaf(rng.choice(TYPES)), "token.nope", "item.missing.deeper"])
        builders: dict[str, Callable[[int], str]] = {
            "bool": self.boolean,
            "int": self.integer,
            "double": self.double,
            "string": self.string,
            "list": self.strings,
            "ilist": self.ints,
            "map": self.mapping,
        }
        return builders[kind](depth + 1)

    def leaf(self, kind: str) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(PATHS[kind])
        if kind == "bool":
            return rng.choice(["true", "false"])
        if kind == "int":
            roll = rng.random()
            if roll < 0.1:
                return f"{rng.randint(0, 5)}u"
            if roll < 0.15:
                return "9223372036854775807"
            return str(rng.randint(-3, 12))
        if kind == "double":
            return rng.choice(DOUBLES)
        if kind == "string":
            return rng.choice(STRINGS)
        if kind == "list":
            return "[" + ", ".join(rng.sample(STRINGS, rng.randint(0, 3))) + "]"
        if kind == "ilist":
            return "[" + ", ".join(str(rng.randint(-2, 9)) for _ in range(rng.randint(0, 4))) + "]"
        keys = rng.sample(FIELDS, rng.randint(0, 2))
        return "{" + ", ".join(f"'{k}': {rng.randint(0, 9)}" for k in keys) + "}"

    def well_typed(self, kind: str, depth: int) -> str:
        """An operand without injected type errors, where cel-rust is laxer than the spec."""
        self.strict += 1
        try:
            return self.expr(kind, depth)
        finally:
            self.strict -= 1

    def typed(self, depth: int) -> tuple[str, str]:
        kind = self.rng.choice(TYPES)
        return kind, self.expr(kind, depth)

    # -- builders per type -----------------------------------------------------------------------
    def boolean(self, depth: int) -> str:
        rng = self.rng
        e = self.expr
        choice = rng.randrange(12)
        if choice == 0:
            a, b = rng.choice([("int", "int"), ("int", "double"), ("double", "double"), ("string", "string")])
            return f"{e(a, depth)} {rng.choice(['<', '<=', '>', '>='])} {e(b, depth)}"
        if choice == 1:
            kind, left = self.typed(depth)
            other = kind if rng.random() < 0.8 else rng.choice(TYPES)
            return f"{left} {rng.choice(['==', '!='])} {e(other, depth)}"
        if choice in (2, 3):
            op = rng.choice(["&&", "||"])
            return f"{e('bool', depth)} {op} {e('bool', depth)}"
        if choice == 4:
            return f"!{self.paren(e('bool', depth))}"
        if choice == 5:
            needle, hay = rng.choice([("string", "list"), ("int", "ilist"), ("key", "map")])
            if needle == "key":  # only strings: cel-rust fails on a null or list needle in a map
                key = rng.choice([*STRINGS, "'max'", "'owner'"])
                return f"{key} in {self.well_typed(hay, depth)}"
            return f"{e(needle, depth)} in {self.well_typed(hay, depth)}"
        if choice == 6:
            fn = rng.choice(["startsWith", "endsWith", "contains"])
            return f"{self.paren(e('string', depth))}.{fn}({e('string', depth)})"
        if choice == 7:
            return f"{self.paren(e('string', depth))}.matches({rng.choice(PATTERNS)})"
        if choice == 8:
            return rng.choice(
                [
                    "has(token.partner_id)",
                    "has(item.partnerId)",
                    "has(body.note)",
                    "has(token.limits.min)",
                    f"has({self.paren(e('map', depth))}.{rng.choice(['max', 'owner', 'status'])})",
                ]
            )
        if choice == 9:
            return self.quantifier(depth)
        if choice == 10:
            return f"{e('bool', depth)} ? {e('bool', depth)} : {e('bool', depth)}"
        return (
            f"{rng.choice(['size', 'int'])}({e('string', depth)}) {rng.choice(['>', '=='])} {e('int', depth)}"
        )

    def integer(self, depth: int) -> str:
        rng = self.rng
        e = self.expr
        choice = rng.randrange(8)
        if choice <= 2:
            op = rng.choice(["+", "-", "*", "/", "%"])
            return f"{self.paren(e('int', depth))} {op} {self.paren(e('int', depth))}"
        if choice == 3:
            kind = rng.choice(["string", "list", "map", "ilist"])
            return f"size({e(kind, depth)})"
        if choice == 4:
            return rng.choice(
                [f"int({e('double', depth)})", f"int({rng.choice(['12', '-3', 'abc', '+7'])!r})"]
            )
        if choice == 5:
            return f"-{rng.choice(NEGATABLE)}" if rng.random() < 0.5 else f"-{rng.randint(0, 9)}"
        if choice == 6:
            return f"{e('bool', depth)} ? {e('int', depth)} : {e('int', depth)}"
        return f"{self.paren(e('ilist', depth))}[{rng.randint(0, 2)}]"

    def double(self, depth: int) -> str:
        rng = self.rng
        e = self.expr
        choice = rng.randrange(4)
        if choice <= 1:
            op = rng.choice(["+", "-", "*", "/"])
            return f"{self.paren(e('double', depth))} {op} {self.paren(e('double', depth))}"
        if choice == 2:
            return f"double({e('int', depth)})"
        return f"-{self.paren(self.well_typed('double', depth))}"  # cel-rust negates bools

    def string(self, depth: int) -> str:
        rng = self.rng
        e = self.expr
        choice = rng.randrange(5)
        if choice <= 1:
            return f"{e('string', depth)} + {e('string', depth)}"
        if choice == 2:  # a leaf: an operand of another type could be a bool (no string(bool) in cel-rust)
            return f"string({self.leaf('int')})"
        if choice == 3:
            return f"{self.paren(e('list', depth))}[{rng.randint(0, 1)}]"
        return f"{e('bool', depth)} ? {e('string', depth)} : {e('string', depth)}"

    def strings(self, depth: int) -> str:
        rng = self.rng
        choice = rng.randrange(3)
        rng_list = self.paren(self.well_typed("list", depth))
        if choice == 0:  # cel-rust appends a map's keys to a list
            return f"{rng_list} + {self.well_typed('list', depth)}"
        v = self.variable()
        if choice == 1:
            return f"{rng_list}.filter({v}, {self.safe_string_predicate(v)})"
        return f"{rng_list}.map({v}, {v} + {rng.choice(STRINGS)})"

    def ints(self, depth: int) -> str:
        rng = self.rng
        choice = rng.randrange(3)
        rng_list = self.paren(self.well_typed("ilist", depth))
        if choice == 0:
            return f"{rng_list} + {self.well_typed('ilist', depth)}"
        v = self.variable()
        if choice == 1:
            return f"{rng_list}.filter({v}, {self.safe_int_predicate(v)})"
        return f"{rng_list}.map({v}, {v} * {rng.randint(-2, 3)})"

    def mapping(self, depth: int) -> str:
        return self.leaf("map")

    # -- macros with bodies that cannot fail ------------------------------------------------------
    def variable(self) -> str:
        self.loop += 1
        return f"v{self.loop}"

    def quantifier(self, depth: int) -> str:
        rng = self.rng
        macro = rng.choice(["all", "exists", "exists_one"])
        v = self.variable()
        kind = rng.choice(["list", "ilist"])
        self.strict += 1  # a mixed list would make errors and absorbing values meet: a known divergence
        try:
            range_ = self.paren(self.expr(kind, depth))
        finally:
            self.strict -= 1
        body = self.safe_string_predicate(v) if kind == "list" else self.safe_int_predicate(v)
        return f"{range_}.{macro}({v}, {body})"

    def safe_string_predicate(self, v: str) -> str:
        rng = self.rng
        atoms = [
            f"{v} == {rng.choice(STRINGS)}",
            f"{v}.startsWith({rng.choice(STRINGS)})",
            f"{v}.size() > {rng.randint(0, 4)}",
            f"{v} in ['user', 'support', 'x']",
            f"{v}.matches({rng.choice(PATTERNS)})",
        ]
        first = rng.choice(atoms)
        if rng.random() < 0.3:
            return f"{first} {rng.choice(['&&', '||'])} !({rng.choice(atoms)})"
        return first

    def safe_int_predicate(self, v: str) -> str:
        rng = self.rng
        atoms = [
            f"{v} > {rng.randint(-1, 5)}",
            f"{v} % 2 == {rng.randint(0, 1)}",
            f"{v} + 1 <= {rng.randint(0, 8)}",
            f"{v} in [0, 1, 2, 7]",
            f"double({v}) < 2.5",
        ]
        first = rng.choice(atoms)
        if rng.random() < 0.3:
            return f"{first} {rng.choice(['&&', '||'])} {rng.choice(atoms)}"
        return first

    @staticmethod
    def paren(source: str) -> str:
        return source if source.replace(".", "").replace("_", "").isalnum() else f"({source})"
