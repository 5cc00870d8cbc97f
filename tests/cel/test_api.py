"""The public surface: ``compile_expression``, ``CompiledExpression`` and the three errors."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from apishield.cel import (
    CELCompileError,
    CELEvalError,
    CELSyntaxError,
    CompiledExpression,
    compile_expression,
)
from apishield.core.activation import RULE_VARIABLES

OWNER = "path.customerId == token.customer_id || 'support' in token.roles"


def test_compiled_expression_describes_itself() -> None:
    rule = compile_expression(OWNER, variables=RULE_VARIABLES)
    assert isinstance(rule, CompiledExpression)
    assert rule.source == OWNER
    assert rule.variables == frozenset({"path", "token"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.source = "true"  # type: ignore[misc]
    assert OWNER in repr(rule)


def test_variables_exclude_comprehension_variables_and_include_root_names() -> None:
    rule = compile_expression("body.items.all(item, item.owner == .item.owner)", variables=RULE_VARIABLES)
    assert rule.variables == frozenset({"body", "item"})
    assert compile_expression("1 + 2", variables=RULE_VARIABLES).variables == frozenset()


def test_evaluate_and_evaluate_bool() -> None:
    rule = compile_expression(OWNER, variables=RULE_VARIABLES)
    act = {"path": {"customerId": "c1"}, "token": {"customer_id": "c1", "roles": []}}
    assert rule.evaluate(act) is True
    assert rule.evaluate_bool(act) is True
    act = {"path": {"customerId": "c2"}, "token": {"customer_id": "c1", "roles": ["support"]}}
    assert rule.evaluate_bool(act) is True
    act = {"path": {"customerId": "c2"}, "token": {"customer_id": "c1", "roles": ["user"]}}
    assert rule.evaluate_bool(act) is False
    with pytest.raises(CELEvalError, match="no value for variable 'path'"):
        rule.evaluate_bool({"token": {"roles": []}})


def test_evaluate_bool_insists_on_a_bool() -> None:
    rule = compile_expression("token.roles", variables=RULE_VARIABLES)
    assert rule.evaluate({"token": {"roles": ["a"]}}) == ["a"]
    with pytest.raises(CELEvalError, match="evaluated to a value of type list, not bool"):
        rule.evaluate_bool({"token": {"roles": ["a"]}})
    with pytest.raises(CELEvalError, match="evaluated to a value of type int, not bool"):
        compile_expression("1", variables=RULE_VARIABLES).evaluate_bool({})


def test_error_classes() -> None:
    assert issubclass(CELSyntaxError, ValueError)
    assert issubclass(CELCompileError, ValueError)
    assert issubclass(CELEvalError, Exception)
    assert not issubclass(CELEvalError, ValueError)
    syntax = CELSyntaxError("boom", 2, 5)
    assert (syntax.line, syntax.column, syntax.message) == (2, 5, "boom")
    assert str(syntax) == "line 2 column 5: boom"
    compile_error = CELCompileError("nope")
    assert (compile_error.line, compile_error.column, str(compile_error)) == (None, None, "nope")
    assert str(CELEvalError("bad")) == "bad"


def test_activation_may_be_any_mapping_and_is_not_mutated() -> None:
    from types import MappingProxyType

    token = {"roles": ["x"]}
    act = MappingProxyType({"token": token})
    rule = compile_expression("token.roles.map(r, r + '!') + ['y']", variables=RULE_VARIABLES)
    assert rule.evaluate(act) == ["x!", "y"]
    assert token == {"roles": ["x"]}


def test_one_compiled_rule_serves_many_threads() -> None:
    rule = compile_expression(
        "token.items.filter(i, i % 2 == 0).size() == token.expected", variables=RULE_VARIABLES
    )
    failures: list[str] = []

    def worker(n: int) -> None:
        for k in range(200):
            items = list(range(n + k))
            expected = len([i for i in items if i % 2 == 0])
            if not rule.evaluate_bool({"token": {"items": items, "expected": expected}}):
                failures.append(f"{n}/{k}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_rules_module_compiles_with_this_api() -> None:
    from apishield.rules import REQUEST_VARS

    source = "has(token.partner_id) && item.partnerId == token.partner_id"
    rule = compile_expression(source, variables=REQUEST_VARS | {"item"})
    assert rule.variables == frozenset({"token", "item"})
