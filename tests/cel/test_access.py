"""Member access, indexing and ``has()`` on JSON-shaped data."""

from __future__ import annotations

import pytest

from tests.cel.support import ev, fails

TOKEN = {"sub": "u1", "roles": ["user", "support"], "org": {"id": "o1", "plan": {"tier": "gold"}}, "n": None}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("token.sub", "u1"),
        ("token.org.id", "o1"),
        ("token.org.plan.tier", "gold"),
        ("token['sub']", "u1"),
        ("token['org']['plan'].tier", "gold"),
        ("token.roles[1]", "support"),
        ("token.roles[1u]", "support"),
        ("token.roles[1.0]", "support"),
        ("token.n", None),
        (".token.sub", "u1"),
        ("{'a': {'b': 1}}.a.b", 1),
        ("[[1, 2], [3]][0][1]", 2),
    ],
)
def test_access(source: str, expected: object) -> None:
    assert ev(source, token=TOKEN) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("token.missing", "no such key: 'missing'"),
        ("token.org.missing", "no such key: 'missing'"),
        ("token.org.plan.missing", "no such key: 'missing'"),
        ("token['missing']", "no such key: 'missing'"),
        ("token.sub.x", "type 'string' does not support field selection"),
        ("token.roles.x", "type 'list' does not support field selection"),
        ("token.n.x", "type 'null_type' does not support field selection"),
        ("token.org.id.x.y", "type 'string' does not support field selection"),
        ("token.roles[2]", "out of range"),
        ("token.roles[-1]", "out of range"),
        ("token.roles[0.5]", "no matching overload"),
        ("token.roles['0']", "no matching overload"),
        ("token.sub[0]", "no matching overload"),
        ("resource.x", "no value for variable 'resource'"),
        ("resource", "no value for variable 'resource'"),
        ("(token.sub).x", "does not support field selection"),
    ],
)
def test_access_errors(source: str, message: str) -> None:
    assert message in fails(source, token=TOKEN)


def test_has() -> None:
    assert ev("has(token.sub)", token=TOKEN) is True
    assert ev("has(token.missing)", token=TOKEN) is False
    assert ev("has(token.n)", token=TOKEN) is True  # present, even if null
    assert ev("has(token.org.plan)", token=TOKEN) is True
    assert ev("has(token.org.plan.tier)", token=TOKEN) is True
    assert ev("has({'a': 1}.a)") is True
    assert ev("x.exists(i, has(i.k))", x=[{"j": 1}, {"k": 2}]) is True
    assert "no such key" in fails("has(token.missing.x)", token=TOKEN)
    assert "no matching overload" in fails("has(token.roles.x)", token=TOKEN)
    assert "no matching overload" in fails("has(token.sub.x)", token=TOKEN)
    assert "no value" in fails("has(resource.x)")


def test_partner_rule() -> None:
    rule = "has(token.partner_id) && item.partnerId == token.partner_id"
    assert ev(rule, token={"partner_id": "p1"}, item={"partnerId": "p1"}) is True
    assert ev(rule, token={"partner_id": "p1"}, item={"partnerId": "p2"}) is False
    assert ev(rule, token={}, item={"partnerId": "p1"}) is False
    assert ev(rule, token={}, item={}) is False


def test_selection_does_not_mutate_or_wrap_negative_indexes() -> None:
    data = {"a": [1, 2]}
    assert "out of range" in fails("x.a[-1]", x=data)
    ev("has(x.b)", x=data)
    assert data == {"a": [1, 2]}


def test_literals_build_fresh_values() -> None:
    assert ev("[1, x]", x=2) == [1, 2]
    assert ev("{'k': x, 'j': [x]}", x=1) == {"k": 1, "j": [1]}
    assert ev("{x: 1}", x="dyn") == {"dyn": 1}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{'a': 1, 'a': 2}", "repeated map key"),
        ("{1: 'a', 1u: 'b'}", "repeated map key"),
        ("{true: 1, 1: 2}", "bool key"),
        ("{1.5: 'a'}", "a map key is"),
        ("{null: 1}", "a map key is"),
        ("{[1]: 1}", "a map key is"),
    ],
)
def test_map_literal_errors(source: str, message: str) -> None:
    assert message in fails(source)
