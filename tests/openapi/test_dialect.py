"""Tests for :mod:`apishield.openapi.dialect` (OpenAPI schemas to JSON Schema 2020-12 per direction)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apishield.openapi.dialect import Direction, SchemaTranslator
from apishield.openapi.document import resolve_pointer
from apishield.openapi.schema import CompiledSchema, compile_schema

SCHEMAS: dict[str, Any] = {
    "Id": {"type": "integer", "readOnly": True},
    "Password": {"type": "string", "writeOnly": True},
    "IdAlias": {"$ref": "#/components/schemas/Id"},
    "Kind": {"type": "string", "enum": ["small", "large"]},
    "Name": {"type": "string"},
}
DATA: dict[str, Any] = {"components": {"schemas": SCHEMAS}}


def deref(ref: str) -> Any:
    return resolve_pointer(DATA, ref)


def translate(
    schema: Any, version: str = "3.1", direction: Direction = "request", max_len: int | None = None
) -> Any:
    original = copy.deepcopy(schema)
    out = SchemaTranslator(version, direction, deref, max_len).translate(schema)
    return out, original


def tr(
    schema: Any, version: str = "3.1", direction: Direction = "request", max_len: int | None = None
) -> Any:
    return translate(schema, version, direction, max_len)[0]


def compiled(
    schema: Any, version: str = "3.1", direction: Direction = "request", max_len: int | None = None
) -> CompiledSchema:
    translator = SchemaTranslator(version, direction, deref, max_len)
    components = {"schemas": {name: translator.translate(copy.deepcopy(s)) for name, s in SCHEMAS.items()}}
    return compile_schema(translator.translate(schema), components, location="body", direction=direction)


# -- 3.0 nullable ---------------------------------------------------------------------------------


def test_nullable_with_a_type_adds_null() -> None:
    assert tr({"type": "string", "nullable": True}, "3.0") == {"type": ["string", "null"]}
    assert tr({"type": "object", "nullable": True, "properties": {}}, "3.0") == {
        "type": ["object", "null"],
        "properties": {},
    }


def test_nullable_with_an_enum_adds_null_to_the_enum() -> None:
    assert tr({"type": "string", "nullable": True, "enum": ["a", "b"]}, "3.0") == {
        "type": ["string", "null"],
        "enum": ["a", "b", None],
    }
    assert tr({"type": "string", "nullable": True, "enum": ["a", None]}, "3.0")["enum"] == ["a", None]


def test_nullable_without_a_type_becomes_any_of_null() -> None:
    assert tr({"nullable": True, "properties": {"a": {"type": "integer"}}}, "3.0") == {
        "anyOf": [{"properties": {"a": {"type": "integer"}}}, {"type": "null"}]
    }


def test_nullable_false_is_dropped() -> None:
    assert tr({"type": "integer", "nullable": False}, "3.0") == {"type": "integer"}


def test_nullable_is_not_a_31_keyword() -> None:
    assert tr({"type": "integer", "nullable": True}, "3.1") == {"type": "integer", "nullable": True}
    assert not compiled({"type": "integer", "nullable": True}, "3.1").is_valid(None)


def test_nullable_validation_outcomes() -> None:
    note = compiled({"type": "string", "nullable": True, "maxLength": 3}, "3.0")
    assert note.is_valid(None)
    assert note.is_valid("abc")
    assert not note.is_valid("abcd")
    assert not note.is_valid(5)
    kind = compiled({"type": "string", "nullable": True, "enum": ["a"]}, "3.0")
    assert kind.is_valid(None)
    assert kind.is_valid("a")
    assert not kind.is_valid("b")
    untyped = compiled({"nullable": True, "minProperties": 1}, "3.0")
    assert untyped.is_valid(None)
    assert untyped.is_valid({"a": 1})
    assert not untyped.is_valid({})
    plain = compiled({"type": "string"}, "3.0")
    assert not plain.is_valid(None)


def test_nested_schemas_are_translated() -> None:
    out = tr(
        {
            "type": "object",
            "properties": {"a": {"type": "string", "nullable": True}},
            "additionalProperties": {"type": "integer", "nullable": True},
            "allOf": [{"type": "object", "properties": {"b": {"type": "number", "nullable": True}}}],
        },
        "3.0",
    )
    assert out["properties"]["a"]["type"] == ["string", "null"]
    assert out["additionalProperties"]["type"] == ["integer", "null"]
    assert out["allOf"][0]["properties"]["b"]["type"] == ["number", "null"]
    items = tr({"type": "array", "items": {"type": "string", "nullable": True}}, "3.0")
    assert items["items"]["type"] == ["string", "null"]


# -- 3.0 boolean exclusive bounds -----------------------------------------------------------------


def test_exclusive_minimum_true_moves_the_bound() -> None:
    assert tr({"type": "number", "minimum": 0, "exclusiveMinimum": True}, "3.0") == {
        "type": "number",
        "exclusiveMinimum": 0,
    }


def test_exclusive_maximum_true_moves_the_bound() -> None:
    assert tr({"type": "number", "maximum": 10, "exclusiveMaximum": True}, "3.0") == {
        "type": "number",
        "exclusiveMaximum": 10,
    }


def test_exclusive_false_keeps_the_inclusive_bound() -> None:
    out = tr(
        {"type": "number", "minimum": 0, "exclusiveMinimum": False, "maximum": 9, "exclusiveMaximum": False},
        "3.0",
    )
    assert out == {"type": "number", "minimum": 0, "maximum": 9}


def test_exclusive_flag_without_a_bound_is_dropped() -> None:
    assert tr({"type": "number", "exclusiveMinimum": True, "exclusiveMaximum": True}, "3.0") == {
        "type": "number"
    }


def test_31_numeric_exclusive_bounds_are_untouched() -> None:
    assert tr({"type": "number", "exclusiveMinimum": 3, "minimum": 1}, "3.1") == {
        "type": "number",
        "exclusiveMinimum": 3,
        "minimum": 1,
    }


def test_exclusive_bound_validation_outcomes() -> None:
    weight = compiled(
        {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 10, "exclusiveMaximum": False},
        "3.0",
    )
    assert not weight.is_valid(0)
    assert weight.is_valid(0.001)
    assert weight.is_valid(10)
    assert not weight.is_valid(10.5)
    upper = compiled({"type": "integer", "maximum": 5, "exclusiveMaximum": True}, "3.0")
    assert upper.is_valid(4)
    assert not upper.is_valid(5)


# -- $ref siblings --------------------------------------------------------------------------------


def test_ref_siblings_are_dropped_in_30() -> None:
    schema = {"$ref": "#/components/schemas/Name", "maxLength": 3, "description": "ignored", "nullable": True}
    assert tr(schema, "3.0") == {"$ref": "#/components/schemas/Name"}
    name = compiled(schema, "3.0")
    assert name.is_valid("abcdef")  # the sibling maxLength is ignored
    assert not name.is_valid(None)  # so is the sibling nullable


def test_ref_siblings_are_kept_in_31() -> None:
    schema = {"$ref": "#/components/schemas/Name", "maxLength": 3, "description": "applies"}
    assert tr(schema, "3.1") == schema
    name = compiled(schema, "3.1")
    assert name.is_valid("abc")
    assert not name.is_valid("abcd")
    assert not name.is_valid(7)


# -- readOnly / writeOnly -------------------------------------------------------------------------

USER: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "password"],
    "properties": {
        "id": {"type": "integer", "readOnly": True},
        "name": {"type": "string"},
        "password": {"type": "string", "writeOnly": True},
    },
}


def test_read_only_property_is_false_and_not_required_in_the_request_view() -> None:
    out = tr(copy.deepcopy(USER), direction="request")
    assert out["properties"]["id"] is False
    assert out["properties"]["password"] == {"type": "string", "writeOnly": True}
    assert out["required"] == ["name", "password"]


def test_write_only_property_is_false_and_not_required_in_the_response_view() -> None:
    out = tr(copy.deepcopy(USER), direction="response")
    assert out["properties"]["password"] is False
    assert out["properties"]["id"] == {"type": "integer", "readOnly": True}
    assert out["required"] == ["id", "name"]


def test_translation_does_not_modify_the_input() -> None:
    out, original = translate(copy.deepcopy(USER), direction="request")
    assert original == USER
    assert out != USER


def test_read_only_behind_a_ref_and_inside_all_of() -> None:
    schema = {
        "type": "object",
        "required": ["id", "alias", "composed", "inline", "name"],
        "properties": {
            "id": {"$ref": "#/components/schemas/Id"},
            "alias": {"$ref": "#/components/schemas/IdAlias"},
            "composed": {"allOf": [{"$ref": "#/components/schemas/Id"}, {"minimum": 1}]},
            "inline": {"allOf": [{"type": "string"}, {"readOnly": True}]},
            "name": {"$ref": "#/components/schemas/Name"},
            "other": {"anyOf": [{"$ref": "#/components/schemas/Id"}, {"type": "string"}]},
        },
    }
    out = tr(schema, direction="request")
    for name in ("id", "alias", "composed", "inline"):
        assert out["properties"][name] is False, name
    assert out["properties"]["name"] == {"$ref": "#/components/schemas/Name"}
    assert out["properties"]["other"] is not False  # only allOf makes a property read-only
    assert out["required"] == ["name"]


def test_read_only_ref_sibling_counts_in_31_not_in_30() -> None:
    schema = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"$ref": "#/components/schemas/Kind", "readOnly": True}},
    }
    assert tr(copy.deepcopy(schema), "3.1")["properties"]["kind"] is False
    out30 = tr(copy.deepcopy(schema), "3.0")
    assert out30["properties"]["kind"] == {"$ref": "#/components/schemas/Kind"}
    assert out30["required"] == ["kind"]


def test_read_only_validation_outcomes() -> None:
    request = compiled(copy.deepcopy(USER), direction="request")
    assert request.is_valid({"name": "a", "password": "p"})
    assert not request.is_valid({"id": 1, "name": "a", "password": "p"})
    [violation] = request.violations({"id": 1, "name": "a", "password": "p"})
    assert violation.pointer == "/id"
    assert violation.reason == "is read-only and must not be sent"
    response = compiled(copy.deepcopy(USER), direction="response")
    assert response.is_valid({"id": 1, "name": "a"})
    assert not response.is_valid({"id": 1, "name": "a", "password": "p"})
    assert not response.is_valid({"name": "a"})


def test_read_only_is_hidden_in_a_nullable_schema_without_type() -> None:
    schema = {
        "nullable": True,
        "required": ["id", "name"],
        "properties": {"id": {"type": "integer", "readOnly": True}, "name": {"type": "string"}},
    }
    request = compiled(schema, "3.0", direction="request")
    assert request.is_valid({"name": "a"})
    assert not request.is_valid({"id": 1, "name": "a"})


def test_int32_range_applies_in_a_nullable_schema_without_type() -> None:
    assert not compiled({"nullable": True, "format": "int32"}, "3.0").is_valid(2**31)


# -- formats --------------------------------------------------------------------------------------


def test_int32_and_int64_become_ranges() -> None:
    assert tr({"type": "integer", "format": "int32"}) == {
        "type": "integer",
        "format": "int32",
        "minimum": -(2**31),
        "maximum": 2**31 - 1,
    }
    assert tr({"type": "integer", "format": "int64", "minimum": 0}) == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": 2**63 - 1,
    }


def test_integer_range_validation_outcomes() -> None:
    int32 = compiled({"type": "integer", "format": "int32"})
    assert int32.is_valid(2**31 - 1)
    assert int32.is_valid(-(2**31))
    assert not int32.is_valid(2**31)
    assert not int32.is_valid(-(2**31) - 1)
    int64 = compiled({"type": "integer", "format": "int64"})
    assert int64.is_valid(2**63 - 1)
    assert not int64.is_valid(2**63)


def test_byte_format_gets_a_base64_pattern_unless_one_is_given() -> None:
    assert "pattern" in tr({"type": "string", "format": "byte"})
    assert tr({"type": "string", "format": "byte", "pattern": "^x$"})["pattern"] == "^x$"
    byte = compiled({"type": "string", "format": "byte"})
    for good in ("", "aGVsbG8=", "aGk=", "YWJj", "+/+/"):
        assert byte.is_valid(good), good
    for bad in ("aGVsbG8", "a===", "not base64!", "aGk=aGk="):
        assert not byte.is_valid(bad), bad


def test_other_formats_are_untouched() -> None:
    assert tr({"type": "number", "format": "float"}) == {"type": "number", "format": "float"}


# -- max_string_length ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [{"type": "string"}, {"type": ["string", "null"]}, {"type": ["null", "string", "integer"]}],
)
def test_string_cap_added_to_strings_without_a_bound(schema: dict[str, Any]) -> None:
    assert tr(schema, max_len=100)["maxLength"] == 100


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 5},
        {"type": "string", "enum": ["a"]},
        {"type": "string", "const": "a"},
        {"type": "integer"},
        {"type": ["integer", "null"]},
        {"minLength": 1},
        {"format": "email"},
    ],
)
def test_string_cap_not_added(schema: dict[str, Any]) -> None:
    out = tr(copy.deepcopy(schema), max_len=100)
    assert out.get("maxLength") == schema.get("maxLength")


def test_string_cap_disabled() -> None:
    assert tr({"type": "string"}, max_len=None) == {"type": "string"}


def test_string_cap_applies_after_30_nullable() -> None:
    assert tr({"type": "string", "nullable": True}, "3.0", max_len=8) == {
        "type": ["string", "null"],
        "maxLength": 8,
    }


def test_string_cap_validation_outcome() -> None:
    capped = compiled({"type": "object", "properties": {"s": {"type": "string"}}}, max_len=4)
    assert capped.is_valid({"s": "abcd"})
    assert not capped.is_valid({"s": "abcde"})


# -- non-schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [True, False, None, 3, "string"])
def test_non_dict_schemas_pass_through(schema: Any) -> None:
    assert tr(schema) == schema
