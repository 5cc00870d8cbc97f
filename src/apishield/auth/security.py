"""Security requirements from the OpenAPI document (OAS 3.1 §4.8.30, §4.8.27).

An operation's ``security`` (or the document's global one) is a list of
alternatives (OR); each alternative maps scheme names to the scopes it
needs (AND). ``security: []`` makes the operation public; an empty
alternative ``{}`` lets anonymous callers in.

apishield adds one rule of its own: an operation with no requirement at all
(neither its own nor a global one) is **denied** unless the policy lists it in
``auth.public_operations``. A forgotten ``security`` block must not publish
an operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from apishield.auth.principal import Principal

__all__ = ["Alternative", "Requirement", "SecurityPlan", "compile_security"]

Kind = Literal["bearer", "api_key", "mtls", "unsupported"]


@dataclass(frozen=True)
class Requirement:
    scheme: str
    kind: Kind
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Alternative:
    requirements: tuple[Requirement, ...]

    def satisfied_by(self, principal: Principal) -> bool:
        for req in self.requirements:
            if req.kind == "bearer":
                if "bearer" not in principal.credentials or not set(req.scopes) <= principal.scopes:
                    return False
            elif req.kind == "api_key":
                if "api_key" not in principal.credentials or not set(req.scopes) <= principal.api_key_scopes:
                    return False
            elif req.kind == "mtls":
                if "mtls" not in principal.credentials:
                    return False
            else:
                return False
        return True


@dataclass(frozen=True)
class SecurityPlan:
    """What one operation requires, compiled once."""

    mode: Literal["public", "deny", "required"]
    alternatives: tuple[Alternative, ...] = ()
    reason: str = ""

    @property
    def allows_anonymous(self) -> bool:
        return self.mode == "public" or any(not a.requirements for a in self.alternatives)

    def accepts(self, kind: Kind) -> bool:
        return any(r.kind == kind for a in self.alternatives for r in a.requirements)

    def missing_scopes(self, principal: Principal) -> list[str]:
        """Scopes of the first bearer alternative the principal comes closest to."""
        best: list[str] | None = None
        for alt in self.alternatives:
            missing = [
                s
                for r in alt.requirements
                if r.kind == "bearer"
                for s in r.scopes
                if s not in principal.scopes
            ]
            if any(r.kind == "bearer" for r in alt.requirements) and (
                best is None or len(missing) < len(best)
            ):
                best = missing
        return best or []


def scheme_kind(scheme: Any) -> Kind:
    if not isinstance(scheme, dict):
        return "unsupported"
    kind = scheme.get("type")
    if kind in ("oauth2", "openIdConnect"):
        return "bearer"
    if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
        return "bearer"
    if kind == "apiKey":
        return "api_key"
    if kind == "mutualTLS":
        return "mtls"
    return "unsupported"


def compile_security(
    security: list[dict[str, list[str]]] | None, schemes: dict[str, Any], public: bool
) -> tuple[SecurityPlan, list[str]]:
    """Compile one operation's requirements; returns the plan and any problems found."""
    problems: list[str] = []
    if public:
        return SecurityPlan("public", reason="listed in auth.public_operations"), problems
    if security is None:
        return SecurityPlan("deny", reason="no security requirement (default deny)"), problems
    if security == []:
        return SecurityPlan("public", reason="security: [] in the document"), problems
    alternatives = []
    for alt in security:
        reqs = []
        for name, scopes in (alt or {}).items():
            scheme = schemes.get(name)
            if scheme is None:
                problems.append(f"security scheme {name!r} is not defined in components.securitySchemes")
            kind = scheme_kind(scheme)
            if kind == "unsupported" and scheme is not None:
                problems.append(
                    f"security scheme {name!r} ({scheme.get('type')}) is not enforced yet; it never matches"
                )
            reqs.append(Requirement(name, kind, tuple(scopes or ())))
        alternatives.append(Alternative(tuple(reqs)))
    return SecurityPlan("required", tuple(alternatives)), problems
