"""Tests for :mod:`apishield.openapi.overlay` (OpenAPI Overlay Specification 1.0.0)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import yaml

from apishield.openapi.overlay import (
    OverlayError,
    OverlayWarning,
    apply_overlay,
    apply_overlays,
    validate_overlay,
)

SOURCE = "tighten.yaml"


def load(text: str) -> Any:
    return yaml.safe_load(text)


def overlay(*actions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"overlay": "1.0.0", "info": {"title": "Test overlay", "version": "1.0.0"}}
    doc.update(fields)
    doc["actions"] = list(actions)
    return doc


def apply(document: dict[str, Any], *actions: dict[str, Any]) -> tuple[dict[str, Any], list[OverlayWarning]]:
    return apply_overlay(document, overlay(*actions), SOURCE)


def error_of(document: dict[str, Any], ov: Any) -> OverlayError:
    with pytest.raises(OverlayError) as info:
        apply_overlay(document, ov, SOURCE)
    return info.value


CUSTOMER_API = """
openapi: 3.1.0
info:
  title: Customer API
  version: 2.3.0
tags:
  - name: customers
paths:
  /customers:
    parameters:
      - name: X-Tenant
        in: header
        schema: {type: string}
    get:
      operationId: listCustomers
      parameters:
        - name: limit
          in: query
          schema: {type: integer}
        - name: X-Debug
          in: header
          schema: {type: string}
        - name: cursor
          in: query
          schema: {type: string}
        - name: X-Trace
          in: header
          schema: {type: string}
      responses:
        '200': {description: OK}
    post:
      operationId: createCustomer
      security:
        - apiKey: []
      requestBody:
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Customer'}
      responses:
        '201': {description: Created}
  /customers/{id}:
    get:
      operationId: getCustomer
      parameters:
        - name: id
          in: path
          required: true
          schema: {type: string}
      responses:
        '200': {description: OK}
    delete:
      operationId: purgeCustomer
      x-internal: true
      responses:
        '204': {description: Deleted}
  /orders:
    get:
      operationId: listOrders
      parameters:
        - name: limit
          in: query
          schema: {type: integer}
      responses:
        '200': {description: OK}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-API-Key}
    bearerAuth: {type: http, scheme: bearer}
  schemas:
    Customer:
      type: object
      required: [name]
      properties:
        name: {type: string}
        email: {type: string, format: email}
        address:
          type: object
          properties:
            city: {type: string}
    Status:
      type: string
      enum: [active, closed]
