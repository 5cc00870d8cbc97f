"""Upstream failures: no traceback, SQL or stack trace reaches the client.

A 5xx body from an internal service is often a debug page (OWASP API8:2023,
security misconfiguration). By default its body is replaced with a generic
RFC 9457 problem; the status code is kept (a 503 keeps ``Retry-After``).
Connection failures and timeouts become 502 and 504 problems (RFC 9110
§15.6.3, §15.6.5).
"""

from __future__ import annotations

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage, problem_reply
from apishield.problem import UpstreamFailed

__all__ = ["UpstreamErrorsStage"]

_KEEP = frozenset({b"retry-after"})


class UpstreamErrorsStage(Stage):
    name = "upstream_errors"

    def __init__(self, replace: bool) -> None:
        self.replace = replace

    def on_upstream_response(self, ex: Exchange) -> None:
        reply = ex.reply
        if not self.replace or reply is None or not reply.from_upstream or reply.status < 500:
            return
        kept = [(k, v) for k, v in reply.headers if k in _KEEP]
        problem = UpstreamFailed(
            detail="The service behind this API failed; the incident was recorded.",
            status_override=reply.status,
        )
        new = problem_reply(problem, ex.request_id)
        new.headers += kept
        new.from_upstream = True
        ex.reply = new
        ex.decide(self.name, "modify", f"replaced the body of an upstream {reply.status}")
