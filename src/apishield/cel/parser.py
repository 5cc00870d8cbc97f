"""From source text to :mod:`~apishield.cel.syntax`: celpy's CEL grammar, then a lowering pass.

The grammar is the one cel-python maintains (``celpy/cel.lark``, the spec's
EBNF in Lark form), loaded into a Lark LALR parser configured as celpy's own
``CELParser`` is, with two differences: the lexer callback that turns the
identifiers ``true``/``false`` into boolean literals keeps their position, so
every error can be located; and a float literal needs a digit after its
point, as in the spec's lexis (celpy's also takes ``1.``, which would read
``1.size()`` as ``1.`` followed by ``size``). The parser is built once, on
first use.

The lowering pass walks Lark's tree into the small AST. It never recurses
along a chain (``a || b || ...``, ``a + b + ...``, ``a.b.c...``, ``!!x``):
those are followed in loops, so only real nesting (parentheses, arguments,
chained operators that build a deeper tree) costs depth, and depth is
bounded by :data:`~.limits.MAX_DEPTH`. It also does what the lenient
grammar leaves undone: reserved words are refused as identifiers, literal
values are decoded and range-checked. Unary operators are read as cel-go
and cel-rust read them: a run of the same operator counts once if its
length is odd and not at all if even (``!!x`` is ``x``, whatever ``x`` is),
and a minus left directly before a number is folded into it, so
``-9223372036854775808`` is a valid ``int`` however it is spaced.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from apishield.cel.errors import CELCompileError, CELSyntaxError
from apishield.cel.limits import MAX_DEPTH, MAX_SOURCE_LENGTH
from apishield.cel.literals import (
    LiteralError,
    bytes_literal,
    float_literal,
    int_literal,
    string_literal,
    uint_literal,
)
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
    Position,
    Select,
    Unary,
)

__all__ = ["parse"]

RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)

_PASSTHROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member"}
)
_LOGICAL = {"conditionalor": "||", "conditionaland": "&&"}
_BINARY = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}
_MEMBER_LINKS = frozenset({"member_dot", "member_dot_arg", "member_index", "member_object"})
_EXPECTED = {
    "COLON": "':'",
    "RPAR": "')'",
    "RSQB": "']'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "IDENT": "an identifier",
}

Branch = Tree[Token] | Token


def _keywords(token: Token) -> Token:
    if token.value in ("true", "false"):
        return Token.new_borrow_pos("BOOL_LIT", token.value, token)
    return token


# celpy's FLOAT_LIT also accepts "1." (no digit after the point), which the spec's
# lexis does not: it would read 1.size() as the float "1." followed by "size".
_CELPY_FLOAT = '/-?/ DIGIT+ "." DIGIT* EXPONENT? | /-?/ DIGIT* "." DIGIT+ EXPONENT?'
_SPEC_FLOAT = '/-?/ DIGIT* "." DIGIT+ EXPONENT?'


@functools.cache
def _lark() -> Lark:
    grammar = resources.files("celpy").joinpath("cel.lark").read_text(encoding="utf-8")
    grammar = grammar.replace(_CELPY_FLOAT, _SPEC_FLOAT)  # literals.py refuses "1." should this not match
    return Lark(
        grammar,
        parser="lalr",
        start="expr",
        lexer_callbacks={"IDENT": _keywords},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
        g_regex_flags=re.M,
    )


def parse(source: str) -> Node:
    """The AST of ``source``; :class:`CELSyntaxError` or :class:`CELCompileError` (limits) if refused."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise CELCompileError(f"expression longer than {MAX_SOURCE_LENGTH} characters")
    if not source.strip():
        raise CELSyntaxError("empty expression", 1, 1)
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(source, exc) from None
    return _Lowering().node(tree, 1)


# -- syntax errors ----------------------------------------------------------------------------


def _end_position(source: str) -> Position:
    lines = source.split("\n")
    return len(lines), len(lines[-1]) + 1


def _describe(token: Token) -> str:
    if token.type == "IDENT":
        return f"identifier {token.value!r}"
    if token.type.endswith("_LIT"):
        return f"literal {token.value}"
    return repr(str(token.value))


def _syntax_error(source: str, exc: UnexpectedInput) -> CELSyntaxError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        message = f"unexpected {_describe(exc.token)}"
        wanted = sorted(exc.expected)
        if 0 < len(wanted) <= 3 and all(w in _EXPECTED for w in wanted):
            message += "; expected " + " or ".join(_EXPECTED[w] for w in wanted)
    elif isinstance(exc, UnexpectedCharacters):
        quote = exc.char in "'\""
        message = "unterminated string literal" if quote else f"unexpected character {exc.char!r}"
    else:  # the input ended early
        message = "unexpected end of expression"
        line, column = _end_position(source)
    if not isinstance(line, int) or not isinstance(column, int) or line < 1 or column < 1:
        line, column = _end_position(source)
    return CELSyntaxError(message, line, column)


