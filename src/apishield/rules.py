"""Compiling the ``authorization:`` policy into the plans of the authorization stages.

Runs once at start (and in ``apishield check``). Every CEL rule is compiled
(:mod:`apishield.cel`) with the variables its phase may see; a syntax error
or an unknown variable is reported with the policy file's line and the
column inside the expression. Pre-checks must name a GET operation whose
path parameters the write operation provides. Property permissions are
compiled into guards per request and response media type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apishield.config.load import ConfigIssue, LoadedConfig
from apishield.core.activation import RULE_VARIABLES
from apishield.core.stages.object_access import CompiledRule, ItemsPlan, OperationAccess, PrecheckPlan
from apishield.core.stages.property_access import OperationGuards
from apishield.openapi.compile import CompiledAPI, media_kind
from apishield.openapi.document import follow_refs, resolve_pointer
from apishield.openapi.guards import PropertyPermission, compile_guard

__all__ = ["AuthorizationPlans", "compile_authorization"]

REQUEST_VARS = RULE_VARIABLES - {"response", "item", "resource"}


@dataclass
class AuthorizationPlans:
    operations: dict[str, OperationAccess] = field(default_factory=dict)
    guards: dict[str, OperationGuards] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)


class _Compiler:
    def __init__(self, loaded: LoadedConfig, api: CompiledAPI) -> None:
        self.loaded = loaded
        self.api = api
        self.policy = loaded.config.authorization
        self.doc = loaded.document
        self.issues: list[ConfigIssue] = []

    def error(self, path: tuple[str | int, ...], message: str, severity: str = "error") -> None:
        self.issues.append(ConfigIssue(self.doc.source, self.doc.line_of(path), path, message, severity))  # type: ignore[arg-type]

    def rule(
        self, source: str, path: tuple[str | int, ...], variables: frozenset[str]
    ) -> CompiledRule | None:
        from apishield.cel import CELCompileError, CELSyntaxError, compile_expression

        try:
            expression = compile_expression(source, variables=variables)
        except (CELSyntaxError, CELCompileError) as exc:
            self.error(path, f"CEL: {exc}")
            return None
        return CompiledRule(".".join(str(p) for p in path), source, expression)

    def operations(self) -> dict[str, OperationAccess]:
        out: dict[str, OperationAccess] = {}
        for op_id, rules in self.policy.operations.items():
            base: tuple[str | int, ...] = ("authorization", "operations", op_id)
            op = self.api.operations.get(op_id)
            if op is None:
                self.error(base, f"no operation {op_id!r} in the OpenAPI document")
                continue
            request_rule = response_rule = None
            if rules.allow_if is not None:
                compiled = self.rule(
                    rules.allow_if, (*base, "allow_if"), RULE_VARIABLES - {"item", "resource"}
                )
                if compiled is not None and "response" in compiled.variables:
                    response_rule = compiled
                else:
                    request_rule = compiled
            precheck = None
            if rules.precheck is not None:
                precheck = self.precheck(
                    op_id, rules.precheck.operation, rules.precheck.allow_if, (*base, "precheck")
                )
            items = None
            if rules.items is not None:
                item_rule = self.rule(
                    rules.items.allow_if, (*base, "items", "allow_if"), REQUEST_VARS | {"item"}
                )
                if item_rule is not None:
                    items = ItemsPlan(item_rule, rules.items.pointer, rules.items.on_denied)
            out[op_id] = OperationAccess(
                deny=rules.deny,
                require_authentication=rules.require_authentication,
                require_roles=frozenset(rules.require_roles),
                require_scopes=tuple(rules.require_scopes),
                request_rule=request_rule,
                response_rule=response_rule,
                precheck=precheck,
                items=items,
                denied_status=rules.denied_status or self.policy.denied_status,
            )
        return out

    def precheck(
        self, op_id: str, read_id: str, source: str, path: tuple[str | int, ...]
    ) -> PrecheckPlan | None:
        write = self.api.operations[op_id]
        read = self.api.operations.get(read_id)
        if read is None:
            self.error((*path, "operation"), f"no operation {read_id!r} in the OpenAPI document")
            return None
        if read.method != "GET":
            self.error(
                (*path, "operation"), f"{read_id} is a {read.method}; a pre-check reads with a GET operation"
            )
            return None
        needed = {p.name for p in read.params if p.location == "path"}
        available = {p.name for p in write.params if p.location == "path"}
        if not needed <= available:
            missing = ", ".join(sorted(needed - available))
            self.error(
                (*path, "operation"), f"{op_id} has no path parameter(s) {missing} to read {read_id} with"
            )
            return None
        rule = self.rule(source, (*path, "allow_if"), REQUEST_VARS | {"resource"})
        return PrecheckPlan(read.template, rule) if rule is not None else None

    # -- properties ----------------------------------------------------------------------------
    def permissions(self) -> dict[str, dict[str, PropertyPermission]]:
        schemas = (self.api.document.data.get("components") or {}).get("schemas") or {}
        out: dict[str, dict[str, PropertyPermission]] = {}
        for schema_name, props in self.policy.properties.items():
            base: tuple[str | int, ...] = ("authorization", "properties", schema_name)
            if schema_name not in schemas:
                self.error(base, f"no schema {schema_name!r} in components.schemas")
                continue
            declared = _declared(schemas[schema_name], self.api.document.data)
            for prop, rule in props.items():
                if prop not in declared:
                    self.error((*base, prop), f"{schema_name} has no property {prop!r}", "warning")
                read_if = None
                if rule.read_if is not None:
                    read_if = self.rule(
                        rule.read_if, (*base, prop, "read_if"), frozenset({"item", "token", "principal"})
                    )
                out.setdefault(schema_name, {})[prop] = PropertyPermission(
                    read=frozenset(rule.read) if rule.read is not None else None,
                    write=frozenset(rule.write) if rule.write is not None else None,
                    read_if=read_if,
                )
        return out

    def deref(self, ref: str) -> Any:
        return resolve_pointer(self.api.document.data, ref)

    def guards(self, permissions: dict[str, dict[str, PropertyPermission]]) -> dict[str, OperationGuards]:
        def doc_rule(source: str, where: str) -> Any:
            return self.rule(source, ("openapi", where), frozenset({"item", "token", "principal"}))

        out: dict[str, OperationGuards] = {}
        for op_id, op in self.api.operations.items():
            guards = OperationGuards()
            body = follow_refs(self.api.document.data, op.raw.get("requestBody"))
            for media_type, media in ((body or {}).get("content") or {}).items():
                mt = media_type.split(";", 1)[0].strip().lower()
                if media_kind(mt) == "json" and isinstance(media, dict) and "schema" in media:
                    g = compile_guard(media["schema"], self.deref, "write", permissions, doc_rule)
                    if g is not None:
                        guards.write[mt] = g
            for code, resp in (op.raw.get("responses") or {}).items():
                resp = follow_refs(self.api.document.data, resp)
                key = str(code).upper() if str(code) != "default" else "default"
                for media_type, media in ((resp or {}).get("content") or {}).items():
                    mt = media_type.split(";", 1)[0].strip().lower()
                    if media_kind(mt) == "json" and isinstance(media, dict) and "schema" in media:
                        g = compile_guard(media["schema"], self.deref, "read", permissions, doc_rule)
                        if g is not None:
                            guards.read[(key, mt)] = g
            if guards.write or guards.read:
                out[op_id] = guards
        return out


def _declared(schema: Any, document: Any) -> set[str]:
    schema = follow_refs(document, schema)
    if not isinstance(schema, dict):
        return set()
    names = set((schema.get("properties") or {}).keys())
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, ()) or ():
            names |= _declared(sub, document)
    return names


def compile_authorization(loaded: LoadedConfig, api: CompiledAPI) -> AuthorizationPlans:
    compiler = _Compiler(loaded, api)
    operations = compiler.operations()
    guards = compiler.guards(compiler.permissions())
    return AuthorizationPlans(operations, guards, compiler.issues)
