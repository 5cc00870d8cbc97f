"""``apishield explain``: the effective requirements of each operation, as a reader wants them.

For every operation: how a caller authenticates and with which scopes
(from the document's security requirements), the policy's function-level
rules, object-level rules with their phase, property permissions, and the
limits that apply. Output is text (default) or JSON.
"""

from __future__ import annotations

from typing import Any

from apishield.openapi.document import resolve_pointer
from apishield.runtime import Runtime

__all__ = ["explain"]


def _security(runtime: Runtime, op_id: str) -> dict[str, Any]:
    plan = runtime.plans[op_id]
    if plan.mode != "required":
        return {"mode": plan.mode, "reason": plan.reason}
    alternatives = []
    for alt in plan.alternatives:
        if not alt.requirements:
            alternatives.append("anonymous")
            continue
        parts = []
        for req in alt.requirements:
            kind = {"bearer": "bearer token", "api_key": "API key"}.get(req.kind, f"unsupported {req.scheme}")
            parts.append(
                f"{kind} ({req.scheme})" + (f" with scopes {' '.join(req.scopes)}" if req.scopes else "")
            )
        alternatives.append(" AND ".join(parts))
    return {"mode": "required", "any_of": alternatives}


def _properties(runtime: Runtime, op_id: str) -> dict[str, Any]:
    guards = runtime.authz.guards.get(op_id)
    out: dict[str, Any] = {}
    if guards is not None:
        if guards.write:
            out["write_guarded_media"] = sorted(guards.write)
        if guards.read:
            out["read_guarded_responses"] = sorted(f"{k} {m}" for k, m in guards.read)
    policy = runtime.loaded.config.authorization.properties
    if policy:
        out["policy"] = {
            schema: {prop: rule.model_dump(exclude_none=True) for prop, rule in props.items()}
            for schema, props in policy.items()
        }
    return out


def _doc_permissions(runtime: Runtime) -> dict[str, dict[str, Any]]:
    schemas = (runtime.api.document.data.get("components") or {}).get("schemas") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, schema in schemas.items():
        for prop, sub in ((schema or {}).get("properties") or {}).items():
            if isinstance(sub, dict) and "$ref" in sub:
                try:
                    sub = resolve_pointer(runtime.api.document.data, sub["$ref"])
                except (KeyError, IndexError):
                    continue
            if not isinstance(sub, dict):
                continue
            perms = {k[len("x-apishield-") :]: v for k, v in sub.items() if k.startswith("x-apishield-")}
            if perms:
                out.setdefault(name, {})[prop] = perms
    return out


def explain(runtime: Runtime, operation: str | None = None) -> dict[str, Any]:
    config = runtime.loaded.config
    ops = runtime.api.operations
    if operation is not None and operation not in ops:
        raise KeyError(operation)
    result: dict[str, Any] = {}
    for op_id, op in ops.items():
        if operation is not None and op_id != operation:
            continue
        access = runtime.authz.operations.get(op_id)
        entry: dict[str, Any] = {
            "method": op.method,
            "path": op.template,
            "authentication": _security(runtime, op_id),
        }
        if access is not None:
            function = {
                "deny": access.deny,
                "require_authentication": access.require_authentication,
                "require_roles": sorted(access.require_roles),
                "require_scopes": list(access.require_scopes),
            }
            entry["function_level"] = {k: v for k, v in function.items() if v}
            rules = {}
            if access.request_rule:
                rules["before forwarding"] = access.request_rule.source
            if access.response_rule:
                rules["on the answer"] = access.response_rule.source
            if access.precheck:
                rules[f"pre-check (reads {access.precheck.read_template})"] = access.precheck.rule.source
            if access.items:
                rules[f"per list item ({access.items.on_denied})"] = access.items.rule.source
            if rules:
                entry["object_level"] = rules
                entry["denied_status"] = access.denied_status
        props = _properties(runtime, op_id)
        if props:
            entry["property_level"] = props
        op_policy = config.operations.get(op_id)
        entry["validation"] = {
            "requests": (op_policy.validation.requests if op_policy else None) or config.validation.requests,
            "responses": (op_policy.validation.responses if op_policy else None)
            or config.validation.responses,
        }
        entry["limits"] = {
            "max_body_bytes": config.limits.max_body_bytes,
            "max_json_depth": config.limits.max_json_depth,
        }
        if op_policy and op_policy.uniform_failure:
            entry["uniform_failure"] = op_policy.uniform_failure.status
        result[op_id] = entry
    doc_perms = _doc_permissions(runtime)
    if doc_perms and operation is None:
        result["x-apishield property permissions in the document"] = doc_perms
    return result


def render_text(data: dict[str, Any]) -> str:
    lines: list[str] = []

    def walk(value: Any, indent: int) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)) and v:
                    lines.append(f"{pad}{k}:")
                    walk(v, indent + 1)
                else:
                    lines.append(f"{pad}{k}: {v}")
        elif isinstance(value, list):
            for v in value:
                lines.append(f"{pad}- {v}")

    for op_id, entry in data.items():
        head = f"{entry['method']} {entry['path']}" if "method" in entry else ""
        lines.append(f"{op_id}  {head}".rstrip())
        walk({k: v for k, v in entry.items() if k not in ("method", "path")}, 1)
        lines.append("")
    return "\n".join(lines)
