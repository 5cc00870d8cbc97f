"""Tests for :mod:`apishield.config.yamlpos` (YAML loading that remembers lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apishield.config.yamlpos import MAX_NODES, SourceError, load_document, load_text

SOURCE = "policy.yaml"


def error_of(text: str) -> SourceError:
    with pytest.raises(SourceError) as info:
        load_text(text, SOURCE)
    return info.value


# -- line map -------------------------------------------------------------------------------------

NESTED = """\
openapi: api.yaml
validation:
  requests: enforce

  responses: strip
operations:
  getItem:
    uniform_failure:
      when_status:
        - 404
        - 4XX
overlays: [a.yaml, b.yaml]
"""


def test_line_map_records_every_key_path() -> None:
    doc = load_text(NESTED, SOURCE)
    assert doc.source == SOURCE
    assert doc.lines[()] == 1
    assert doc.lines[("openapi",)] == 1
    assert doc.lines[("validation",)] == 2
    assert doc.lines[("validation", "requests")] == 3
    assert doc.lines[("validation", "responses")] == 5
    assert doc.lines[("operations", "getItem", "uniform_failure")] == 8
    assert doc.lines[("operations", "getItem", "uniform_failure", "when_status")] == 9
    assert doc.lines[("operations", "getItem", "uniform_failure", "when_status", 0)] == 10
    assert doc.lines[("operations", "getItem", "uniform_failure", "when_status", 1)] == 11
    assert doc.lines[("overlays", 1)] == 12


def test_values_are_plain_python() -> None:
    doc = load_text(NESTED, SOURCE)
    assert doc.value == {
        "openapi": "api.yaml",
        "validation": {"requests": "enforce", "responses": "strip"},
        "operations": {"getItem": {"uniform_failure": {"when_status": [404, "4XX"]}}},
        "overlays": ["a.yaml", "b.yaml"],
    }


def test_line_of_falls_back_to_the_deepest_known_prefix() -> None:
    doc = load_text(NESTED, SOURCE)
    assert doc.line_of(("validation", "responses", "nope", 3)) == 5
    assert doc.line_of(("validation", "missing")) == 2
    assert doc.line_of(("not-there",)) == 1
    assert doc.line_of(()) == 1


def test_line_of_an_empty_document_is_unknown() -> None:
    doc = load_text("", SOURCE)
    assert doc.value is None
    assert doc.line_of(("anything",)) is None


def test_non_string_keys_become_strings_with_their_lines() -> None:
    doc = load_text("responses:\n  200: ok\n  404: missing\n  1.5: odd\n", SOURCE)
    assert doc.value == {"responses": {"200": "ok", "404": "missing", "1.5": "odd"}}
    assert doc.lines[("responses", "200")] == 2
    assert doc.lines[("responses", "404")] == 3


def test_json_is_accepted_with_lines() -> None:
    doc = load_text('{\n  "a": {\n    "b": [1, 2]\n  }\n}\n', SOURCE)
    assert doc.value == {"a": {"b": [1, 2]}}
    assert doc.lines[("a", "b")] == 3


# -- duplicate keys -------------------------------------------------------------------------------


def test_duplicate_top_level_key_is_refused_with_its_line() -> None:
    err = error_of("upstream: http://a\nopenapi: x\nupstream: http://b\n")
    assert err.line == 3
    assert err.source == SOURCE
    assert "duplicate key 'upstream'" in err.message
    assert str(err).startswith("policy.yaml:3: ")


def test_duplicate_nested_key_is_refused_with_its_line() -> None:
    err = error_of("validation:\n  requests: enforce\n  responses: strip\n  requests: off\n")
    assert err.line == 4
    assert "duplicate key 'requests'" in err.message


def test_duplicate_key_inside_a_sequence_item_is_refused() -> None:
    err = error_of("items:\n  - a: 1\n    b: 2\n    a: 3\n")
    assert err.line == 4


def test_duplicate_key_after_stringification_is_refused() -> None:
    err = error_of("responses:\n  '200': first\n  200: second\n")
    assert err.line == 3


def test_stringified_duplicate_in_the_other_order_is_refused() -> None:
    err = error_of("responses:\n  200: first\n  '200': second\n")
    assert err.line == 3


# -- YAML 1.2 scalars ------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["off", "no", "yes", "NO", "on", "On", "OFF", "y", "n", "Yes"])
def test_yaml11_boolean_words_stay_strings(word: str) -> None:
    assert load_text(f"value: {word}\n", SOURCE).value == {"value": word}


@pytest.mark.parametrize(
    ("word", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False), ("FALSE", False)],
)
def test_yaml12_booleans_are_booleans(word: str, expected: bool) -> None:
    value = load_text(f"value: {word}\n", SOURCE).value["value"]
    assert value is expected


def test_norway_country_code_stays_a_string() -> None:
    assert load_text("countries: [SE, NO, DK]\n", SOURCE).value == {"countries": ["SE", "NO", "DK"]}


@pytest.mark.parametrize("stamp", ["2024-01-02", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05.5+01:00"])
def test_timestamps_stay_strings(stamp: str) -> None:
    assert load_text(f"when: {stamp}\n", SOURCE).value == {"when": stamp}


def test_null_int_float_still_resolve() -> None:
    value = load_text("a: ~\nb: null\nc: 42\nd: 1.5\ne: '42'\n", SOURCE).value
    assert value == {"a": None, "b": None, "c": 42, "d": 1.5, "e": "42"}


# -- refused constructs ---------------------------------------------------------------------------


def test_merge_keys_are_refused_with_their_line() -> None:
    err = error_of("base: &b {requests: off}\nvalidation:\n  <<: *b\n  responses: strip\n")
    assert err.line == 3
    assert "merge keys" in err.message


def test_quoted_double_angle_key_is_a_plain_string() -> None:
    assert load_text("'<<': x\n", SOURCE).value == {"<<": "x"}


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/name:os.system ''\n",
        "a: !!python/object/new:builtins.str 'x'\n",
        "a: !!python/none ''\n",
    ],
)
def test_python_tags_are_refused(text: str) -> None:
    err = error_of(text)
    assert err.line == 1
    assert "python" in err.message


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo hi']\n",
        "a: !!python/object:os.PathLike {x: 1}\n",
        "a: !!python/tuple [1, 2]\n",
    ],
)
def test_python_tags_on_collections_are_refused(text: str) -> None:
    error_of(text)


def test_non_scalar_mapping_keys_are_refused() -> None:
    err = error_of("? [a, b]\n: 1\n")
    assert err.line == 1
    assert "keys must be scalars" in err.message


def test_multiple_documents_are_refused_with_the_line_of_the_second() -> None:
    err = error_of("a: 1\nb: 2\n---\nc: 3\n")
    assert err.line == 4
    assert "single document" in err.message


def test_explicit_single_document_is_accepted() -> None:
    assert load_text("---\na: 1\n...\n", SOURCE).value == {"a": 1}


# -- aliases --------------------------------------------------------------------------------------


def test_small_aliases_are_expanded() -> None:
    value = load_text("a: &x {b: [1, 2]}\nc: *x\n", SOURCE).value
    assert value == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}}


def test_billion_laughs_expansion_is_bounded() -> None:
    # nine levels, each referring to the previous one ten times: 10**9 leaves once expanded
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    text = "\n".join(lines) + "\n"
    assert MAX_NODES < 10**9
    assert len(text) < 1000
    err = error_of(text)
    assert "too large" in err.message
    assert err.line is not None


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n"])
def test_recursive_alias_is_refused(text: str) -> None:
    error_of(text)


def test_deep_nesting_is_a_source_error_not_a_crash() -> None:
    err = error_of("[" * 5000 + "]" * 5000)
    assert err.line == 1


# -- invalid YAML ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: [1, 2\nc: 3\n", 3),
        ("a: 1\n  b: 2\n", 2),
        ("a: 1\nb: 'unterminated\n", 3),
        ("a:\n\t- tab\n", 2),
    ],
)
def test_invalid_yaml_reports_a_line(text: str, line: int) -> None:
    err = error_of(text)
    assert err.line == line
    assert err.message.startswith("invalid YAML")
    assert str(err).startswith(f"policy.yaml:{line}: invalid YAML")


def test_source_error_without_a_line() -> None:
    err = SourceError("api.yaml", None, "file not found")
    assert str(err) == "api.yaml: file not found"


# -- files ----------------------------------------------------------------------------------------


def test_load_document_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("a:\n  b: 1\n", encoding="utf-8")
    doc = load_document(path)
    assert doc.value == {"a": {"b": 1}}
    assert doc.source == str(path)
    assert doc.lines[("a", "b")] == 2


def test_load_document_uses_the_display_name_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        load_document(path, display="shown.yaml")
    assert str(info.value) == "shown.yaml:2: duplicate key 'a'"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        load_document(tmp_path / "absent.yaml", display="absent.yaml")
    assert info.value.line is None
    assert str(info.value) == "absent.yaml: file not found"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SourceError) as info:
        load_document(path, display="latin1.yaml")
    assert info.value.source == "latin1.yaml"
    assert "cannot read file" in info.value.message


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        load_document(tmp_path, display="folder")
    assert "cannot read file" in info.value.message
