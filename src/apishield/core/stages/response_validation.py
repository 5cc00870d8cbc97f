"""Response validation: only documented data leaves (OWASP API3:2023).

The upstream's answer is checked against the response documented for its
status (exact code, then ``2XX``-style class, then ``default``):

* ``strip`` (default): JSON members the schema does not declare, and
  write-only members, are deleted (:mod:`apishield.openapi.strip`) and each
  removed pointer is recorded; a value of another type than documented (an
  object where an array is described) cannot be stripped and is refused
  with a 502; other schema violations are recorded only;
* ``enforce``: any violation, an undeclared member included, turns the answer
  into a 502 problem;
* ``report``: violations are recorded, the answer is untouched;
* ``off``: nothing is checked.

An undocumented status is recorded. In ``strip`` and ``enforce`` modes a body
whose media type is not documented for that status, or a "JSON" body that
does not parse, is never passed on: it could carry anything.

Upstream 5xx answers are handled by :mod:`~apishield.core.stages.upstream_errors`.
"""

from __future__ import annotations

from typing import Literal

import orjson

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage, problem_reply
from apishield.core.stages.request_validation import media_type_of
from apishield.openapi.compile import media_kind
from apishield.problem import ResponseInvalid, Violation

__all__ = ["ResponseMode", "ResponseValidationStage"]

ResponseMode = Literal["strip", "enforce", "report", "off"]


class ResponseValidationStage(Stage):
    name = "response_validation"

    def __init__(self, mode: ResponseMode, op_modes: dict[str, ResponseMode], max_json_depth: int) -> None:
        self.mode = mode
        self.op_modes = op_modes
        self.max_json_depth = max_json_depth

    def on_upstream_response(self, ex: Exchange) -> None:
        reply = ex.reply
        op = ex.operation
        if reply is None or op is None or reply.problem is not None:
            return
        mode = self.op_modes.get(op.operation_id, self.mode)
        if mode == "off":
            return
        spec = op.response_for(reply.status)
        if spec is None:
            ex.decide(
                self.name, "report", f"undocumented status {reply.status}", details={"status": reply.status}
            )
            return
        if not reply.body and reply.status in (204, 304):
            return
        if not spec.media:
            if reply.body:
                self._refuse(ex, mode, "a body was returned where none is documented", [])
            return
        ctype = media_type_of(_header(reply.headers, b"content-type"))
        media = None
        if ctype is not None:
            media = (
                spec.media.get(ctype[0])
                or spec.media.get(ctype[0].split("/")[0] + "/*")
                or spec.media.get("*/*")
            )
        if media is None:
            if not reply.body:
                return
            self._refuse(ex, mode, "undocumented response media type", [])
            return
        if media.kind != "json" or media_kind(ctype[0] if ctype else "") != "json" or media.validator is None:
            return
        try:
            value = reply.json()
        except orjson.JSONDecodeError:
            self._refuse(ex, mode, "the response body is not valid JSON", [])
            return
        removed: list[str] = []
        if media.stripper is not None and mode in ("strip", "enforce"):
            value = media.stripper(value, "", removed)
        violations = media.validator.violations(value)
        if mode == "enforce":
            violations = [Violation(p, "is not documented", "response") for p in removed] + violations
            if violations:
                self._refuse(ex, mode, "the response does not match its description", violations)
            return
        if mode == "strip" and any(v.rule == "Type" for v in violations):
            # a value of another shape than documented (an object where a string or an
            # array was described) cannot be stripped member by member: refuse it
            self._refuse(ex, mode, "the response has a shape other than documented", violations)
            return
        if removed:
            reply.changed()
            ex.decide(
                self.name,
                "modify",
                f"removed {len(removed)} undocumented member(s)",
                details={"removed": removed},
            )
        if violations:
            ex.decide(
                self.name,
                "report",
                "the response does not match its description",
                details={"errors": [v.as_dict() for v in violations]},
            )

    def _refuse(self, ex: Exchange, mode: ResponseMode, reason: str, violations: list[Violation]) -> None:
        details = {"errors": [v.as_dict() for v in violations]} if violations else None
        if mode == "report":
            ex.decide(self.name, "report", reason, details=details)
            return
        ex.decide(self.name, "deny", reason, details=details)
        # the client learns that the answer was refused, not what was wrong with it
        ex.reply = problem_reply(ResponseInvalid(), ex.request_id)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None
