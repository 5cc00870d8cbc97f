"""The abstract syntax of a CEL expression, as the parser hands it to the compiler.

It is the concrete tree with the grammar's precedence levels folded away:
chains of ``||`` and ``&&`` become one :class:`Logical` node, parentheses
disappear, and ``x.f(a)`` is a :class:`Call` with a target. Macros (``has``,
``all``, ``map``, ...) are still plain calls here; the compiler recognises
them. Every node keeps the 1-based (line, column) where it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "Binary",
    "Call",
    "Conditional",
    "Ident",
    "Index",
    "ListExpr",
    "Literal",
    "Logical",
    "MapExpr",
    "Node",
    "Position",
    "Select",
    "Unary",
]

Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Node:
    pos: Position


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Ident(Node):
    name: str
    root: bool = False  # written with a leading dot: never a comprehension variable


@dataclass(frozen=True, slots=True)
class Select(Node):
    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    operand: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    function: str
    target: Node | None  # x in x.f(a); None for f(a)
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListExpr(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapExpr(Node):
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "!" or "-"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # == != < <= > >= in + - * / %
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    op: str  # "&&" or "||"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    condition: Node
    if_true: Node
    if_false: Node
