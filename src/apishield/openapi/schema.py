"""Compiled JSON Schema validators and safe violation messages.

Validators are compiled once at start with jsonschema-rs (Draft 2020-12,
``format`` asserted, RFC 3339 / RFC 5321 / RFC 4122 / RFC 3986 formats).
Patterns use the linear-time regex engine; a pattern that needs backtracking
(look-around, back-references) is compiled with a backtracking limit instead
and reported as a warning by ``apishield check``.

Violation reasons never contain the offending value: error messages from the
engine quote the instance (``"x" is not a "email"``), so reasons are rebuilt
from the error kind. A client must not be able to make the gateway echo
attacker-controlled text into logs or responses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jsonschema_rs

from apishield.problem import Violation

__all__ = ["CompiledSchema", "SchemaCompileError", "compile_schema"]

_FLAG_REASON = {
    "request": "is read-only and must not be sent",
    "response": "is write-only and must not be returned",
}


class SchemaCompileError(ValueError):
    pass


def _pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class CompiledSchema:
    """A validator that yields :class:`Violation` objects."""

    __slots__ = ("_validator", "direction", "location", "uses_backtracking")

    def __init__(
        self,
        validator: Any,
        location: str,
        direction: Literal["request", "response"],
        uses_backtracking: bool,
    ) -> None:
        self._validator = validator
        self.location = location
        self.direction = direction
        self.uses_backtracking = uses_backtracking

    def is_valid(self, instance: Any) -> bool:
        return bool(self._validator.is_valid(instance))

    def violations(self, instance: Any, limit: int = 20, split_location: bool = False) -> list[Violation]:
        if self._validator.is_valid(instance):
            return []  # the common case: is_valid is several times cheaper than iter_errors
        out: list[Violation] = []
        for err in self._validator.iter_errors(instance):
            path = list(err.instance_path)
            location = self.location
            if split_location and path:
                location = str(path.pop(0))
            out.extend(self._explain(err, path, location, instance))
            if len(out) >= limit:
                break
        return out[:limit]

    def _explain(self, err: Any, path: list[str | int], location: str, root: Any) -> list[Violation]:
        kind = err.kind
        name = type(kind).__name__
        pointer = _pointer(path)
        if name == "AdditionalProperties":
            return [
                Violation(_pointer([*path, str(p)]), "is not a documented property", location)
                for p in kind.unexpected
            ]
        if name == "Required":
            return [Violation(_pointer([*path, str(kind.property)]), "is required", location)]
        if name == "FalseSchema":
            schema_path = list(err.schema_path)
            if schema_path and schema_path[-1] == "additionalProperties":
                # A closed object without `properties`: every member is undocumented. The engine
                # reports this once, at the object, so the members are named from the instance.
                target = _at(root, list(err.instance_path))
                if isinstance(target, dict) and target:
                    return [
                        Violation(_pointer([*path, str(k)]), "is not a documented property", location, name)
                        for k in target
                    ]
                return [Violation(pointer, "is not a documented property", location, name)]
            if len(schema_path) >= 2 and schema_path[-2] == "properties":
                return [Violation(pointer, _FLAG_REASON[self.direction], location)]
            return [Violation(pointer, "is not allowed here", location)]
        return [Violation(pointer, _reason(name, kind), location, name)]


def _at(root: Any, path: list[str | int]) -> Any:
    node = root
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _reason(name: str, kind: Any) -> str:
    limit = getattr(kind, "limit", None)
    reasons: dict[str, Callable[[], str]] = {
        "Type": lambda: "must be of type " + " or ".join(_types(kind)),
        "MaxLength": lambda: f"must be at most {limit} characters long",
        "MinLength": lambda: f"must be at least {limit} characters long",
        "Maximum": lambda: f"must be at most {limit}",
        "Minimum": lambda: f"must be at least {limit}",
        "ExclusiveMaximum": lambda: f"must be less than {limit}",
        "ExclusiveMinimum": lambda: f"must be greater than {limit}",
        "MaxItems": lambda: f"must have at most {limit} items",
        "MinItems": lambda: f"must have at least {limit} items",
        "MaxProperties": lambda: f"must have at most {limit} properties",
        "MinProperties": lambda: f"must have at least {limit} properties",
        "Enum": lambda: "must be one of the documented values",
        "Constant": lambda: "must equal the documented constant",
        "Pattern": lambda: f"must match the pattern {kind.pattern}",
        "Format": lambda: f"must be a valid {getattr(kind, 'format', 'value')}",
        "UniqueItems": lambda: "items must be unique",
        "MultipleOf": lambda: "must be a multiple of the documented factor",
        "AnyOf": lambda: "must match at least one documented alternative",
        "OneOfNotValid": lambda: "must match exactly one documented alternative",
        "OneOfMultipleValid": lambda: "matches more than one documented alternative",
        "Not": lambda: "matches a schema it must not match",
        "BacktrackLimitExceeded": lambda: "could not be checked against its pattern in bounded time",
    }
    make = reasons.get(name)
    return make() if make else f"violates the '{name}' rule"


def _types(kind: Any) -> list[str]:
    types = getattr(kind, "types", None) or []
    return [str(t) for t in types] or ["the documented type"]


def compile_schema(
    schema: Any,
    components: dict[str, Any] | None,
    *,
    location: str,
    direction: Literal["request", "response"],
) -> CompiledSchema:
    """Compile ``schema``; ``components`` are embedded so ``#/components/...`` refs resolve."""
    root: Any = schema
    if components is not None and isinstance(schema, dict):
        root = {**schema, "components": components}
    backtracking = False
    try:
        validator = jsonschema_rs.Draft202012Validator(
            root, validate_formats=True, pattern_options=jsonschema_rs.RegexOptions()
        )
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        try:
            validator = jsonschema_rs.Draft202012Validator(
                root,
                validate_formats=True,
                pattern_options=jsonschema_rs.FancyRegexOptions(backtrack_limit=10_000),
            )
            backtracking = True
        except (jsonschema_rs.ValidationError, ValueError, jsonschema_rs.ReferencingError):
            raise SchemaCompileError(_first_line(str(exc))) from None
    except jsonschema_rs.ReferencingError as exc:
        raise SchemaCompileError(_first_line(str(exc))) from None
    return CompiledSchema(validator, location, direction, backtracking)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "invalid schema"