"""


@pytest.fixture
def api() -> dict[str, Any]:
    document: dict[str, Any] = load(CUSTOMER_API)
    return document


# --- The examples of the specification (Overlay 1.0.0 §4.5) ----------------------------------------


def test_structured_overlay_example_merges_a_mirror_of_the_document() -> None:
    document = load(
        """
        openapi: 3.1.0
        info: {title: Pets, version: 1.0.0}
        paths:
          /:
            get:
              responses: {'200': {description: OK}}
          /pets:
            get:
              summary: old summary
              responses: {'200': {description: OK}}
        """
    )
    # The specification's example ends with empty `components:` and `tags:` placeholders; as YAML
    # nulls they would be merged literally, so they are left out here.
    ov = load(
        """
        overlay: 1.0.0
        info:
          title: Structured Overlay
          version: 1.0.0
        actions:
          - target: '$' # Root of document
            update:
              info:
                x-overlay-applied: structured-overlay
              paths:
                '/':
                  summary: 'The root resource'
                  get:
                    summary: 'Retrieve the root resource'
                    x-rate-limit: 100
                '/pets':
                  get:
                    summary: 'Retrieve a list of pets'
                    x-rate-limit: 100
        """
    )
    result, warnings = apply_overlay(document, ov, SOURCE)
    assert warnings == []
    assert result["info"] == {"title": "Pets", "version": "1.0.0", "x-overlay-applied": "structured-overlay"}
    assert result["paths"]["/"] == {
        "get": {
            "responses": {"200": {"description": "OK"}},
            "summary": "Retrieve the root resource",
            "x-rate-limit": 100,
        },
        "summary": "The root resource",
    }
    assert result["paths"]["/pets"]["get"] == {
        "summary": "Retrieve a list of pets",
        "responses": {"200": {"description": "OK"}},
        "x-rate-limit": 100,
    }


def test_targeted_overlay_example() -> None:
    document = load(
        """
        openapi: 3.1.0
        info: {title: T, version: '1'}
        paths:
          /foo:
            get: {description: old foo}
          /bar:
            get: {description: old bar, summary: kept}
        """
    )
    ov = load(
        """
        overlay: 1.0.0
        info:
          title: Targeted Overlay
          version: 1.0.0
        actions:
          - target: $.paths['/foo'].get
            update:
              description: This is the new description
          - target: $.paths['/bar'].get
            update:
              description: This is the updated description
          - target: $.paths['/bar']
            update:
              post:
                description: This is an updated description of a child object
                x-safe: false
        """
    )
    result, warnings = apply_overlay(document, ov, SOURCE)
    assert warnings == []
    assert result["paths"] == {
        "/foo": {"get": {"description": "This is the new description"}},
        "/bar": {
            "get": {"description": "This is the updated description", "summary": "kept"},
            "post": {"description": "This is an updated description of a child object", "x-safe": False},
        },
    }


def test_wildcard_overlay_example(api: dict[str, Any]) -> None:
    api["paths"]["/customers"]["get"]["parameters"].append({"name": "filter", "in": "query"})
    api["paths"]["/orders"]["get"]["parameters"].append({"name": "filter", "in": "header"})
    ov = load(
        """
        overlay: 1.0.0
        info:
          title: Update many objects at once
          version: 1.0.0
        actions:
          - target: $.paths.*.get
            update:
              x-safe: true
          - target: $.paths.*.get.parameters[?@.name=='filter' && @.in=='query']
            update:
              schema:
                $ref: '#/components/schemas/filterSchema'
        """
    )
    result, warnings = apply_overlay(api, ov, SOURCE)
    assert warnings == []
    assert [p["get"]["x-safe"] for p in result["paths"].values()] == [True, True, True]
    assert "x-safe" not in result["paths"]["/customers"]["post"]
    assert result["paths"]["/customers"]["get"]["parameters"][-1] == {
        "name": "filter",
        "in": "query",
        "schema": {"$ref": "#/components/schemas/filterSchema"},
    }
    assert result["paths"]["/orders"]["get"]["parameters"][-1] == {"name": "filter", "in": "header"}


def test_array_modification_examples_add_then_remove(api: dict[str, Any]) -> None:
    added, warnings = apply(
        api, {"target": "$.paths.*.get.parameters", "update": {"name": "dummy", "in": "query"}}
    )
    assert warnings == []
    for path in ("/customers", "/customers/{id}", "/orders"):
        assert added["paths"][path]["get"]["parameters"][-1] == {"name": "dummy", "in": "query"}

    removed, warnings = apply(
        added, {"target": "$.paths.*.get.parameters[?@.name == 'dummy']", "remove": True}
    )
    assert warnings == []
    assert removed == api


def test_traits_example_with_an_rfc9535_target() -> None:
    document = load(
        """
        openapi: 3.1.0
        info: {title: API with a paged collection, version: 1.0.0}
        paths:
          /items:
            get:
              x-oai-traits: ['paged']
              responses: {'200': {description: OK}}
          /items/{id}/subitems:
            get:
              x-oai-traits: ['paged']
              parameters:
                - {name: id, in: path, required: true}
              responses: {'200': {description: OK}}
          /other:
            get:
              responses: {'200': {description: OK}}
        """
    )
    paging = {"parameters": [{"name": "top", "in": "query"}, {"name": "skip", "in": "query"}]}
    result, warnings = apply(
        document, {"target": "$.paths[?@.get['x-oai-traits'][?@ == 'paged']].get", "update": paging}
    )
    assert warnings == []
    assert result["paths"]["/items"]["get"]["parameters"] == paging["parameters"]
    # An array property that exists on both sides is concatenated.
    assert [p["name"] for p in result["paths"]["/items/{id}/subitems"]["get"]["parameters"]] == [
        "id",
        "top",
        "skip",
    ]
    assert "parameters" not in result["paths"]["/other"]["get"]


def test_traits_example_as_printed_in_1_0_0_is_not_rfc9535() -> None:
    # The 1.0.0 text prints `$.paths.*.get[?@.x-oai-traits.paged]`: RFC 9535 dot notation has no '-'.
    with pytest.raises(OverlayError) as info:
        validate_overlay(overlay({"target": "$.paths.*.get[?@.x-oai-traits.paged]", "update": {}}), SOURCE)
    err = info.value
    assert err.action_index == 0
    assert "'$.paths.*.get[?@.x-oai-traits.paged]'" in err.message
    assert "not a valid RFC 9535 JSONPath query" in err.message
    assert "at character 19" in err.message
    assert "write ['x-oai-traits'] for .x-oai-traits" in err.message


def test_filter_on_operation_id_selects_the_operation(api: dict[str, Any]) -> None:
    result, warnings = apply(
        api,
        {"target": "$.paths.*[?@.operationId == 'getCustomer']", "update": {"x-rate-limit": 10}},
    )
    assert warnings == []
    assert result["paths"]["/customers/{id}"]["get"]["x-rate-limit"] == 10
    assert "x-rate-limit" not in result["paths"]["/customers/{id}"]["delete"]


def test_filter_one_level_too_deep_selects_nothing_and_warns(api: dict[str, Any]) -> None:
    # `$.paths.*.*` are the operations; the filter then tests their children (responses, ...).
    target = "$.paths.*.*[?@.operationId == 'getCustomer']"
    result, warnings = apply(api, {"target": target, "update": {"x-rate-limit": 10}})
    assert result == api
    assert warnings == [
        OverlayWarning(
            SOURCE,
            0,
            f"target {target!r} selects nothing, so the action changes nothing (a typo in the path?)",
        )
    ]


def test_remove_operations_marked_internal(api: dict[str, Any]) -> None:
    result, warnings = apply(api, {"target": "$.paths.*[?@['x-internal'] == true]", "remove": True})
    assert warnings == []
    assert list(result["paths"]["/customers/{id}"]) == ["get"]
    assert result["paths"]["/customers"] == api["paths"]["/customers"]


def test_traits_style_parameter_filter(api: dict[str, Any]) -> None:
    result, warnings = apply(
        api,
        {
            "target": "$.paths.*.*.parameters[?@.name=='limit']",
            "update": {"schema": {"minimum": 1, "maximum": 100}},
        },
    )
    assert warnings == []
    for path in ("/customers", "/orders"):
        limit = result["paths"][path]["get"]["parameters"][0]
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}


# --- Security tightening ----------------------------------------------------------------------------


def test_constrain_a_schema_property(api: dict[str, Any]) -> None:
    result, _ = apply(
        api,
        {
            "target": "$.components.schemas.Customer.properties.email",
            "update": {"maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
        },
    )
    assert result["components"]["schemas"]["Customer"]["properties"]["email"] == {
        "type": "string",
        "format": "email",
        "maxLength": 254,
        "pattern": "^[^@\\s]+@[^@\\s]+$",
    }


def test_close_every_object_schema_under_components(api: dict[str, Any]) -> None:
    result, warnings = apply(
        api,
        {
            "target": "$.components.schemas..[?@.type == 'object']",
            "update": {"additionalProperties": False},
        },
    )
    assert warnings == []
    customer = result["components"]["schemas"]["Customer"]
    assert customer["additionalProperties"] is False
    assert customer["properties"]["address"]["additionalProperties"] is False
    assert "additionalProperties" not in result["components"]["schemas"]["Status"]
    assert "additionalProperties" not in customer["properties"]["name"]


def test_require_authentication_on_every_operation(api: dict[str, Any]) -> None:
    operations = "$.paths.*['get','put','post','delete','options','head','patch','trace']"
    ov = overlay(
        # `security` arrays would be concatenated (an extra alternative), so replace them.
        {"target": "$.paths.*.*.security", "remove": True},
        {"target": operations, "update": {"security": [{"bearerAuth": []}]}},
    )
    result, warnings = apply_overlay(api, ov, SOURCE)
    assert warnings == []
    found = [
        op["security"]
        for item in result["paths"].values()
        for name, op in item.items()
        if name != "parameters"
    ]
    assert found == [[{"bearerAuth": []}]] * 5
    assert "security" not in result["paths"]["/customers"]["parameters"][0]


# --- Merge semantics (§4.4.3) -----------------------------------------------------------------------


def test_update_merges_recursively() -> None:
    document = {"a": {"keep": 1, "replace": "old", "nested": {"x": 1}, "list": [1], "n": None}}
    result, _ = apply(
        document,
        {
            "target": "$.a",
            "update": {"replace": "new", "nested": {"y": 2}, "list": [2, 3], "n": 5, "added": {"z": []}},
        },
    )
    assert result["a"] == {
        "keep": 1,
        "replace": "new",
        "nested": {"x": 1, "y": 2},
        "list": [1, 2, 3],
        "n": 5,
        "added": {"z": []},
    }
    assert list(result["a"]) == ["keep", "replace", "nested", "list", "n", "added"]


def test_update_can_set_a_primitive_to_null() -> None:
    result, _ = apply({"a": {"example": "x"}}, {"target": "$.a", "update": {"example": None}})
    assert result == {"a": {"example": None}}


def test_update_appends_to_a_selected_array(api: dict[str, Any]) -> None:
    result, warnings = apply(api, {"target": "$.tags", "update": {"name": "admin"}})
    assert warnings == []
    assert result["tags"] == [{"name": "customers"}, {"name": "admin"}]

    result, warnings = apply(api, {"target": "$.components.schemas.Status.enum", "update": "suspended"})
    assert warnings == []
    assert result["components"]["schemas"]["Status"]["enum"] == ["active", "closed", "suspended"]


def test_an_array_update_is_appended_as_one_entry_with_a_warning(api: dict[str, Any]) -> None:
    result, warnings = apply(
        api, {"target": "$.components.schemas.Status.enum", "update": ["suspended", "archived"]}
    )
    assert result["components"]["schemas"]["Status"]["enum"] == [
        "active",
        "closed",
        ["suspended", "archived"],
    ]
    assert len(warnings) == 1
    assert warnings[0].action_index == 0
    assert "single nested entry" in warnings[0].message


def test_update_of_the_root() -> None:
    result, _ = apply({"openapi": "3.1.0"}, {"target": "$", "update": {"x-gateway": {"enabled": True}}})
    assert result == {"openapi": "3.1.0", "x-gateway": {"enabled": True}}


def test_a_node_selected_twice_is_changed_once() -> None:
    document = {"a": [{"n": 1}, {"n": 2}], "b": [[]]}
    removed, _ = apply(document, {"target": "$.a[0,0]", "remove": True})
    assert removed["a"] == [{"n": 2}]
    appended, _ = apply(document, {"target": "$.b[0,0]", "update": "x"})
    assert appended["b"] == [["x"]]
    merged, _ = apply(document, {"target": "$.a[1,1]", "update": {"l": [1]}})
    assert merged["a"][1] == {"n": 2, "l": [1]}


def test_remove_several_items_of_one_array(api: dict[str, Any]) -> None:
    result, _ = apply(api, {"target": "$.paths.*.get.parameters[?@.in == 'header']", "remove": True})
    assert [p["name"] for p in result["paths"]["/customers"]["get"]["parameters"]] == ["limit", "cursor"]
    assert result["paths"]["/customers"]["parameters"] == api["paths"]["/customers"]["parameters"]


def test_remove_with_negative_index_and_slice() -> None:
    result, _ = apply({"a": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]}, {"target": "$.a[-1]", "remove": True})
    assert result == {"a": [{"n": 0}, {"n": 1}, {"n": 2}]}
    result, _ = apply({"a": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]}, {"target": "$.a[::2]", "remove": True})
    assert result == {"a": [{"n": 1}, {"n": 3}]}


def test_remove_nested_selections() -> None:
    document = {
        "paths": {
            "/admin": {"x-internal": True, "get": {"x-internal": True}},
            "/public": {"get": {}, "post": {"x-internal": True}},
        }
    }
    result, _ = apply(document, {"target": "$..[?@['x-internal'] == true]", "remove": True})
    assert result == {"paths": {"/public": {"get": {}}}}


def test_remove_an_array() -> None:
    result, _ = apply({"a": {"tags": ["x"], "k": 1}}, {"target": "$.a.tags", "remove": True})
    assert result == {"a": {"k": 1}}


# --- Order ------------------------------------------------------------------------------------------


def test_actions_apply_in_order_each_on_the_previous_result(api: dict[str, Any]) -> None:
    ov = overlay(
        {"target": "$.components.schemas.Status", "remove": True},
        {"target": "$.components.schemas", "update": {"Status": {"type": "string", "enum": ["on"]}}},
        {"target": "$.components.schemas.Status", "update": {"maxLength": 2}},
    )
    result, warnings = apply_overlay(api, ov, SOURCE)
    assert warnings == []
    assert result["components"]["schemas"]["Status"] == {"type": "string", "enum": ["on"], "maxLength": 2}


def test_an_action_sees_nodes_added_by_an_earlier_one() -> None:
    ov = overlay(
        {"target": "$", "update": {"x-new": {"a": 1}}},
        {"target": "$['x-new']", "update": {"b": 2}},
    )
    result, warnings = apply_overlay({}, ov, SOURCE)
    assert warnings == []
    assert result == {"x-new": {"a": 1, "b": 2}}


def test_overlays_apply_in_order_and_warnings_name_their_source(api: dict[str, Any]) -> None:
    first = overlay({"target": "$.info", "update": {"description": "first"}})
    second = overlay(
        {"target": "$.nothing", "update": {}},
        {"target": "$.info", "update": {"description": "second"}},
    )
    result, warnings = apply_overlays(api, [(first, "first.yaml"), (second, "second.yaml")])
    assert result["info"]["description"] == "second"
    assert [(w.source, w.action_index) for w in warnings] == [("second.yaml", 0)]
    assert str(warnings[0]).startswith("second.yaml: actions[0]: target '$.nothing' selects nothing")


def test_every_overlay_is_checked_before_any_is_applied(api: dict[str, Any]) -> None:
    good = overlay({"target": "$.nothing", "update": {}})
    with pytest.raises(OverlayError) as info:
        apply_overlays(api, [(good, "good.yaml"), ({"overlay": "1.0.0"}, "bad.yaml")])
    assert info.value.source == "bad.yaml"


def test_no_overlays_returns_a_copy(api: dict[str, Any]) -> None:
    result, warnings = apply_overlays(api, [])
    assert result == api
    assert result is not api
    assert warnings == []


# --- Warnings for actions that change nothing -------------------------------------------------------


def test_action_without_update_or_remove_warns(api: dict[str, Any]) -> None:
    result, warnings = apply(api, {"target": "$.info", "remove": False})
    assert result == api
    assert warnings == [
        OverlayWarning(SOURCE, 0, "the action has neither 'update' nor 'remove: true'; it changes nothing")
    ]


def test_update_is_ignored_when_remove_is_true(api: dict[str, Any]) -> None:
    result, warnings = apply(api, {"target": "$.tags", "update": {"name": "x"}, "remove": True})
    assert "tags" not in result
    assert warnings == [OverlayWarning(SOURCE, 0, "'update' is ignored because 'remove' is true")]


# --- Structure errors (validate_overlay) ------------------------------------------------------------


def structure_error(ov: Any) -> OverlayError:
    with pytest.raises(OverlayError) as info:
        validate_overlay(ov, SOURCE)
    assert info.value.source == SOURCE
    return info.value


def test_valid_overlays_pass() -> None:
    validate_overlay(overlay({"target": "$", "update": {}}), SOURCE)
    validate_overlay(
        overlay(
            {"target": "$.info", "description": "*Why*", "update": {"x": 1}, "x-owner": "sec"},
            {"target": "$.tags", "remove": True},
            extends="./openapi.yaml",
            **{"x-team": {"name": "security"}},
        )
        | {"info": {"title": "T", "version": "1", "x-id": 1}},
        SOURCE,
    )
    for version in ("1.0.0", "1.0.1", "1.0.12", "1.0.0-rc1"):
        validate_overlay(overlay({"target": "$", "update": {}}, overlay=version), SOURCE)


@pytest.mark.parametrize(
    ("ov", "expected"),
    [
        ([], "an Overlay document must be an object, got an array"),
        (None, "an Overlay document must be an object, got null"),
        (
            {"info": {"title": "t", "version": "1"}, "actions": [{"target": "$"}]},
            "missing required field 'overlay' (the Overlay Specification version, e.g. overlay: 1.0.0)",
        ),
        (
            overlay({"target": "$"}, overlay=1.0),
            "'overlay' must be a version string such as '1.0.0', got a number (1.0); quote it in YAML",
        ),
        (
            overlay({"target": "$"}, overlay="1.0"),
            "'overlay' must be a version number such as '1.0.0', got '1.0'",
        ),
        (
            overlay({"target": "$"}, overlay="2.0.0"),
            "unsupported Overlay Specification major version 2 ('2.0.0'); apishield supports Overlay 1.0.x",
        ),
        (
            overlay({"target": "$"}, overlay="0.9.0"),
            "unsupported Overlay Specification major version 0 ('0.9.0'); apishield supports Overlay 1.0.x",
        ),
        (
            overlay({"target": "$"}, overlay="1.1.0"),
            "unsupported Overlay Specification version '1.1.0'; apishield implements Overlay 1.0.x, whose "
            "semantics differ from 1.1 (set overlay: 1.0.0 if the overlay only uses 1.0 features)",
        ),
        (
            overlay({"target": "$"}, updates=[]),
            "unknown field 'updates' in the Overlay object; allowed: 'overlay', 'info', 'extends', "
            "'actions' and 'x-' extensions",
        ),
        (
            {"overlay": "1.0.0", "actions": [{"target": "$"}]},
            "missing required field 'info' (an object with 'title' and 'version')",
        ),
        (
            overlay({"target": "$"}, info="Tighten"),
            "'info' must be an object with 'title' and 'version', got a string ('Tighten')",
        ),
        (overlay({"target": "$"}, info={"version": "1"}), "'info' is missing required field 'title'"),
        (overlay({"target": "$"}, info={"title": "t"}), "'info' is missing required field 'version'"),
        (
            overlay({"target": "$"}, info={"title": "t", "version": 1.0}),
            "'info.version' must be a string, got a number (1.0); quote it in YAML",
        ),
        (
            overlay({"target": "$"}, info={"title": ["t"], "version": "1"}),
            "'info.title' must be a string, got an array",
        ),
        (
            overlay({"target": "$"}, info={"title": "t", "version": "1", "description": "d"}),
            "unknown field 'description' in 'info'; allowed: 'title', 'version' and 'x-' extensions",
        ),
        (
            overlay({"target": "$"}, extends={"url": "x"}),
            "'extends' must be a string (a URI reference to the target document), got an object",
        ),
        (
            {"overlay": "1.0.0", "info": {"title": "t", "version": "1"}},
            "missing required field 'actions' (a non-empty array of Action Objects)",
        ),
        (
            overlay() | {"actions": {"target": "$"}},
            "'actions' must be an array of Action Objects, got an object",
        ),
        (overlay(), "'actions' must contain at least one action"),
    ],
)
def test_document_errors(ov: Any, expected: str) -> None:
    err = structure_error(ov)
    assert err.action_index is None
    assert err.message == expected
    assert str(err) == f"{SOURCE}: {expected}"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("$.info", "an action must be an object, got a string ('$.info')"),
        (
            {"update": {}},
            "missing required field 'target' (an RFC 9535 JSONPath query such as $.paths.*.get)",
        ),
        (
            {"target": ["$.info"]},
            "'target' must be a string (an RFC 9535 JSONPath query), got an array",
        ),
        (
            {"target": "$.info", "description": 3},
            "'description' must be a string, got a number (3); quote it in YAML",
        ),
        (
            {"target": "$.info", "remove": "true"},
            "'remove' must be a boolean (true or false), got a string ('true')",
        ),
        (
            {"target": "$.info", "description": False},
            "'description' must be a string, got a boolean (false)",
        ),
        ({"target": "$.info", "remove": 1}, "'remove' must be a boolean (true or false), got a number (1)"),
        (
            {"target": "$.info", "value": {}},
            "unknown field 'value' in the action; allowed: 'target', 'description', 'update', 'remove' "
            "and 'x-' extensions",
        ),
        (
            {"target": "$.info", "copy": "$.other"},
            "unknown field 'copy' in the action ('copy' is an Overlay 1.1 feature; apishield implements "
            "Overlay 1.0); allowed: 'target', 'description', 'update', 'remove' and 'x-' extensions",
        ),
    ],
)
def test_action_field_errors(action: Any, expected: str) -> None:
    err = structure_error(overlay({"target": "$", "update": {}}, action))
    assert err.action_index == 1
    assert err.message == expected
    assert str(err) == f"{SOURCE}: actions[1]: {expected}"


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("info.description", "'info.description': a query starts with '$', the document root (e.g. $.paths)"),
        ("$.paths[?@.a == 1 2]", "expected comma, found 'int'"),
        ("$.paths[", "'$.paths[': unexpected end of query"),
        ("$.paths.*.get[?@.name = 'x']", "at character"),
        (" $.info", "unexpected leading whitespace"),
        ("", "a query starts with '$'"),
        ("$.a | $.b", "unexpected token '|'"),
        ("$.paths[?typeof(@) == 'x']", "function 'typeof' is not defined"),
        ("$.paths.*.x-internal", "write ['x-internal'] for .x-internal"),
    ],
)
def test_invalid_jsonpath_targets(target: str, fragment: str) -> None:
    err = structure_error(overlay({"target": target, "remove": True}))
    assert err.action_index == 0
    assert err.message.startswith(f"'target' is not a valid RFC 9535 JSONPath query: {target!r}: ")
    assert fragment in err.message
    assert "\n" not in err.message


def test_bracket_notation_reaches_names_with_dashes(api: dict[str, Any]) -> None:
    result, warnings = apply(api, {"target": "$.paths.*[?@['x-internal']]", "update": {"deprecated": True}})
    assert warnings == []
    assert result["paths"]["/customers/{id}"]["delete"]["deprecated"] is True


def test_duplicate_actions_are_refused() -> None:
    action = {"target": "$.info", "update": {"x-a": 1}}
    err = structure_error(overlay(action, {"target": "$.tags", "remove": True}, dict(action)))
    assert err.action_index == 2
    assert err.message == "this action repeats actions[0]; the actions of an overlay must be unique"


def test_actions_differing_only_in_json_type_are_not_duplicates() -> None:
    validate_overlay(
        overlay({"target": "$.info", "update": {"x-a": 1}}, {"target": "$.info", "update": {"x-a": True}}),
        SOURCE,
    )


# --- Errors when applying ---------------------------------------------------------------------------


def test_update_of_a_primitive_is_an_error(api: dict[str, Any]) -> None:
    err = error_of(api, overlay({"target": "$.info.title", "update": "New title"}))
    assert err.action_index == 0
    assert err.message == (
        "target '$.info.title' selects a string at $['info']['title']; Overlay 1.0 targets must be "
        "objects or arrays: to change it, target the containing object $['info'] and give 'update' "
        "the property 'title'"
    )


def test_update_of_null_is_an_error() -> None:
    err = error_of({"a": {"b": None}}, overlay({"target": "$.a.b", "update": {"c": 1}}))
    assert "selects null at $['a']['b']" in err.message


def test_remove_of_a_primitive_is_an_error(api: dict[str, Any]) -> None:
    target = "$.paths.*.*['x-internal']"
    err = error_of(api, overlay({"target": "$.info", "update": {}}, {"target": target, "remove": True}))
    assert err.action_index == 1
    assert err.message == (
        f"target {target!r} selects a boolean at $['paths']['/customers/{{id}}']['delete']['x-internal']; "
        "Overlay 1.0 targets must be objects or arrays: Overlay 1.0 cannot remove a primitive value on "
        "its own; select an object or array"
    )


def test_a_primitive_array_item_is_an_error(api: dict[str, Any]) -> None:
    err = error_of(api, overlay({"target": "$.components.schemas.Status.enum[0]", "remove": True}))
    assert "selects a string at $['components']['schemas']['Status']['enum'][0]" in err.message
    assert "replace the whole array instead" in err.message


def test_removing_the_root_is_an_error(api: dict[str, Any]) -> None:
    err = error_of(api, overlay({"target": "$", "remove": True}))
    assert err.message == "'remove' cannot remove the document root ($)"


def test_update_of_an_object_must_be_an_object(api: dict[str, Any]) -> None:
    err = error_of(api, overlay({"target": "$.info", "update": "text"}))
    assert err.message == (
        "target '$.info' selects an object at $['info'], so 'update' must be an object of properties "
        "to merge into it, got a string ('text')"
    )


@pytest.mark.parametrize(
    ("current", "new", "kinds"),
    [
        ("x", {"a": 1}, "the document has a string there and 'update' has an object"),
        ({"a": 1}, "x", "the document has an object there and 'update' has a string"),
        ([1], {"a": 1}, "the document has an array there and 'update' has an object"),
        ({"a": 1}, None, "the document has an object there and 'update' has null"),
        (None, [1], "the document has null there and 'update' has an array"),
    ],
)
def test_incompatible_merge_is_an_error(current: Any, new: Any, kinds: str) -> None:
    document = {"components": {"schemas": {"S": {"example": current}}}}
    err = error_of(
        document, overlay({"target": "$.components", "update": {"schemas": {"S": {"example": new}}}})
    )
    assert err.message.startswith(
        f"cannot merge 'update' into $['components']['schemas']['S']['example']: {kinds}"
    )


def test_overlay_error_pickles() -> None:
    err = OverlayError("o.yaml", 3, "broken")
    again = pickle.loads(pickle.dumps(err))
    assert (again.source, again.action_index, again.message, str(again)) == (
        "o.yaml",
        3,
        "broken",
        "o.yaml: actions[3]: broken",
    )


# --- Inputs are not modified ------------------------------------------------------------------------


def test_inputs_are_not_mutated(api: dict[str, Any]) -> None:
    ov = overlay(
        {"target": "$.paths.*.get", "update": {"x-tags": ["a"], "x-limits": {"rate": 1}}},
        {"target": "$.paths.*.get['x-tags']", "update": "b"},
        {"target": "$.components.schemas.Customer", "update": {"required": ["email"]}},
        {"target": "$.paths.*.get.parameters[?@.in == 'header']", "remove": True},
        {"target": "$.tags", "update": {"name": "added"}},
    )
    api_before, ov_before = copy.deepcopy(api), copy.deepcopy(ov)
    result, _ = apply_overlay(api, ov, SOURCE)
    assert api == api_before
    assert ov == ov_before
    # Values taken from the update are copied per target: they share nothing with each other or the overlay.
    assert result["paths"]["/customers"]["get"]["x-tags"] == ["a", "b"]
    result["paths"]["/orders"]["get"]["x-limits"]["rate"] = 99
    assert result["paths"]["/customers"]["get"]["x-limits"] == {"rate": 1}
    assert ov == ov_before
    assert result["components"]["schemas"]["Customer"]["required"] == ["name", "email"]


def test_shared_yaml_anchors_are_copied_apart() -> None:
    document = load(
        """
        components:
          schemas:
            A: &shared {type: object}
            B: *shared
        """
    )
    assert document["components"]["schemas"]["A"] is document["components"]["schemas"]["B"]
    result, _ = apply(document, {"target": "$.components.schemas.A", "update": {"maxProperties": 3}})
    assert result["components"]["schemas"] == {
        "A": {"type": "object", "maxProperties": 3},
        "B": {"type": "object"},
    }
    assert document["components"]["schemas"]["A"] == {"type": "object"}


def test_result_on_error_leaves_the_input_alone(api: dict[str, Any]) -> None:
    before = copy.deepcopy(api)
    error_of(api, overlay({"target": "$.tags", "remove": True}, {"target": "$.info.title", "update": "x"}))
    assert api == before
