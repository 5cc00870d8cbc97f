"""Uniform failures: an operation whose failures all look the same.

A login that answers 404 "unknown user" for one name and 401 "wrong
password" for another tells an attacker which accounts exist (OWASP
API2:2023; CWE-204, observable response discrepancy). For an operation with
``operations.<id>.uniform_failure`` in the policy, every failing answer, the
gateway's own rejections included, is replaced by one fixed problem: same
status, same body, same headers. "Failing" means a status in
``when_status`` (default: every 4xx and 5xx) or a 2xx JSON answer in which
``when_body_pointer`` exists (an app that answers 200 with an error message).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from apishield.core.exchange import Exchange, Reply
from apishield.core.stage import Stage, problem_reply
from apishield.openapi.document import resolve_pointer
from apishield.problem import RequestFailed

__all__ = ["UniformFailureRule", "UniformFailureStage"]


@dataclass(frozen=True)
class UniformFailureRule:
    status: int
    title: str
    detail: str | None
    statuses: frozenset[str]  # "404", "4XX"
    body_pointer: str | None

    def matches(self, status: int, reply: Reply) -> bool:
        code = str(status)
        if code in self.statuses or code[0] + "XX" in self.statuses:
            return True
        if self.body_pointer is not None and 200 <= status < 300 and reply.body:
            try:
                resolve_pointer(reply.json(), self.body_pointer)
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
                return False
            return True
        return False


class UniformFailureStage(Stage):
    name = "uniform_failure"

    def __init__(self, rules: dict[str, UniformFailureRule]) -> None:
        self.rules = rules

    def on_reply(self, ex: Exchange) -> None:
        reply = ex.reply
        if reply is None or ex.operation is None:
            return
        rule = self.rules.get(ex.operation.operation_id)
        if rule is None or not rule.matches(reply.status, reply):
            return
        problem = RequestFailed(detail=rule.detail, status_override=rule.status, title_override=rule.title)
        ex.reply = problem_reply(problem)  # no request id: it would make answers distinguishable
        ex.decide(self.name, "modify", f"answer {reply.status} made uniform", rule=ex.operation.operation_id)
