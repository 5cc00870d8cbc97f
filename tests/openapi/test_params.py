"""Tests for :mod:`apishield.openapi.params` (parameter deserialisation and coercion)."""

from __future__ import annotations

from typing import Any

import pytest

from apishield.openapi.params import ParamSpec, coerce, schema_types

INT = frozenset({"integer"})
NUM = frozenset({"number"})
BOOL = frozenset({"boolean"})
STR = frozenset({"string"})


def spec(**fields: Any) -> ParamSpec:
    base: dict[str, Any] = {
        "name": "p",
        "location": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "kind": "primitive",
        "types": STR,
    }
    base.update(fields)
    return ParamSpec(**base)


# -- coerce ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"), [("0", 0), ("42", 42), ("-7", -7), ("-0", 0), ("9" * 40, int("9" * 40))]
)
def test_integers(raw: str, value: int) -> None:
    out = coerce(raw, INT)
    assert type(out) is int
    assert out == value


@pytest.mark.parametrize(
    "raw",
    [
        "007",
        "00",
        "1e3",
        "1E3",
        "+1",
        "1.0",
        "1.",
        " 1",
        "1 ",
        "1\n",
        "0x10",
        "1_000",
        "",
        "-",
        "\u0663",
        "\uff11",
    ],
)
def test_integers_are_strict(raw: str) -> None:
    out = coerce(raw, INT)
    assert out == raw
    assert type(out) is str


def test_integer_beyond_the_conversion_limit_is_left_a_string() -> None:
    raw = "9" * 5000
    assert coerce(raw, INT) == raw


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0), ("2.5E-1", 0.25), ("1E+2", 100.0), ("0.0", 0.0)],
)
def test_numbers(raw: str, value: float) -> None:
    out = coerce(raw, NUM)
    assert type(out) is float
    assert out == value


def test_whole_numbers_become_int_for_number_types() -> None:
    out = coerce("42", NUM)
    assert type(out) is int
    assert out == 42


@pytest.mark.parametrize(
    "raw", ["NaN", "Infinity", "-Infinity", "inf", ".5", "1.", "01.5", "+1.5", "1e", "1e400", "--1", "1,5"]
)
def test_numbers_are_strict(raw: str) -> None:
    assert coerce(raw, NUM) == raw


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False)])
def test_booleans(raw: str, value: bool) -> None:
    assert coerce(raw, BOOL) is value


@pytest.mark.parametrize("raw", ["True", "FALSE", "1", "0", "yes", "no", "on", "", "t"])
def test_booleans_only_true_and_false(raw: str) -> None:
    assert coerce(raw, BOOL) == raw


def test_null_from_an_empty_value() -> None:
    assert coerce("", frozenset({"null"})) is None
    assert coerce("", frozenset({"integer", "null"})) is None
    assert coerce("", frozenset({"string", "null"})) == ""
    assert coerce("null", frozenset({"null"})) == "null"


def test_strings_are_never_coerced() -> None:
    assert coerce("42", STR) == "42"
    assert coerce("true", STR) == "true"
    assert coerce("", STR) == ""


def test_first_fitting_type_wins() -> None:
    assert coerce("42", frozenset({"integer", "number"})) == 42
    assert coerce("4.5", frozenset({"integer", "number"})) == 4.5
    assert coerce("true", frozenset({"integer", "boolean"})) is True
    assert coerce("x", frozenset({"integer", "boolean", "null"})) == "x"
    assert coerce("5", frozenset()) == "5"


# -- schema_types ---------------------------------------------------------------------------------

COMPONENTS: dict[str, Any] = {
    "Id": {"type": "integer"},
    "Alias": {"$ref": "#/Id"},
    "AliasOfAlias": {"$ref": "#/Alias"},
    "Loop": {"$ref": "#/Loop"},
    "Mixed": {"allOf": [{"$ref": "#/Id"}, {"minimum": 1}]},
}


def deref(ref: str) -> Any:
    return COMPONENTS[ref.removeprefix("#/")]


@pytest.mark.parametrize(
    ("schema", "types"),
    [
        ({"type": "string"}, {"string"}),
        ({"type": ["integer", "null"]}, {"integer", "null"}),
        ({"$ref": "#/Id"}, {"integer"}),
        ({"$ref": "#/AliasOfAlias"}, {"integer"}),
        ({"$ref": "#/Mixed"}, {"integer"}),
        ({"allOf": [{"$ref": "#/Alias"}, {"description": "x"}]}, {"integer"}),
        ({"anyOf": [{"type": "null"}, {"$ref": "#/Id"}]}, {"null", "integer"}),
        ({"oneOf": [{"type": "boolean"}, {"type": ["string", "number"]}]}, {"boolean", "string", "number"}),
        ({"type": "object", "anyOf": [{"type": "string"}]}, {"object"}),
        ({"properties": {"a": {}}}, {"object"}),
        ({"additionalProperties": {"type": "string"}}, {"object"}),
        ({"items": {"type": "string"}}, {"array"}),
        ({"prefixItems": [{"type": "string"}]}, {"array"}),
        ({}, set()),
        ({"minLength": 1}, set()),
        ({"$ref": "#/Loop"}, set()),
        (True, set()),
    ],
)
def test_schema_types(schema: Any, types: set[str]) -> None:
    assert schema_types(schema, deref) == types


