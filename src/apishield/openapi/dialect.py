"""OpenAPI Schema Objects to JSON Schema 2020-12, per direction.

OpenAPI 3.1 schemas are JSON Schema 2020-12 plus a vocabulary of
annotations (OAS 3.1 §4.8.24). OpenAPI 3.0 schemas are an *extended subset*
of an older draft (OAS 3.0.3 §4.7.24) and differ where it matters:

* ``nullable: true`` allows ``null`` (3.1 writes ``type: [T, "null"]``);
* ``exclusiveMinimum``/``exclusiveMaximum`` are booleans that modify
  ``minimum``/``maximum`` (2020-12 makes them numbers);
* ``$ref`` siblings are ignored.

Both versions also carry direction-dependent meaning (``readOnly`` and
``writeOnly``, OAS 3.0.3 §4.7.24.1, OAS 3.1 §4.8.24): a read-only property
"SHOULD NOT be sent as part of the request" and, if required, is required
only in responses; a write-only one is the mirror image. We compile one view
per direction: in the *request* view a read-only property's schema becomes
``false`` (sending it is a violation) and leaves ``required``; in the
*response* view the same happens to write-only properties.

Two hardening rules are added while we walk: formats that JSON Schema leaves
as annotations but OpenAPI defines as ranges (``int32``, ``int64``, ``byte``)
become assertions, and a string with no ``maxLength`` gets the policy's
``limits.max_string_length``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

__all__ = ["Direction", "SchemaTranslator"]

Direction = Literal["request", "response"]

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_SINGLE = (
    "additionalProperties",
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
    "additionalItems",
)
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

Deref = Callable[[str], Any]


class SchemaTranslator:
    """Translates schemas of one document for one direction."""

    def __init__(
        self, version: str, direction: Direction, deref: Deref, max_string_length: int | None
    ) -> None:
        self.version = version
        self.direction = direction
        self.deref = deref
        self.max_string_length = max_string_length
        self.hidden_flag = "readOnly" if direction == "request" else "writeOnly"

    # -- flags -----------------------------------------------------------------------------------
    def has_flag(self, schema: Any, flag: str, depth: int = 0) -> bool:
        if not isinstance(schema, dict) or depth > 8:
            return False
        if schema.get(flag) is True:
            return True
        ref = schema.get("$ref")
        if isinstance(ref, str):
            try:
                return self.has_flag(self.deref(ref), flag, depth + 1)
            except KeyError:
                return False
        return any(self.has_flag(s, flag, depth + 1) for s in schema.get("allOf", ()) if isinstance(s, dict))

    # -- translation -----------------------------------------------------------------------------
    def translate(self, schema: Any) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            return schema  # not a schema; the compiled validator reports it
        if "$ref" in schema and self.version == "3.0":
            return {"$ref": schema["$ref"]}
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: self.translate(v) for k, v in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.translate(v) for v in value]
            elif key in _SCHEMA_SINGLE:
                out[key] = self.translate(value)
            else:
                out[key] = value
        if self.version == "3.0":
            self._bounds_30(out)
        self._hide_properties(out)
        self._assert_formats(out)
        self._cap_strings(out)
        if self.version == "3.0":
            self._nullable_30(out)
        return out

    @staticmethod
    def _bounds_30(out: dict[str, Any]) -> None:
        for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            flag = out.get(exclusive)
            if isinstance(flag, bool):
                if flag and bound in out:
                    out[exclusive] = out.pop(bound)
                else:
                    del out[exclusive]

    @staticmethod
    def _nullable_30(out: dict[str, Any]) -> None:
        if out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
                if isinstance(out.get("enum"), list) and None not in out["enum"]:
                    out["enum"] = [*out["enum"], None]
            elif kind is None:
                rest = dict(out)
                out.clear()
                out["anyOf"] = [rest, {"type": "null"}]

    def _hide_properties(self, out: dict[str, Any]) -> None:
        props = out.get("properties")
        if not isinstance(props, dict):
            return
        hidden = [name for name, sub in props.items() if self.has_flag(sub, self.hidden_flag)]
        if not hidden:
            return
        for name in hidden:
            props[name] = False
        required = out.get("required")
        if isinstance(required, list):
            out["required"] = [r for r in required if r not in hidden]

    @staticmethod
    def _assert_formats(out: dict[str, Any]) -> None:
        fmt = out.get("format")
        if fmt in _INT_RANGES:
            low, high = _INT_RANGES[fmt]
            out.setdefault("minimum", low)
            out.setdefault("maximum", high)
        elif fmt == "byte" and "pattern" not in out:
            out["pattern"] = _BASE64

    def _cap_strings(self, out: dict[str, Any]) -> None:
        if self.max_string_length is None:
            return
        kind = out.get("type")
        is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
        if is_string and "maxLength" not in out and "enum" not in out and "const" not in out:
            out["maxLength"] = self.max_string_length
