"""The stage contract of the decision pipeline (modelled on Envoy's filter chain).

A request passes the stages in order through two *decode* phases
(:meth:`Stage.on_request_head`, then :meth:`Stage.on_request_body`); a stage
that refuses the request sets ``exchange.reply`` and the remaining decode
stages are skipped. The reply, whether made by a stage or received from the
upstream, then passes the stages in *reverse* order through the encode
phases: :meth:`Stage.on_upstream_response` only for upstream answers, and
:meth:`Stage.on_reply` for every answer, so a rejection still gets its
response headers and its audit record.

Stages are pure: facts in, decisions and messages out, no sockets.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from apishield.core.exchange import Exchange, Reply
from apishield.problem import PROBLEM_CONTENT_TYPE, Problem

__all__ = ["Mode", "Stage", "problem_reply"]

Mode = Literal["enforce", "report", "off"]


def problem_reply(problem: Problem, request_id: str | None = None) -> Reply:
    body = problem.body(request_id)
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE),
        (b"cache-control", b"no-store"),
        *problem.headers,
    ]
    return Reply(status=problem.http_status, headers=headers, body=body, problem=problem)


class Stage:
    """Base class: every hook is a no-op."""

    name: ClassVar[str] = "stage"

    def on_request_head(self, ex: Exchange) -> None:
        return None

    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        return None

    def on_upstream_response(self, ex: Exchange) -> None:
        return None

    def on_reply(self, ex: Exchange) -> None:
        return None

    def reject(self, ex: Exchange, problem: Problem, mode: Mode = "enforce", rule: str | None = None) -> bool:
        """Refuse the request (``enforce``) or only record it (``report``). True if refused."""
        details = {"errors": [v.as_dict() for v in problem.violations]} if problem.violations else None
        reason = problem.detail or problem.title
        if mode == "report":
            ex.decide(self.name, "report", reason, rule, details)
            return False
        ex.decide(self.name, "deny", reason, rule, details)
        ex.reply = problem_reply(problem, ex.request_id)
        return True
