"""Function-level authorization (OWASP API5:2023): may this principal call this operation at all?

First the policy's function-level rules for the operation: denied outright
(a debug or maintenance endpoint), authentication required although the
document leaves the operation open, roles (any of) and extra scopes (all
of). Then the document's requirements:

The operation's security requirements (compiled by
:mod:`apishield.auth.security`) decide: a public operation admits anyone;
an operation without requirements is denied (default deny); otherwise one
alternative must be satisfied. Without credentials the answer is 401 with a
challenge (RFC 6750 §3); with a token lacking scopes, 403
``insufficient_scope`` naming the scopes (RFC 6750 §3.1); with credentials
of a kind the operation does not accept, 401.
"""

from __future__ import annotations

from apishield.auth import rfc6750
from apishield.auth.security import SecurityPlan
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage
from apishield.core.stages.object_access import OperationAccess

__all__ = ["AuthorizationStage"]


class AuthorizationStage(Stage):
    name = "authorization"

    def __init__(
        self, plans: dict[str, SecurityPlan], realm: str, access: dict[str, OperationAccess] | None = None
    ) -> None:
        self.plans = plans
        self.realm = realm
        self.access = access or {}

    def on_request_head(self, ex: Exchange) -> None:
        op = ex.operation
        assert op is not None
        access = self.access.get(op.operation_id)
        if access is not None and not self._function_level(ex, access):
            return
        self._security(ex, self.plans[op.operation_id])

    def _function_level(self, ex: Exchange, access: OperationAccess) -> bool:
        """The policy's function-level rules (OWASP API5:2023); False when the request was refused."""
        principal = ex.principal
        if access.deny:
            return not self.reject(
                ex, rfc6750.Forbidden(detail="This operation is not available."), rule="deny"
            )
        if access.require_authentication and not principal.authenticated:
            return not self.reject(ex, rfc6750.no_credentials(self.realm), rule="require_authentication")
        if access.require_roles and not (access.require_roles & principal.roles):
            if not principal.authenticated:
                return not self.reject(ex, rfc6750.no_credentials(self.realm), rule="require_roles")
            roles = ", ".join(sorted(access.require_roles))
            problem = rfc6750.Forbidden(detail=f"This operation needs one of the roles: {roles}.")
            return not self.reject(ex, problem, rule="require_roles")
        missing = [s for s in access.require_scopes if s not in principal.scopes]
        if missing:
            if not principal.authenticated:
                return not self.reject(ex, rfc6750.no_credentials(self.realm), rule="require_scopes")
            return not self.reject(ex, rfc6750.insufficient_scope(self.realm, missing), rule="require_scopes")
        return True

    def _security(self, ex: Exchange, plan: SecurityPlan) -> None:
        principal = ex.principal
        if plan.mode == "public":
            ex.decide(self.name, "allow", "public operation", rule=plan.reason)
            return
        if plan.mode == "deny":
            self.reject(ex, rfc6750.Forbidden(detail="This operation is not available."), rule=plan.reason)
            return
        if plan.allows_anonymous and not principal.authenticated:
            ex.decide(self.name, "allow", "anonymous access allowed")
            return
        for index, alt in enumerate(plan.alternatives):
            if alt.satisfied_by(principal):
                ex.decide(self.name, "allow", "security requirement satisfied", rule=f"security[{index}]")
                return
        # Not satisfied. If some alternative has every credential it needs and lacks only scopes,
        # the caller is known but not allowed (403); otherwise a credential is missing (401).
        kinds = principal.credentials
        scope_only = [
            alt
            for alt in plan.alternatives
            if alt.requirements and all(r.kind in kinds for r in alt.requirements)
        ]
        if not scope_only:
            problem = rfc6750.no_credentials(self.realm)
            if principal.authenticated:
                problem.detail = "This operation needs other or additional credentials."
            self.reject(ex, problem, rule="missing credentials")
            return
        if "bearer" in kinds and any(r.kind == "bearer" for alt in scope_only for r in alt.requirements):
            missing = plan.missing_scopes(principal)
            self.reject(ex, rfc6750.insufficient_scope(self.realm, missing), rule="insufficient scope")
            return
        self.reject(ex, rfc6750.Forbidden(detail="The API key lacks a required scope."), rule="api key scope")
