"""Object-level authorization (OWASP API1:2023, broken object level authorization).

The function-level fields of an :class:`OperationAccess` (deny, required
authentication, roles, scopes) are enforced by the authorization stage
(:mod:`.authorization`) before the request is validated. Object level, with
CEL rules compiled at start (:mod:`apishield.cel`):

* a rule over the request (``path``, ``query``, ``headers``, ``body``,
  ``token``, ``principal``) is decided before the request is forwarded;
* a rule that reads ``response`` is decided on the upstream's answer,
  before a byte of it is returned;
* a write can name the read operation of the same resource (``precheck``):
  the gateway reads the resource with its own identity and decides on it
  (``resource``) before forwarding the write;
* a list rule (``items``) is decided per element (``item``) and filters the
  array, or denies the whole answer.

A denied object answers 404 by default, identical to the 404 the upstream
gives for an object that does not exist (the upstream's own 404s of such an
operation are replaced by the same answer), so a caller cannot learn that
an object exists. The identifiers rules compare are the typed values that
validation produced from the one normalised reading of the path
(:mod:`apishield.core.normalize`), which is also what the upstream receives.
A rule that fails to evaluate (a missing claim, a type error) denies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from apishield.auth import rfc6750
from apishield.core.activation import activation
from apishield.core.effects import FetchResource
from apishield.core.exchange import Exchange
from apishield.core.normalize import encode_segment
from apishield.core.stage import Stage, problem_reply
from apishield.openapi.document import resolve_pointer
from apishield.problem import NotFound, Problem

__all__ = ["CompiledRule", "ItemsPlan", "ObjectAccessStage", "OperationAccess", "PrecheckPlan"]

_MISSING: Any = object()


@dataclass(frozen=True)
class CompiledRule:
    rule_id: str
    source: str
    expression: Any  # apishield.cel.CompiledExpression

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(self.expression.variables)

    def decide(self, act: dict[str, Any]) -> tuple[bool, str]:
        from apishield.cel import CELEvalError

        try:
            return bool(self.expression.evaluate_bool(act)), ""
        except CELEvalError as exc:
            return False, f"rule could not be evaluated: {exc}"


@dataclass(frozen=True)
class PrecheckPlan:
    read_template: str
    rule: CompiledRule


@dataclass(frozen=True)
class ItemsPlan:
    rule: CompiledRule
    pointer: str
    on_denied: str


@dataclass
class OperationAccess:
    deny: bool = False
    require_authentication: bool = False
    require_roles: frozenset[str] = frozenset()
    require_scopes: tuple[str, ...] = ()
    request_rule: CompiledRule | None = None
    response_rule: CompiledRule | None = None
    precheck: PrecheckPlan | None = None
    items: ItemsPlan | None = None
    denied_status: int = 404
    hides_objects: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.hides_objects = self.denied_status == 404 and any(
            r is not None for r in (self.request_rule, self.response_rule, self.precheck)
        )


class ObjectAccessStage(Stage):
    name = "object_access"

    def __init__(self, operations: dict[str, OperationAccess], realm: str, service_subject: str) -> None:
        self.operations = operations
        self.realm = realm
        self.service_subject = service_subject

    def _denied(self, ex: Exchange, access: OperationAccess, rule: str, reason: str) -> None:
        problem: Problem
        if access.denied_status == 404:
            problem = NotFound(detail="The requested object was not found.")
        else:
            problem = rfc6750.Forbidden(detail="You may not access this object.")
        ex.decide(self.name, "deny", reason, rule)
        ex.reply = problem_reply(problem, ex.request_id)

    # -- object level, request side ------------------------------------------------------------
    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        access = self.operations.get(ex.operation_id or "")
        if access is None:
            return
        if access.precheck is not None:
            plan = access.precheck
            target = _fill(plan.read_template, ex.path_params)
            effect = FetchResource(target.encode("ascii"), self.service_subject)
            result = ex.resolved.get(effect, _MISSING)
            if result is _MISSING:
                ex.pending = effect
                return
            status, resource = result
            if not 200 <= status < 300:
                self._denied(ex, access, plan.rule.rule_id, f"pre-check read answered {status}")
                return
            allowed, why = plan.rule.decide(activation(ex, plan.rule.variables, resource=resource))
            if not allowed:
                self._denied(ex, access, plan.rule.rule_id, why or "pre-check rule denied the write")
                return
            ex.decide(self.name, "allow", "pre-check rule allowed the write", plan.rule.rule_id)
        rule = access.request_rule
        if rule is not None:
            allowed, why = rule.decide(activation(ex, rule.variables))
            if not allowed:
                self._denied(ex, access, rule.rule_id, why or "rule denied the request")
                return
            ex.decide(self.name, "allow", "rule allowed the request", rule.rule_id)

    # -- object level, response side -----------------------------------------------------------
    def on_upstream_response(self, ex: Exchange) -> None:
        access = self.operations.get(ex.operation_id or "")
        reply = ex.reply
        if access is None or reply is None or reply.problem is not None:
            return
        if reply.status == 404 and access.hides_objects:
            self._denied(ex, access, "not-found", "the upstream has no such object")
            return
        if not 200 <= reply.status < 300:
            return
        rule = access.response_rule
        if rule is not None:
            allowed, why = rule.decide(activation(ex, rule.variables))
            if not allowed:
                self._denied(ex, access, rule.rule_id, why or "rule denied the answer")
                return
            ex.decide(self.name, "allow", "rule allowed the answer", rule.rule_id)
        if access.items is not None:
            self._items(ex, access, access.items)

    def _items(self, ex: Exchange, access: OperationAccess, plan: ItemsPlan) -> None:
        reply = ex.reply
        assert reply is not None
        try:
            doc = reply.json()
            items = resolve_pointer(doc, plan.pointer) if plan.pointer else doc
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
            self._denied(ex, access, plan.rule.rule_id, "the answer has no list where the rule expects one")
            return
        if not isinstance(items, list):
            self._denied(ex, access, plan.rule.rule_id, "the answer has no list where the rule expects one")
            return
        base = activation(ex, plan.rule.variables - {"item"})
        kept = []
        for item in items:
            allowed, _ = plan.rule.decide({**base, "item": item})
            if allowed:
                kept.append(item)
        removed = len(items) - len(kept)
        if not removed:
            ex.decide(self.name, "allow", "every list item allowed", plan.rule.rule_id)
            return
        if plan.on_denied == "deny":
            self._denied(ex, access, plan.rule.rule_id, f"{removed} list item(s) not allowed")
            return
        items[:] = kept
        reply.changed()
        ex.decide(
            self.name,
            "modify",
            f"removed {removed} list item(s) the caller may not see",
            plan.rule.rule_id,
            {"removed": removed, "kept": len(kept)},
        )


def _fill(template: str, params: dict[str, str]) -> str:
    out = []
    for segment in template.split("/"):
        for name, value in params.items():
            segment = segment.replace("{" + name + "}", encode_segment(value))
        out.append(segment)
    return "/".join(out)