# -- lowering ---------------------------------------------------------------------------------


def _pos(branch: Branch) -> Position:
    if isinstance(branch, Token):
        if branch.line is not None and branch.column is not None:
            return branch.line, branch.column
        return 1, 1
    meta = branch.meta
    if getattr(meta, "empty", True):
        return 1, 1
    return meta.line, meta.column


def _tree(branch: Branch) -> Tree[Token]:
    assert isinstance(branch, Tree), branch
    return branch


def _token(branch: Branch) -> Token:
    assert isinstance(branch, Token), branch
    return branch


def _skip(branch: Branch) -> Tree[Token]:
    tree = _tree(branch)
    while tree.data in _PASSTHROUGH and len(tree.children) == 1:
        tree = _tree(tree.children[0])
    return tree


def _literal_token(branch: Branch) -> Token | None:
    """The token of a literal written directly (no parentheses) in this unary operand."""
    tree = _skip(branch)
    if tree.data == "primary":
        tree = _tree(tree.children[0])
    return _token(tree.children[0]) if tree.data == "literal" else None


def _collapse(ops: list[tuple[str, Position]]) -> list[tuple[str, Position]]:
    """A run of the same unary operator counts once if odd, not at all if even (as cel-go parses it)."""
    out: list[tuple[str, Position]] = []
    i = 0
    while i < len(ops):
        j = i
        while j < len(ops) and ops[j][0] == ops[i][0]:
            j += 1
        if (j - i) % 2:
            out.append(ops[i])
        i = j
    return out


def _located(exc: LiteralError, token: Token) -> CELSyntaxError:
    line, column = _pos(token)
    before = str(token.value)[: exc.offset]
    if "\n" in before:
        line += before.count("\n")
        column = len(before) - before.rfind("\n")
    else:
        column += len(before)
    return CELSyntaxError(exc.message, line, column)


