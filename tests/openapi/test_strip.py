"""Tests for :mod:`apishield.openapi.strip` (removing undocumented response data)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apishield.openapi.document import resolve_pointer
from apishield.openapi.strip import compile_stripper


def strip(schema: Any, value: Any, schemas: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    root = {"components": {"schemas": schemas or {}}}
    stripper = compile_stripper(schema, lambda ref: resolve_pointer(root, ref))
    removed: list[str] = []
    out = stripper(value, "", removed)
    return out, removed


def test_undeclared_members_are_removed_at_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "owner": {"type": "object", "properties": {"name": {}, "address": {"properties": {"city": {}}}}},
        },
    }
    value = {
        "id": 1,
        "riskScore": 0.9,
        "owner": {"name": "a", "passwordHash": "x", "address": {"city": "c", "geo": [1, 2]}},
    }
    out, removed = strip(schema, value)
    assert out == {"id": 1, "owner": {"name": "a", "address": {"city": "c"}}}
    assert sorted(removed) == ["/owner/address/geo", "/owner/passwordHash", "/riskScore"]


def test_value_is_modified_in_place() -> None:
    value = {"a": 1, "b": 2}
    out, _ = strip({"properties": {"a": {}}}, value)
    assert out is value
    assert value == {"a": 1}


def test_pointer_escaping_of_removed_names() -> None:
    schema: dict[str, Any] = {"properties": {"in/side": {"properties": {"ok": {}}}}}
    value = {"a/b": 1, "c~d": 2, "~1": 3, "in/side": {"ok": 1, "x~/y": 2}}
    out, removed = strip(schema, value)
    assert out == {"in/side": {"ok": 1}}
    assert sorted(removed) == ["/a~1b", "/c~0d", "/in~1side/x~0~1y", "/~01"]


def test_removed_pointers_resolve_in_the_original_document() -> None:
    schema = {"properties": {"k": {"type": "array", "items": {"properties": {"keep": {}}}}}}
    value = {"k": [{"keep": 1, "a/b~c": "gone"}], "x~y": "also gone"}
    original = copy.deepcopy(value)
    _, removed = strip(schema, value)
    assert sorted(removed) == ["/k/0/a~1b~0c", "/x~0y"]
    assert sorted(resolve_pointer(original, p) for p in removed) == ["also gone", "gone"]


def test_arrays_of_objects() -> None:
    schema = {"type": "array", "items": {"type": "object", "properties": {"id": {}}}}
    out, removed = strip(schema, [{"id": 1, "s": 1}, {"s": 2}, {"id": 3}, "not-an-object", None])
    assert out == [{"id": 1}, {}, {"id": 3}, "not-an-object", None]
    assert removed == ["/0/s", "/1/s"]


def test_nested_arrays() -> None:
    schema: dict[str, Any] = {"properties": {"grid": {"items": {"items": {"properties": {"v": {}}}}}}}
    out, removed = strip(schema, {"grid": [[{"v": 1, "x": 1}], [], [{"x": 2}]]})
    assert out == {"grid": [[{"v": 1}], [], [{}]]}
    assert removed == ["/grid/0/0/x", "/grid/2/0/x"]


def test_additional_properties_schema_keeps_extras_but_strips_inside_them() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {}},
        "additionalProperties": {"type": "object", "properties": {"label": {}}},
    }
    out, removed = strip(schema, {"id": 1, "en": {"label": "x", "internal": 1}, "fr": {"label": "y"}})
    assert out == {"id": 1, "en": {"label": "x"}, "fr": {"label": "y"}}
    assert removed == ["/en/internal"]


def test_additional_properties_true_keeps_extras_untouched() -> None:
    schema = {"properties": {"id": {}}, "additionalProperties": True}
    out, removed = strip(schema, {"id": 1, "extra": {"deep": {"x": 1}}})
    assert out == {"id": 1, "extra": {"deep": {"x": 1}}}
    assert removed == []


def test_additional_properties_false_removes_extras() -> None:
    out, removed = strip({"properties": {"id": {}}, "additionalProperties": False}, {"id": 1, "x": 2})
    assert out == {"id": 1}
    assert removed == ["/x"]


def test_map_values_are_stripped_by_the_additional_properties_schema() -> None:
    schemas = {"User": {"type": "object", "properties": {"name": {}}}}
    schema = {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/User"}}
    out, removed = strip(schema, {"alice": {"name": "a", "passwordHash": "x"}}, schemas)
    assert out == {"alice": {"name": "a"}}
    assert removed == ["/alice/passwordHash"]


@pytest.mark.parametrize("schema", [{}, {"type": "object"}, {"description": "anything"}, True, None])
def test_free_form_objects_are_untouched(schema: Any) -> None:
    value = {"a": {"b": [1, {"c": 2}]}, "d": None}
    out, removed = strip(schema, copy.deepcopy(value))
    assert out == value
    assert removed == []


def test_free_form_member_of_a_declared_object_is_untouched() -> None:
    schema = {"properties": {"meta": {"type": "object"}, "list": {"type": "array"}}}
    value = {"meta": {"anything": {"goes": 1}}, "list": [{"x": 1}], "drop": 1}
    out, removed = strip(schema, value)
    assert out == {"meta": {"anything": {"goes": 1}}, "list": [{"x": 1}]}
    assert removed == ["/drop"]


def test_false_members_are_removed() -> None:
    schema = {"properties": {"name": {}, "password": False}, "additionalProperties": True}
    out, removed = strip(schema, {"name": "a", "password": "p", "other": 1})
    assert out == {"name": "a", "other": 1}
    assert removed == ["/password"]


def test_all_of_declares_the_union() -> None:
    schema = {
        "allOf": [
            {"properties": {"a": {}}},
            {"properties": {"b": {"properties": {"c": {}}}}},
        ]
    }
    out, removed = strip(schema, {"a": 1, "b": {"c": 1, "d": 2}, "e": 3})
    assert out == {"a": 1, "b": {"c": 1}}
    assert sorted(removed) == ["/b/d", "/e"]


@pytest.mark.parametrize("combinator", ["anyOf", "oneOf"])
def test_any_of_and_one_of_declare_the_union(combinator: str) -> None:
    schemas: dict[str, Any] = {"Card": {"properties": {"last4": {}}}, "Bank": {"properties": {"iban": {}}}}
    schema = {
        combinator: [{"$ref": "#/components/schemas/Card"}, {"$ref": "#/components/schemas/Bank"}],
        "properties": {"kind": {}},
    }
    out, removed = strip(schema, {"kind": "card", "last4": "1234", "iban": "X", "pan": "4111"}, schemas)
    assert out == {"kind": "card", "last4": "1234", "iban": "X"}
    assert removed == ["/pan"]


def test_member_declared_by_several_branches_uses_the_first() -> None:
    schema: dict[str, Any] = {
        "allOf": [
            {"properties": {"x": {"properties": {"a": {}}}}},
            {"properties": {"x": {"properties": {"b": {}}}}},
        ]
    }
    out, removed = strip(schema, {"x": {"a": 1, "b": 2}})
    assert out == {"x": {"a": 1}}
    assert removed == ["/x/b"]


def test_nested_combinators_and_refs_in_branches() -> None:
    schemas = {
        "Base": {"properties": {"id": {}}},
        "Named": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"properties": {"name": {}}}]},
    }
    out, removed = strip({"$ref": "#/components/schemas/Named"}, {"id": 1, "name": "n", "x": 0}, schemas)
    assert out == {"id": 1, "name": "n"}
    assert removed == ["/x"]


def test_recursive_schema_five_levels_deep() -> None:
    schemas = {
        "Node": {
            "type": "object",
            "properties": {
                "name": {},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            },
        }
    }

    def tree(level: int) -> dict[str, Any]:
        node: dict[str, Any] = {"name": f"n{level}", "secret": level}
        if level < 5:
            node["children"] = [tree(level + 1)]
        return node

    out, removed = strip({"$ref": "#/components/schemas/Node"}, tree(1), schemas)
    node = out
    for level in range(1, 6):
        assert set(node) <= {"name", "children"}
        assert node["name"] == f"n{level}"
        node = node["children"][0] if level < 5 else node
    assert removed == [
        "/secret",
        "/children/0/secret",
        "/children/0/children/0/secret",
        "/children/0/children/0/children/0/secret",
        "/children/0/children/0/children/0/children/0/secret",
    ]


def test_mutually_recursive_schemas_and_self_referencing_all_of_terminate() -> None:
    schemas = {
        "A": {"properties": {"b": {"$ref": "#/components/schemas/B"}, "a": {}}},
        "B": {"properties": {"a": {"$ref": "#/components/schemas/A"}, "b": {}}},
        "Loop": {"allOf": [{"$ref": "#/components/schemas/Loop"}, {"properties": {"x": {}}}]},
    }
    out, removed = strip({"$ref": "#/components/schemas/A"}, {"b": {"a": {"a": 1, "z": 1}, "y": 2}}, schemas)
    assert out == {"b": {"a": {"a": 1}}}
    assert sorted(removed) == ["/b/a/z", "/b/y"]
    out, removed = strip({"$ref": "#/components/schemas/Loop"}, {"x": 1, "y": 2}, schemas)
    assert out == {"x": 1}
    assert removed == ["/y"]


def test_prefix_items_by_position_then_items() -> None:
    schema = {
        "type": "array",
        "prefixItems": [{"properties": {"a": {}}}, {"properties": {"b": {}}}],
        "items": {"properties": {"c": {}}},
    }
    value = [{"a": 1, "x": 1}, {"b": 1, "a": 1}, {"c": 1, "b": 1}, {"c": 2, "z": 1}]
    out, removed = strip(schema, value)
    assert out == [{"a": 1}, {"b": 1}, {"c": 1}, {"c": 2}]
    assert removed == ["/0/x", "/1/a", "/2/b", "/3/z"]


def test_prefix_items_without_items_leaves_the_rest() -> None:
    out, removed = strip({"prefixItems": [{"properties": {"a": {}}}]}, [{"a": 1, "x": 1}, {"x": 1}])
    assert out == [{"a": 1}, {"x": 1}]
    assert removed == ["/0/x"]


def test_pattern_properties_declare_members() -> None:
    schema = {"properties": {"id": {}}, "patternProperties": {"^x-": {"properties": {"a": {}}}}}
    out, removed = strip(schema, {"id": 1, "x-one": {"a": 1, "b": 2}, "y": 3})
    assert out == {"id": 1, "x-one": {"a": 1}}
    assert sorted(removed) == ["/x-one/b", "/y"]


def test_values_of_another_type_pass_through() -> None:
    schema = {"properties": {"a": {}}, "items": {"properties": {"b": {}}}}
    for value in ("text", 3, None, True, 1.5):
        out, removed = strip(schema, value)
        assert out == value
        assert removed == []


def test_unresolvable_ref_keeps_the_value() -> None:
    out, removed = strip({"$ref": "#/components/schemas/Missing"}, {"a": 1})
    assert out == {"a": 1}
    assert removed == []


def test_pointer_prefix_is_used() -> None:
    stripper = compile_stripper({"properties": {"a": {}}}, lambda ref: {})
    removed: list[str] = []
    stripper({"a": 1, "b": 2}, "/data/0", removed)
    assert removed == ["/data/0/b"]


def test_members_declared_next_to_a_ref_are_kept() -> None:
    schemas = {"Base": {"type": "object", "properties": {"id": {}}}}
    schema = {"$ref": "#/components/schemas/Base", "properties": {"extra": {}}}
    out, removed = strip(schema, {"id": 1, "extra": 2, "secret": 3}, schemas)
    assert out == {"id": 1, "extra": 2}
    assert removed == ["/secret"]