# -- ParamSpec: primitives and keys ---------------------------------------------------------------


def test_primitive_from_string_coerces_by_type() -> None:
    assert spec(types=INT).from_string("12") == 12
    assert spec(types=INT).from_string("12a") == "12a"
    assert spec(types=BOOL).from_string("false") is False


def test_header_key_is_lower_case_other_locations_keep_the_name() -> None:
    assert spec(name="X-Trace-Id", location="header").key == "x-trace-id"
    assert spec(name="X-Trace-Id", location="query").key == "X-Trace-Id"
    assert spec(name="Session", location="cookie").key == "Session"


# -- arrays ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "location", "raw", "value"),
    [
        ("form", "query", "1,2,3", [1, 2, 3]),
        ("simple", "path", "1,2,3", [1, 2, 3]),
        ("simple", "header", "4", [4]),
        ("spaceDelimited", "query", "1 2 3", [1, 2, 3]),
        ("pipeDelimited", "query", "1|2|3", [1, 2, 3]),
        ("form", "query", "1,x,", [1, "x", ""]),
        ("pipeDelimited", "query", "1,2|3", ["1,2", 3]),
        ("spaceDelimited", "query", "1,2 3", ["1,2", 3]),
    ],
)
def test_array_styles(style: str, location: str, raw: str, value: list[Any]) -> None:
    p = spec(style=style, location=location, kind="array", types=frozenset({"array"}), item_types=INT)
    assert p.from_string(raw) == value


def test_empty_array() -> None:
    p = spec(kind="array", types=frozenset({"array"}), item_types=INT)
    assert p.from_string("") == []


def test_array_items_coerced_by_item_types() -> None:
    p = spec(style="pipeDelimited", kind="array", types=frozenset({"array"}), item_types=BOOL)
    assert p.from_string("true|false|maybe") == [True, False, "maybe"]


def test_exploded_form_array_from_repeated_values() -> None:
    p = spec(explode=True, kind="array", types=frozenset({"array"}), item_types=INT)
    assert p.from_values(["1", "2", "x"]) == [1, 2, "x"]
    # no splitting on commas when exploded: each value is one item
    assert p.from_values(["1,2"]) == ["1,2"]


def test_non_exploded_array_from_repeated_values_keeps_each_value() -> None:
    p = spec(kind="array", types=frozenset({"array"}), item_types=INT)
    assert p.from_values(["1,2", "3"]) == [[1, 2], [3]]


def test_repeated_scalar_values_are_all_returned() -> None:
    assert spec(types=INT).from_values(["1", "2"]) == [1, 2]


# -- objects --------------------------------------------------------------------------------------

PROPS = {"n": INT, "ok": BOOL}


def obj(explode: bool) -> ParamSpec:
    return spec(
        style="simple",
        location="path",
        explode=explode,
        kind="object",
        types=frozenset({"object"}),
        property_types=PROPS,
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("n=1,ok=true,s=x", {"n": 1, "ok": True, "s": "x"}),
        ("n=x", {"n": "x"}),
        ("s=a=b", {"s": "a=b"}),
        ("s=", {"s": ""}),
        ("", {}),
    ],
)
def test_exploded_object(raw: str, value: dict[str, Any]) -> None:
    assert obj(True).from_string(raw) == value


@pytest.mark.parametrize("raw", ["n=1,ok", "n=1,n=2", "n"])
def test_exploded_object_without_a_single_reading_stays_a_string(raw: str) -> None:
    assert obj(True).from_string(raw) == raw


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("n,1,ok,false", {"n": 1, "ok": False}),
        ("s,x", {"s": "x"}),
        ("s,", {"s": ""}),
        ("", {}),
    ],
)
def test_non_exploded_object(raw: str, value: dict[str, Any]) -> None:
    assert obj(False).from_string(raw) == value


@pytest.mark.parametrize("raw", ["n,1,ok", "n", "n,1,n,2"])
def test_non_exploded_object_odd_count_or_duplicates_stay_a_string(raw: str) -> None:
    assert obj(False).from_string(raw) == raw


def test_undeclared_object_members_are_strings() -> None:
    assert obj(True).from_string("extra=5") == {"extra": "5"}


# -- content-encoded (JSON) parameters ------------------------------------------------------------


def content() -> ParamSpec:
    return spec(content_json=True, types=frozenset({"object"}))


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('{"a": [1, 2], "b": null}', {"a": [1, 2], "b": None}),
        ("[1, 2]", [1, 2]),
        ('"text"', "text"),
        ("42", 42),
    ],
)
def test_content_json_is_parsed(raw: str, value: Any) -> None:
    assert content().from_string(raw) == value


@pytest.mark.parametrize("raw", ["{a", "", "NaN", "[1,]", "{'a': 1}", "[" * 2000 + "]" * 2000])
def test_content_json_that_does_not_parse_stays_a_string(raw: str) -> None:
    assert content().from_string(raw) == raw


def test_content_json_with_duplicate_names_has_no_single_reading() -> None:
    raw = '{"role": "user", "role": "admin"}'
    assert content().from_string(raw) == raw
