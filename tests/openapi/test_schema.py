"""Tests for :mod:`apishield.openapi.schema` (compiled validators and safe violation messages)."""

from __future__ import annotations

from typing import Any

import pytest

from apishield.openapi.schema import SchemaCompileError, compile_schema
from apishield.problem import Violation

SECRET = "<script>secret-value-123</script>"


def validator(schema: Any, components: dict[str, Any] | None = None, direction: str = "request") -> Any:
    return compile_schema(schema, components, location="body", direction=direction)  # type: ignore[arg-type]


# -- violations never echo the value --------------------------------------------------------------

FAILING_KEYWORDS: dict[str, Any] = {
    "type": {"type": "integer"},
    "type-list": {"type": ["integer", "null"]},
    "maxLength": {"type": "string", "maxLength": 3},
    "minLength": {"type": "string", "minLength": 100},
    "pattern": {"type": "string", "pattern": "^[a-z]+$"},
    "enum": {"enum": ["a", "b"]},
    "const": {"const": "a"},
    "email": {"type": "string", "format": "email"},
    "uuid": {"type": "string", "format": "uuid"},
    "date": {"type": "string", "format": "date"},
    "date-time": {"type": "string", "format": "date-time"},
    "uri": {"type": "string", "format": "uri"},
    "ipv4": {"type": "string", "format": "ipv4"},
    "ipv6": {"type": "string", "format": "ipv6"},
    "not": {"not": {"type": "string"}},
    "anyOf": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
    "oneOf-none": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
    "oneOf-many": {"oneOf": [{"type": "string"}, {"minLength": 1}]},
    "allOf": {"allOf": [{"type": "string"}, {"maxLength": 2}]},
    "if-then": {"if": {"type": "string"}, "then": {"maxLength": 1}},
    "false": False,
}


@pytest.mark.parametrize("keyword", sorted(FAILING_KEYWORDS))
def test_reasons_and_pointers_never_contain_the_value(keyword: str) -> None:
    v = validator({"type": "object", "properties": {"field": FAILING_KEYWORDS[keyword]}})
    violations = v.violations({"field": SECRET})
    assert violations, keyword
    for violation in violations:
        assert violation.pointer == "/field"
        assert violation.location == "body"
        for text in (violation.reason, violation.pointer, str(violation.as_dict())):
            assert "secret-value-123" not in text
            assert "<script>" not in text


def test_array_and_object_keywords_never_echo_values() -> None:
    v = validator(
        {
            "type": "object",
            "additionalProperties": False,
            "maxProperties": 1,
            "properties": {
                "list": {
                    "type": "array",
                    "maxItems": 1,
                    "uniqueItems": True,
                    "contains": {"const": "x"},
                    "items": {"type": "string", "maxLength": 2},
                },
                "n": {"type": "number", "multipleOf": 7, "maximum": 1},
            },
        }
    )
    violations = v.violations({"list": [SECRET, SECRET], "n": 123456789.5, "extra": SECRET}, limit=100)
    assert len(violations) >= 6
    for violation in violations:
        assert "secret-value-123" not in violation.reason + violation.pointer
        assert "123456789" not in violation.reason


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "integer"}, "must be of type integer"),
        ({"type": "string", "maxLength": 3}, "must be at most 3 characters long"),
        ({"type": "string", "minLength": 100}, "must be at least 100 characters long"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "must match the pattern ^[a-z]+$"),
        ({"enum": ["a", "b"]}, "must be one of the documented values"),
        ({"const": "a"}, "must equal the documented constant"),
        ({"format": "email"}, "must be a valid email"),
        ({"not": {"type": "string"}}, "matches a schema it must not match"),
        (
            {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
            "must match at least one documented alternative",
        ),
        ({"oneOf": [{"type": "integer"}, {"type": "null"}]}, "must match exactly one documented alternative"),
        ({"oneOf": [{"type": "string"}, {"minLength": 1}]}, "matches more than one documented alternative"),
    ],
)
def test_reasons_describe_the_rule(schema: Any, reason: str) -> None:
    [violation] = validator(schema).violations(SECRET)
    assert violation.reason == reason
    assert violation.pointer == ""


