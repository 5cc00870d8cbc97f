"""Parameter deserialisation: OpenAPI styles to typed values.

OAS 3.1 §4.8.12.4 (Style Values) defines how path, query, header and cookie
parameters are serialised; RFC 6570 gives the expansion rules they come from.
Supported: path ``simple`` (and ``label``/``matrix`` refused as ambiguous
with our path normalisation), query ``form`` (explode true/false),
``spaceDelimited``, ``pipeDelimited`` and ``deepObject``, header ``simple``,
cookie ``form``, and ``content``-encoded (JSON) parameters.

Values arrive as strings and are coerced by the parameter's schema type
before validation (``"42"`` becomes ``42`` for an integer). A value that does
not coerce is left a string, so the JSON Schema validator reports the type
error with the parameter's location. Coercion is strict: ``007`` is not the
integer 7 and ``1e3`` is not an integer; ``true``/``false`` only for booleans.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from apishield.jsonstrict import JSONRejected, parse

__all__ = ["ParamSpec", "coerce", "schema_types"]

Location = Literal["path", "query", "header", "cookie"]

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


def schema_types(schema: Any, deref: Callable[[str], Any]) -> set[str]:
    """The JSON types a schema admits, looking through ``$ref`` and combinators."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 16:
        schema = deref(schema["$ref"])
        seen += 1
    if not isinstance(schema, dict):
        return set()
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    out: set[str] = set()
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, ()) or ():
            out |= schema_types(sub, deref)
    if not out and ("properties" in schema or "additionalProperties" in schema):
        out.add("object")
    if not out and ("items" in schema or "prefixItems" in schema):
        out.add("array")
    return out


def coerce(value: str, types: set[str] | frozenset[str]) -> Any:
    """Coerce a string by the first type it fits; return it unchanged otherwise."""
    if "integer" in types and _INT.match(value) and len(value) <= 40:
        return int(value)
    if "number" in types and _NUM.match(value) and len(value) <= 400:
        number = float(value)
        if math.isfinite(number):
            return int(value) if _INT.match(value) and len(value) <= 40 else number
    if "boolean" in types and value in ("true", "false"):
        return value == "true"
    if "null" in types and value == "" and "string" not in types:
        return None
    return value


@dataclass
class ParamSpec:
    """One compiled parameter of an operation."""

    name: str
    location: Location
    required: bool
    style: str
    explode: bool
    kind: Literal["primitive", "array", "object"]
    types: frozenset[str]
    item_types: frozenset[str] = frozenset()
    property_types: dict[str, frozenset[str]] = field(default_factory=dict)
    content_json: bool = False
    allow_empty_value: bool = False

    @property
    def key(self) -> str:
        """Name used in the parameters document (headers are case-insensitive)."""
        return self.name.lower() if self.location == "header" else self.name

    # -- single-string forms (path, header, cookie, form explode=false) ------------------------
    def from_string(self, raw: str) -> Any:
        if self.content_json:
            try:
                return parse(raw.encode("utf-8", "surrogatepass"), max_depth=32)
            except JSONRejected:
                return raw  # no single reading: validated (and refused) as a string
        if self.kind == "primitive":
            return coerce(raw, self.types)
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(self.style, ",")
        parts = raw.split(sep) if raw != "" else []
        if self.kind == "array":
            return [coerce(p, self.item_types) for p in parts]
        return self._object_from_parts(parts)

    def _object_from_parts(self, parts: list[str]) -> Any:
        out: dict[str, Any] = {}
        if self.explode:  # k=v,k=v
            for part in parts:
                k, sep, v = part.partition("=")
                if not sep or k in out:
                    return ",".join(parts)
                out[k] = coerce(v, self.property_types.get(k, frozenset({"string"})))
            return out
        if len(parts) % 2:
            return ",".join(parts)
        for k, v in zip(parts[::2], parts[1::2], strict=True):
            if k in out:
                return ",".join(parts)
            out[k] = coerce(v, self.property_types.get(k, frozenset({"string"})))
        return out

    # -- repeated query values (form explode=true arrays) --------------------------------------
    def from_values(self, values: list[str]) -> Any:
        if self.kind == "array" and self.style == "form" and self.explode:
            return [coerce(v, self.item_types) for v in values]
        return [self.from_string(v) for v in values]  # several values for a scalar: reported
