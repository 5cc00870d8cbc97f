"""Compiling an OpenAPI document into a router and per-operation checks.

This runs once at start (and in ``apishield check``). Everything a request
needs at run time is precomputed here: the route tree, one parameters
validator per operation (path, query, header and cookie parameters validated
in one call), one body validator per request media type, and a validator plus
a stripper per documented response. Problems in the document are collected as
:class:`CompileIssue` with the location in the document, not raised one by
one, so ``apishield check`` can list them all.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from apishield.openapi.dialect import Direction, SchemaTranslator
from apishield.openapi.document import BUNDLE_KEY, OpenAPIDocument, resolve_pointer
from apishield.openapi.params import ParamSpec, schema_types
from apishield.openapi.router import RouteConflict, Router
from apishield.openapi.schema import CompiledSchema, SchemaCompileError, compile_schema
from apishield.openapi.strip import Stripper, compile_stripper

__all__ = ["BodySpec", "CompileIssue", "CompiledAPI", "MediaSpec", "Operation", "ResponseSpec", "compile_api"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class CompileIssue:
    path: tuple[str | int, ...]
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass
class MediaSpec:
    media_type: str
    kind: Literal["json", "form", "opaque"]
    validator: CompiledSchema | None = None
    stripper: Stripper | None = None
    property_types: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class BodySpec:
    required: bool
    media: dict[str, MediaSpec]

    def match(self, content_type: str) -> MediaSpec | None:
        """Exact media type first, then ``type/*``, then ``*/*`` (OAS §4.8.14)."""
        spec = self.media.get(content_type)
        if spec is not None:
            return spec
        major = content_type.split("/", 1)[0]
        return self.media.get(major + "/*") or self.media.get("*/*")


@dataclass
class ResponseSpec:
    key: str
    media: dict[str, MediaSpec]


@dataclass
class Operation:
    operation_id: str
    method: str  # upper case
    template: str
    params: list[ParamSpec]
    params_validator: CompiledSchema | None
    known_query: frozenset[str]
    deep_objects: frozenset[str]
    body: BodySpec | None
    responses: dict[str, ResponseSpec]
    security: list[dict[str, list[str]]] | None
    raw: dict[str, Any]

    def response_for(self, status: int) -> ResponseSpec | None:
        code = str(status)
        return self.responses.get(code) or self.responses.get(code[0] + "XX") or self.responses.get("default")


@dataclass
class CompiledAPI:
    document: OpenAPIDocument
    router: Router[dict[str, Operation]]
    operations: dict[str, Operation]
    issues: list[CompileIssue]


def media_kind(media_type: str) -> Literal["json", "form", "opaque"]:
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json"
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    return "opaque"


class _Compiler:
    def __init__(self, doc: OpenAPIDocument, max_string_length: int | None) -> None:
        self.doc = doc
        self.data = doc.data
        self.issues: list[CompileIssue] = []
        raw_components = self.data.get("components") or {}
        self.views: dict[Direction, dict[str, Any]] = {}
        self.translators: dict[Direction, SchemaTranslator] = {}
        for direction in ("request", "response"):
            tr = SchemaTranslator(doc.version, direction, self.deref, max_string_length)
            view = dict(raw_components) if isinstance(raw_components, dict) else {}
            for key in ("schemas", BUNDLE_KEY):
                section = view.get(key)
                if isinstance(section, dict):
                    view[key] = {name: tr.translate(copy.deepcopy(s)) for name, s in section.items()}
            self.views[direction] = view
            self.translators[direction] = tr

    def deref(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise KeyError(ref)
        return resolve_pointer(self.data, ref)

    def deref_view(self, direction: Direction) -> Any:
        root = {"components": self.views[direction]}

        def deref(ref: str) -> Any:
            try:
                return resolve_pointer(root, ref)
            except (KeyError, IndexError):
                return resolve_pointer(self.data, ref)

        return deref

    def follow(self, node: Any, path: tuple[str | int, ...]) -> Any:
        """Resolve a non-schema object that may be a ``$ref`` (parameters, responses...)."""
        hops = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            hops += 1
            if hops > 32:
                self.issues.append(CompileIssue(path, "reference cycle"))
                return None
            try:
                node = self.deref(node["$ref"])
            except (KeyError, IndexError):
                self.issues.append(CompileIssue(path, f"$ref {node['$ref']!r} does not resolve"))
                return None
        return node

    def schema(self, schema: Any, direction: Direction, path: tuple[str | int, ...], location: str) -> Any:
        return self.translators[direction].translate(copy.deepcopy(schema))

    def validator(
        self, schema: Any, direction: Direction, path: tuple[str | int, ...], location: str
    ) -> CompiledSchema | None:
        try:
            compiled = compile_schema(schema, self.views[direction], location=location, direction=direction)
        except SchemaCompileError as exc:
            self.issues.append(CompileIssue(path, f"schema cannot be compiled: {exc}"))
            return None
        if compiled.uses_backtracking:
            self.issues.append(
                CompileIssue(
                    path, "a pattern needs a backtracking regex engine; checked with a step limit", "warning"
                )
            )
        return compiled

    # -- operations ----------------------------------------------------------------------------
    def compile(self) -> CompiledAPI:
        router: Router[dict[str, Operation]] = Router()
        operations: dict[str, Operation] = {}
        paths = self.data.get("paths") or {}
        global_security = self.data.get("security")
        for template, item in paths.items():
            if template.startswith("x-"):
                continue
            item = self.follow(item, ("paths", template))
            if not isinstance(item, dict):
                continue
            by_method: dict[str, Operation] = {}
            for method in METHODS:
                raw = item.get(method)
                if not isinstance(raw, dict):
                    continue
                path = ("paths", template, method)
                op = self.operation(template, method, item, raw, global_security, path)
                if op.operation_id in operations:
                    self.issues.append(
                        CompileIssue((*path, "operationId"), f"duplicate operationId {op.operation_id!r}")
                    )
                operations[op.operation_id] = op
                by_method[op.method] = op
            try:
                router.add(template, by_method)
            except RouteConflict as exc:
                self.issues.append(CompileIssue(("paths", template), str(exc)))
        return CompiledAPI(self.doc, router, operations, self.issues)

    def operation(
        self,
        template: str,
        method: str,
        item: dict[str, Any],
        raw: dict[str, Any],
        global_security: Any,
        path: tuple[str | int, ...],
    ) -> Operation:
        op_id = raw.get("operationId")
        if not isinstance(op_id, str) or not op_id:
            op_id = f"{method.upper()} {template}"
            self.issues.append(
                CompileIssue(path, f"no operationId; policies refer to it as {op_id!r}", "warning")
            )
        params = self.parameters(template, item, raw, path)
        body = self.request_body(raw.get("requestBody"), (*path, "requestBody"))
        responses = self.responses(raw.get("responses") or {}, (*path, "responses"))
        security = raw.get("security", global_security)
        specs = [p for p, _ in params]
        validator = self.params_validator(params, path)
        known = frozenset(
            p.name for p in specs if p.location == "query" and not (p.kind == "object" and p.explode)
        )
        known |= frozenset(
            name
            for p in specs
            if p.location == "query" and p.kind == "object" and p.explode and p.style == "form"
            for name in p.property_types
        )
        deep = frozenset(p.name for p in specs if p.location == "query" and p.style == "deepObject")
        return Operation(
            operation_id=op_id,
            method=method.upper(),
            template=template,
            params=specs,
            params_validator=validator,
            known_query=known,
            deep_objects=deep,
            body=body,
            responses=responses,
            security=security if isinstance(security, list) else None,
            raw=raw,
        )

    def parameters(
        self, template: str, item: dict[str, Any], raw: dict[str, Any], path: tuple[str | int, ...]
    ) -> list[tuple[ParamSpec, Any]]:
        merged: dict[tuple[str, str], tuple[Any, tuple[str | int, ...]]] = {}
        for source, where in (
            (item.get("parameters"), ("paths", template, "parameters")),
            (raw.get("parameters"), (*path, "parameters")),
        ):
            for i, p in enumerate(source or ()):
                p = self.follow(p, (*where, i))
                if not isinstance(p, dict) or "name" not in p or "in" not in p:
                    if p is not None:
                        self.issues.append(CompileIssue((*where, i), "a parameter needs 'name' and 'in'"))
                    continue
                merged[(p["name"], p["in"])] = (p, (*where, i))
        out: list[tuple[ParamSpec, Any]] = []
        deref = self.deref_view("request")
        template_params = set(re.findall(r"\{([^{}/]+)\}", template))
        for (name, location), (p, where) in merged.items():
            if location not in ("path", "query", "header", "cookie"):
                self.issues.append(CompileIssue((*where, "in"), f"unknown parameter location {location!r}"))
                continue
            if location == "header" and name.lower() in ("accept", "content-type", "authorization"):
                continue  # OAS: these header parameters are ignored
            content_json = False
            schema = p.get("schema")
            if schema is None and isinstance(p.get("content"), dict) and p["content"]:
                media_type, media = next(iter(p["content"].items()))
                schema = (media or {}).get("schema", {})
                content_json = media_kind(media_type.lower()) == "json"
            schema = self.schema(schema if schema is not None else {}, "request", where, location)
            types = schema_types(schema, deref)
            kind: Literal["primitive", "array", "object"] = (
                "array" if types == {"array"} else "object" if types == {"object"} else "primitive"
            )
            default_style = {"path": "simple", "header": "simple", "query": "form", "cookie": "form"}[
                location
            ]
            style = p.get("style", default_style)
            if location == "path" and style != "simple":
                self.issues.append(
                    CompileIssue((*where, "style"), f"path style {style!r} is not supported; use simple")
                )
            explode = bool(p.get("explode", style == "form"))
            item_types: frozenset[str] = frozenset()
            prop_types: dict[str, frozenset[str]] = {}
            resolved = schema
            while isinstance(resolved, dict) and "$ref" in resolved:
                resolved = deref(resolved["$ref"])
            if kind == "array" and isinstance(resolved, dict):
                item_types = frozenset(schema_types(resolved.get("items", {}), deref)) or frozenset(
                    {"string"}
                )
            if kind == "object" and isinstance(resolved, dict):
                for pname, psub in (resolved.get("properties") or {}).items():
                    prop_types[pname] = frozenset(schema_types(psub, deref)) or frozenset({"string"})
            required = bool(p.get("required", False)) or location == "path"
            if location == "path" and name not in template_params:
                self.issues.append(
                    CompileIssue(where, f"path parameter {name!r} is not in the path template")
                )
            spec = ParamSpec(
                name=name,
                location=location,  # type: ignore[arg-type]  # checked above
                required=required,
                style=style,
                explode=explode,
                kind=kind,
                types=frozenset(types) or frozenset({"string"}),
                item_types=item_types,
                property_types=prop_types,
                content_json=content_json,
                allow_empty_value=bool(p.get("allowEmptyValue", False)),
            )
            out.append((spec, schema))
        return out

    def params_validator(
        self, params: list[tuple[ParamSpec, Any]], path: tuple[str | int, ...]
    ) -> CompiledSchema | None:
        if not params:
            return None
        groups: dict[str, dict[str, Any]] = {}
        for spec, schema in params:
            g = groups.setdefault(spec.location, {"type": "object", "properties": {}, "required": []})
            g["properties"][spec.key] = schema
            if spec.required:
                g["required"].append(spec.key)
        document = {"type": "object", "properties": groups}
        return self.validator(document, "request", (*path, "parameters"), "parameters")

    def request_body(self, raw: Any, path: tuple[str | int, ...]) -> BodySpec | None:
        body = self.follow(raw, path)
        if not isinstance(body, dict):
            return None
        media: dict[str, MediaSpec] = {}
        deref = self.deref_view("request")
        for media_type, obj in (body.get("content") or {}).items():
            mt = media_type.split(";", 1)[0].strip().lower()
            kind = media_kind(mt)
            spec = MediaSpec(mt, kind)
            schema = (obj or {}).get("schema")
            if schema is not None and kind != "opaque":
                translated = self.schema(schema, "request", (*path, "content", media_type), "body")
                spec.validator = self.validator(
                    translated, "request", (*path, "content", media_type, "schema"), "body"
                )
                if kind == "form":
                    resolved = translated
                    while isinstance(resolved, dict) and "$ref" in resolved:
                        resolved = deref(resolved["$ref"])
                    for pname, psub in ((resolved or {}).get("properties") or {}).items():
                        spec.property_types[pname] = frozenset(schema_types(psub, deref)) or frozenset(
                            {"string"}
                        )
            media[mt] = spec
        return BodySpec(required=bool(body.get("required", False)), media=media)

    def responses(self, raw: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, ResponseSpec]:
        out: dict[str, ResponseSpec] = {}
        deref = self.deref_view("response")
        for code, resp in raw.items():
            if str(code).startswith("x-"):
                continue
            key = str(code).upper() if str(code) != "default" else "default"
            resp = self.follow(resp, (*path, str(code)))
            if not isinstance(resp, dict):
                continue
            media: dict[str, MediaSpec] = {}
            for media_type, obj in (resp.get("content") or {}).items():
                mt = media_type.split(";", 1)[0].strip().lower()
                kind = media_kind(mt)
                spec = MediaSpec(mt, kind)
                schema = (obj or {}).get("schema")
                if schema is not None and kind == "json":
                    translated = self.schema(schema, "response", (*path, str(code)), "response")
                    where = (*path, str(code), "content", media_type, "schema")
                    spec.validator = self.validator(translated, "response", where, "response")
                    spec.stripper = compile_stripper(translated, deref)
                media[mt] = spec
            out[key] = ResponseSpec(key, media)
        return out


def compile_api(doc: OpenAPIDocument, max_string_length: int | None = 65_536) -> CompiledAPI:
    return _Compiler(doc, max_string_length).compile()