@pytest.mark.parametrize(
    ("schema", "value", "reason"),
    [
        ({"maximum": 5}, 6, "must be at most 5"),
        ({"minimum": 5}, 4, "must be at least 5"),
        ({"exclusiveMaximum": 5}, 5, "must be less than 5"),
        ({"exclusiveMinimum": 5}, 5, "must be greater than 5"),
        ({"maxItems": 1}, [1, 2], "must have at most 1 items"),
        ({"minItems": 3}, [1], "must have at least 3 items"),
        ({"maxProperties": 1}, {"a": 1, "b": 2}, "must have at most 1 properties"),
        ({"minProperties": 2}, {"a": 1}, "must have at least 2 properties"),
        ({"uniqueItems": True}, [1, 1], "items must be unique"),
        ({"multipleOf": 3}, 7, "must be a multiple of the documented factor"),
    ],
)
def test_numeric_and_size_reasons(schema: Any, value: Any, reason: str) -> None:
    [violation] = validator(schema).violations(value)
    assert violation.reason == reason


def test_rule_name_is_kept_but_not_rendered() -> None:
    [violation] = validator({"type": "string", "maxLength": 1}).violations("ab")
    assert violation.rule == "MaxLength"
    assert violation.as_dict() == {"in": "body", "pointer": "", "reason": "must be at most 1 characters long"}


# -- additionalProperties and required ------------------------------------------------------------


def test_additional_properties_gives_one_violation_per_unexpected_name() -> None:
    v = validator({"type": "object", "properties": {"a": {}}, "additionalProperties": False})
    violations = v.violations({"a": 1, "b": 2, "c/d": 3, "e~f": 4})
    assert sorted(violations, key=lambda x: x.pointer) == [
        Violation("/b", "is not a documented property", "body"),
        Violation("/c~1d", "is not a documented property", "body"),
        Violation("/e~0f", "is not a documented property", "body"),
    ]


def test_nested_additional_properties_pointer() -> None:
    v = validator(
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"id": {}}, "additionalProperties": False},
                }
            },
        }
    )
    [violation] = v.violations({"items": [{"id": 1}, {"id": 2, "x": 1}]})
    assert violation == Violation("/items/1/x", "is not a documented property", "body")


def test_additional_properties_without_declared_properties_names_each_member() -> None:
    v = validator({"type": "object", "additionalProperties": False})
    violations = v.violations({"a": 1, "b": 2})
    assert sorted(violations, key=lambda x: x.pointer) == [
        Violation("/a", "is not a documented property", "body"),
        Violation("/b", "is not a documented property", "body"),
    ]


def test_required_gives_one_violation_per_missing_member() -> None:
    v = validator(
        {"type": "object", "required": ["a", "b/c", "d"], "properties": {"inner": {"required": ["z"]}}}
    )
    violations = v.violations({"a": 1, "inner": {}})
    assert sorted(violations, key=lambda x: x.pointer) == [
        Violation("/b~1c", "is required", "body"),
        Violation("/d", "is required", "body"),
        Violation("/inner/z", "is required", "body"),
    ]


def test_false_property_reason_depends_on_direction() -> None:
    schema = {"type": "object", "properties": {"secret": False}}
    [request] = validator(schema, direction="request").violations({"secret": 1})
    assert request == Violation("/secret", "is read-only and must not be sent", "body")
    [response] = validator(schema, direction="response").violations({"secret": 1})
    assert response == Violation("/secret", "is write-only and must not be returned", "body")


def test_false_schema_elsewhere_is_not_allowed_here() -> None:
    [violation] = validator({"type": "array", "items": False}).violations([1])
    assert violation == Violation("/0", "is not allowed here", "body")


# -- formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("email", ["user@example.com", "a.b+c@sub.example.org"], ["plainaddress", "@example.com", "a@"]),
        (
            "uuid",
            ["123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000"],
            ["123e4567e89b12d3a456426614174000x", "not-a-uuid", "123e4567-e89b-12d3-a456-42661417400g"],
        ),
        ("date", ["2024-02-29", "1999-12-31"], ["2023-02-29", "2024-13-01", "24-01-01", "2024-1-1"]),
        (
            "date-time",
            ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+01:00"],
            ["2024-01-02", "2024-01-02T25:00:00Z", "2024-01-02 03:04:05"],
        ),
        ("uri", ["https://example.com/a?b=c", "urn:isbn:0451450523"], ["/relative/path", "no scheme", ""]),
        ("ipv4", ["192.168.0.1", "0.0.0.0"], ["256.0.0.1", "1.2.3", "::1"]),
        ("ipv6", ["::1", "2001:db8::8a2e:370:7334"], ["2001:db8::g", "1.2.3.4", ":::"]),
    ],
)
def test_formats_are_asserted(fmt: str, good: list[str], bad: list[str]) -> None:
    v = validator({"type": "string", "format": fmt})
    for value in good:
        assert v.is_valid(value), value
    for value in bad:
        assert not v.is_valid(value), value
        [violation] = v.violations(value)
        assert violation.reason == f"must be a valid {fmt}"