class _Lowering:
    def _check_depth(self, depth: int, at: Branch) -> None:
        if depth > MAX_DEPTH:
            raise CELCompileError(f"expression nests deeper than {MAX_DEPTH} levels", *_pos(at))

    def node(self, branch: Branch, depth: int) -> Node:
        self._check_depth(depth, branch)
        tree = _skip(branch)
        data = tree.data
        if data == "primary":
            tree = _tree(tree.children[0])
            data = tree.data
        if data in _LOGICAL:
            return self.logical(tree, depth)
        if data == "expr":
            cond, yes, no = tree.children
            return Conditional(
                _pos(tree), self.node(cond, depth + 1), self.node(yes, depth + 1), self.node(no, depth + 1)
            )
        if data in ("relation", "addition", "multiplication"):
            return self.binary(tree, depth)
        if data == "unary":
            return self.unary(tree, depth)
        if data in _MEMBER_LINKS:
            return self.member(tree, depth)
        return self.primary(tree, depth)

    def name(self, branch: Branch) -> str:
        token = _token(branch)
        if token.value in RESERVED:
            raise CELSyntaxError(f"{token.value!r} is a reserved word", *_pos(token))
        return str(token.value)

    def args(self, children: list[Branch], depth: int) -> tuple[Node, ...]:
        if not children:
            return ()
        return tuple(self.node(e, depth + 1) for e in _tree(children[0]).children)

    def logical(self, tree: Tree[Token], depth: int) -> Node:
        data = tree.data
        pending: list[Branch] = []
        cursor = tree
        while cursor.data == data and len(cursor.children) == 2:
            pending.append(cursor.children[1])
            cursor = _tree(cursor.children[0])
        pending.append(cursor)
        operands: list[Node] = []
        for branch in reversed(pending):
            node = self.node(branch, depth + 1)
            if isinstance(node, Logical) and node.op == _LOGICAL[data]:
                operands.extend(node.operands)  # (a || b) || c: one chain
            else:
                operands.append(node)
        return Logical(_pos(tree), _LOGICAL[data], tuple(operands))

    def binary(self, tree: Tree[Token], depth: int) -> Node:
        links: list[tuple[str, Branch, Position]] = []
        cursor = tree
        while len(cursor.children) == 2:
            op_tree = _tree(cursor.children[0])
            links.append((_BINARY[op_tree.data], cursor.children[1], _pos(cursor)))
            cursor = _tree(op_tree.children[0])
        self._check_depth(depth + len(links), tree)
        node = self.node(cursor, depth + len(links))
        for i, (op, right, pos) in enumerate(reversed(links)):
            node = Binary(pos, op, node, self.node(right, depth + len(links) - i))
        return node

    def unary(self, tree: Tree[Token], depth: int) -> Node:
        ops: list[tuple[str, Position]] = []
        cursor: Branch = tree
        while isinstance(cursor, Tree) and cursor.data == "unary" and len(cursor.children) == 2:
            kind = _tree(cursor.children[0]).data
            ops.append(("!" if kind == "unary_not" else "-", _pos(cursor)))
            cursor = cursor.children[1]
        self._check_depth(depth + len(ops), tree)
        token = _literal_token(cursor)
        text = str(token.value) if token is not None else ""
        if token is not None and text.startswith("-"):  # the lexer took a minus into the number
            ops.append(("-", _pos(token)))
            text = text[1:]
        ops = _collapse(ops)
        node: Node
        if token is None:
            node = self.node(cursor, depth + len(ops))
        elif ops and ops[-1][0] == "-" and token.type in ("INT_LIT", "FLOAT_LIT"):
            _, pos = ops.pop()  # fold: -9223372036854775808 is an int literal
            node = self.literal(token, "-" + text, pos)
        else:
            node = self.literal(token, text)
        for op, pos in reversed(ops):
            node = Unary(pos, op, node)
        return node

    def member(self, tree: Tree[Token], depth: int) -> Node:
        links: list[Tree[Token]] = []
        cursor = tree
        while True:
            if cursor.data == "member" and len(cursor.children) == 1:
                cursor = _tree(cursor.children[0])
            elif cursor.data in _MEMBER_LINKS:
                links.append(cursor)
                cursor = _tree(cursor.children[0])
            else:
                break
        self._check_depth(depth + len(links), tree)
        node = self.node(cursor, depth + len(links))
        for i, link in enumerate(reversed(links)):
            level = depth + len(links) - i
            if link.data == "member_dot":
                node = Select(_pos(link.children[1]), node, self.name(link.children[1]))
            elif link.data == "member_dot_arg":
                name = self.name(link.children[1])
                node = Call(_pos(link.children[1]), name, node, self.args(link.children[2:], level))
            elif link.data == "member_index":
                node = Index(_pos(link), node, self.node(link.children[1], level + 1))
            else:
                raise CELCompileError("message construction (Type{field: ...}) is not supported", *_pos(link))
        return node

    def primary(self, tree: Tree[Token], depth: int) -> Node:
        data = tree.data
        children = tree.children
        if data == "literal":
            return self.literal(_token(children[0]))
        if data in ("ident", "dot_ident"):
            return Ident(_pos(children[0]), self.name(children[0]), root=data == "dot_ident")
        if data in ("ident_arg", "dot_ident_arg"):
            return Call(_pos(children[0]), self.name(children[0]), None, self.args(children[1:], depth))
        if data == "paren_expr":
            return self.node(children[0], depth + 1)
        if data == "list_lit":
            return ListExpr(_pos(tree), self.args(children, depth))
        if data == "map_lit":
            inits = _tree(children[0]).children if children else []
            pairs = tuple(
                (self.node(inits[i], depth + 1), self.node(inits[i + 1], depth + 1))
                for i in range(0, len(inits), 2)
            )
            return MapExpr(_pos(tree), pairs)
        raise AssertionError(f"unexpected parse tree node {data!r}")

    def literal(self, token: Token, text: str | None = None, pos: Position | None = None) -> Node:
        kind = token.type
        text = str(token.value) if text is None else text
        pos = _pos(token) if pos is None else pos
        value: Any
        try:
            if kind == "INT_LIT":
                value = int_literal(text)
            elif kind == "UINT_LIT":
                if text.startswith("-"):  # the lexer took the minus: -(1u), which has no overload
                    return Unary(pos, "-", Literal((pos[0], pos[1] + 1), uint_literal(text[1:])))
                value = uint_literal(text)
            elif kind == "FLOAT_LIT":
                value = float_literal(text)
            elif kind in ("STRING_LIT", "MLSTRING_LIT"):
                value = string_literal(text)
            elif kind == "BYTES_LIT":
                value = bytes_literal(text)
            elif kind == "BOOL_LIT":
                value = text == "true"
            else:
                value = None
        except LiteralError as exc:
            raise _located(exc, token) from None
        return Literal(pos, value)
