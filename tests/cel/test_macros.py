"""The macros: ``all``, ``exists``, ``exists_one``, ``map``, ``filter``; scoping and the iteration budget."""

from __future__ import annotations

import pytest

from apishield.cel import CELCompileError
from apishield.cel.limits import MAX_ITERATIONS
from tests.cel.support import ev, fails, refused

ITEMS = [{"owner": "c1", "qty": 2}, {"owner": "c2", "qty": 0}, {"owner": "c1", "qty": 5}]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[1, 2, 3].all(x, x > 0)", True),
        ("[1, 2, 3].all(x, x > 1)", False),
        ("[].all(x, x > 1)", True),
        ("[1, 2, 3].exists(x, x == 2)", True),
        ("[].exists(x, true)", False),
        ("[1, 2, 3].exists_one(x, x > 2)", True),
        ("[1, 2, 3].exists_one(x, x > 1)", False),
        ("[1, 2, 3].map(x, x * 2)", [2, 4, 6]),
        ("[1, 2, 3].map(x, x > 1, x * 10)", [20, 30]),
        ("[1, 2, 3].filter(x, x % 2 == 1)", [1, 3]),
        ("{'a': 1, 'b': 2}.all(k, k.size() == 1)", True),
        ("{'a': 1, 'b': 2}.exists(k, k == 'b')", True),
        ("{'a': 1, 'b': 2}.map(k, k + k)", ["aa", "bb"]),
        ("{'a': 1, 'b': 2}.filter(k, k != 'a')", ["b"]),
        ("[[1, 2], [3]].map(l, l.map(x, x + 1))", [[2, 3], [4]]),
        ("[1, 2].all(x, [3, 4].all(y, x < y))", True),
        ("[1].all(x, [2].all(x, x == 2)) && [1].all(x, x == 1)", True),  # inner x shadows, then ends
        ("[1, 2].exists(x, x == 2) && [5].all(x, x == 5)", True),
    ],
)
def test_macros(source: str, expected: object) -> None:
    assert ev(source) == expected


def test_macros_over_data() -> None:
    assert ev("body.items.filter(i, i.owner == 'c1').map(i, i.qty)", body={"items": ITEMS}) == [2, 5]
    assert ev("body.items.all(i, i.qty >= 0)", body={"items": ITEMS}) is True
    assert ev("body.items.exists(i, i.owner == token.sub)", body={"items": ITEMS}, token={"sub": "c2"})
    assert ev("item in body.items", item={"owner": "c2", "qty": 0.0}, body={"items": ITEMS}) is True


def test_all_and_exists_absorb_errors_over_the_whole_range() -> None:
    assert ev("[0, 2].all(x, 1 / x == 1)") is False  # 1/0 fails, 1/2 == 0 is false: false wins
    assert ev("[2, 0].all(x, 1 / x == 1)") is False
    assert "division by zero" in fails("[0, 1].all(x, 1 / x == 1)")
    assert ev("[0, 1].exists(x, 1 / x == 1)") is True
    assert ev("[1, 0].exists(x, 1 / x == 1)") is True
    assert "division by zero" in fails("[0, 2].exists(x, 1 / x == 1)")
    assert ev("['a', 1].exists(x, x == 1 && x > 0)") is True
    assert "no matching overload" in fails("[1, 2].all(x, x)")
    assert ev("[1, false].all(x, x)") is False


def test_other_macros_are_strict() -> None:
    assert "division by zero" in fails("[1, 0].exists_one(x, 1 / x == 1)")
    assert "division by zero" in fails("[1, 0].map(x, 1 / x)")
    assert "division by zero" in fails("[1, 0].filter(x, 1 / x == 1)")
    assert "no matching overload" in fails("[1, 2].filter(x, x)")
    assert "no matching overload" in fails("[1, 2].map(x, x, x)")
    assert "no matching overload" in fails("[1, 2].exists_one(x, 1)")
    assert "no matching overload" in fails("x.all(y, true)", x=1)
    assert "no matching overload" in fails("'abc'.exists(c, true)")


def test_iteration_budget_covers_nested_comprehensions() -> None:
    items = list(range(MAX_ITERATIONS))
    assert ev("x.all(i, i >= 0)", x=items) is True
    assert "comprehensions would visit more than" in fails("x.all(i, i >= 0) && x.exists(i, i < 0)", x=items)
    assert "comprehensions would visit more than" in fails("x.all(i, i >= 0)", x=[*items, 0])
    small = list(range(100))
    assert ev("x.all(i, x.exists(j, i == j))", x=small[:99]) is True
    assert "comprehensions would visit more than" in fails("x.all(i, x.all(j, true))", x=small)


def test_each_evaluation_has_its_own_budget_and_frame() -> None:
    from apishield.cel import compile_expression
    from tests.cel.support import VARIABLES

    rule = compile_expression("x.map(i, i * 2)", variables=VARIABLES)
    for _ in range(3):
        assert rule.evaluate({"x": list(range(MAX_ITERATIONS))})[-1] == 2 * (MAX_ITERATIONS - 1)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("has(token)", "has() needs a field selection"),
        ("has(token['a'])", "has() needs a field selection"),
        ("has(token.a, token.b)", "has() is a macro"),
        ("token.has(a)", "has() is a macro"),
        ("all(x, true)", "all() is a macro"),
        ("[1].all(1, true)", "needs a variable name"),
        ("[1].all(x.y, true)", "needs a variable name"),
        ("[1].all(.x, true)", "needs a variable name"),
        ("[1].all(x)", "all() takes 2 arguments"),
        ("[1].map(x, x, x, x)", "map() takes 2 or 3 arguments"),
        ("[1].all(z, q > 0)", "undeclared reference to 'q'"),
        ("[1].all(z, true) && z > 0", "undeclared reference to 'z'"),
        ("[1].all(z, .z > 0)", "undeclared reference to 'z'"),
    ],
)
def test_macro_errors_are_static(source: str, message: str) -> None:
    error = refused(source)
    assert isinstance(error, CELCompileError)
    assert message in error.message


def test_comprehension_variable_shadows_a_declared_variable() -> None:
    assert ev("[1, 2].exists(item, item == 2) && item.id == 'i'", item={"id": "i"}) is True
    assert ev("[1].all(item, .item.id == 'i')", item={"id": "i"}) is True