def test_formats_apply_only_to_strings() -> None:
    assert validator({"format": "email"}).is_valid(42)


# -- patterns -------------------------------------------------------------------------------------


def test_linear_pattern_does_not_need_backtracking() -> None:
    v = validator({"type": "string", "pattern": "^[a-z]+[0-9]*$"})
    assert v.uses_backtracking is False
    assert v.is_valid("abc123")
    assert not v.is_valid("123abc")


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("^(?=.*[0-9])[a-z0-9]+$", "abc1", "abc"),
        ("^(?!admin$).+$", "user", "admin"),
        ("^(a)\\1$", "aa", "ab"),
        ("(?<=x)y", "xy", "zy"),
    ],
)
def test_look_around_and_back_references_use_backtracking(pattern: str, good: str, bad: str) -> None:
    v = validator({"type": "string", "pattern": pattern})
    assert v.uses_backtracking is True
    assert v.is_valid(good)
    assert not v.is_valid(bad)
    [violation] = v.violations(bad)
    assert violation.reason == f"must match the pattern {pattern}"


def test_invalid_pattern_is_a_compile_error() -> None:
    with pytest.raises(SchemaCompileError) as info:
        validator({"type": "string", "pattern": "(unclosed"})
    assert "\n" not in str(info.value)
    assert str(info.value)


# -- references and compile errors ----------------------------------------------------------------


def test_components_are_embedded_for_local_refs() -> None:
    components = {
        "schemas": {
            "Id": {"type": "integer", "minimum": 1},
            "Pair": {"type": "array", "items": {"$ref": "#/components/schemas/Id"}},
        }
    }
    v = validator({"$ref": "#/components/schemas/Pair"}, components)
    assert v.is_valid([1, 2])
    [violation] = v.violations([1, 0])
    assert violation.pointer == "/1"
    assert violation.reason == "must be at least 1"


def test_unresolvable_ref_is_a_compile_error() -> None:
    with pytest.raises(SchemaCompileError) as info:
        validator({"$ref": "#/components/schemas/Nope"}, {"schemas": {}})
    assert "/components/schemas/Nope" in str(info.value)


def test_invalid_schema_is_a_compile_error() -> None:
    with pytest.raises(SchemaCompileError):
        validator({"type": "integr"})
    with pytest.raises(SchemaCompileError):
        validator({"minLength": -1})


# -- iteration ------------------------------------------------------------------------------------


def test_violations_are_limited() -> None:
    v = validator({"type": "array", "items": {"type": "integer"}})
    assert len(v.violations(["x"] * 50)) == 20
    assert len(v.violations(["x"] * 50, limit=3)) == 3
    assert v.violations([1, 2, 3]) == []
    assert v.is_valid([1, 2, 3])


def test_additional_property_violations_respect_the_limit() -> None:
    v = validator({"type": "object", "properties": {"id": {}}, "additionalProperties": False})
    assert len(v.violations({f"k{i}": i for i in range(30)}, limit=5)) == 5


def test_split_location_moves_the_first_pointer_token_to_the_location() -> None:
    v = compile_schema(
        {
            "type": "object",
            "properties": {
                "query": {"type": "object", "properties": {"limit": {"type": "integer"}}, "required": ["q"]},
                "header": {"type": "object", "properties": {"x-trace": {"format": "uuid"}}},
            },
        },
        None,
        location="parameters",
        direction="request",
    )
    assert v.location == "parameters"
    assert v.direction == "request"
    violations = v.violations({"query": {"limit": "x"}, "header": {"x-trace": "nope"}}, split_location=True)
    assert sorted((x.location, x.pointer, x.reason) for x in violations) == [
        ("header", "/x-trace", "must be a valid uuid"),
        ("query", "/limit", "must be of type integer"),
        ("query", "/q", "is required"),
    ]
