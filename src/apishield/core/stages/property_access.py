"""Property-level authorization at the gateway: what a caller may set and see.

On the way in, a JSON body that sets a property the caller may not write is
refused with 403, naming each property by JSON pointer (mass assignment of
a privileged field). On the way out, properties the caller may not read are
removed from the answer, nested objects and arrays included, and each
removal is recorded. The permissions come from the document's
``x-apishield-*`` extensions and the policy (:mod:`apishield.openapi.guards`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from apishield.auth import rfc6750
from apishield.core.activation import activation
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.openapi.guards import Caller, Guard
from apishield.problem import Violation

__all__ = ["OperationGuards", "PropertyAccessStage"]


@dataclass
class OperationGuards:
    write: dict[str, Guard] = field(default_factory=dict)  # by request media type
    read: dict[tuple[str, str], Guard] = field(default_factory=dict)  # by (response key, media type)


def _caller(ex: Exchange) -> Caller:
    p = ex.principal
    return Caller(
        grants=p.scopes | p.api_key_scopes | p.roles, rule_vars=activation(ex, ("token", "principal"))
    )


class PropertyAccessStage(Stage):
    name = "property_access"

    def __init__(self, guards: dict[str, OperationGuards]) -> None:
        self.guards = guards

    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        guards = self.guards.get(ex.operation_id or "")
        if guards is None or not guards.write or not ex.has_body_value or ex.media is None:
            return
        guard = guards.write.get(ex.media.media_type)
        if guard is None:
            return
        refused: list[str] = []
        guard(ex.body_value, _caller(ex), "", refused)
        if refused:
            problem = rfc6750.Forbidden(
                detail="The request sets properties the caller may not set.",
                violations=[Violation(p, "may not be set by this caller") for p in refused],
            )
            self.reject(ex, problem, rule="property write permission")

    def on_upstream_response(self, ex: Exchange) -> None:
        guards = self.guards.get(ex.operation_id or "")
        reply = ex.reply
        op = ex.operation
        if guards is None or not guards.read or reply is None or reply.problem is not None or op is None:
            return
        spec = op.response_for(reply.status)
        if spec is None:
            return
        ctype = next((v for k, v in reply.headers if k == b"content-type"), b"").decode("latin-1")
        media = ctype.split(";", 1)[0].strip().lower()
        guard = guards.read.get((spec.key, media))
        if guard is None:
            return
        try:
            value = reply.json()
        except orjson.JSONDecodeError:
            return  # response validation refuses bodies that are not the JSON they claim to be
        removed: list[str] = []
        guard(value, _caller(ex), "", removed)
        if removed:
            reply.changed()
            ex.decide(
                self.name,
                "modify",
                f"removed {len(removed)} propert(ies) the caller may not read",
                details={"removed": removed},
            )
