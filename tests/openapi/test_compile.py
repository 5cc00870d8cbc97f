"""Tests for :mod:`apishield.openapi.compile` (OpenAPI document to router and per-operation checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apishield.openapi.compile import BodySpec, CompiledAPI, MediaSpec, compile_api, media_kind
from apishield.openapi.document import load_openapi

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def shop31() -> CompiledAPI:
    return compile_api(load_openapi(DATA / "shop31.yaml"))


@pytest.fixture(scope="module")
def shop30() -> CompiledAPI:
    return compile_api(load_openapi(DATA / "shop30.yaml"))


def compile_text(tmp_path: Path, text: str, max_string_length: int | None = 65_536) -> CompiledAPI:
    path = tmp_path / "api.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_api(load_openapi(path), max_string_length)


HEAD = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"


# -- shop31 ---------------------------------------------------------------------------------------


def test_shop31_compiles_without_issues(shop31: CompiledAPI) -> None:
    assert shop31.issues == []
    assert shop31.document.version == "3.1"


def test_shop31_operations(shop31: CompiledAPI) -> None:
    ops = {op_id: (op.method, op.template) for op_id, op in shop31.operations.items()}
    assert ops == {
        "listItems": ("GET", "/items"),
        "createItem": ("POST", "/items"),
        "searchItems": ("GET", "/items/search"),
        "getItem": ("GET", "/items/{itemId}"),
        "updateItem": ("PUT", "/items/{itemId}"),
        "deleteItem": ("DELETE", "/items/{itemId}"),
        "getFile": ("GET", "/files/{name}.{ext}"),
        "getThing": ("GET", "/things/{thingId}"),
        "createNode": ("POST", "/nodes"),
        "checkFormats": ("POST", "/formats"),
        "boom": ("GET", "/boom"),
        "login": ("POST", "/login"),
    }


def test_shop31_router(shop31: CompiledAPI) -> None:
    hit = shop31.router.match(["items", "search"])
    assert hit is not None
    assert hit[0].template == "/items/search"
    assert hit[0].target["GET"].operation_id == "searchItems"
    hit = shop31.router.match(["items", "42"])
    assert hit is not None
    route, params = hit
    assert params == {"itemId": "42"}
    assert set(route.target) == {"GET", "PUT", "DELETE"}
    hit = shop31.router.match(["files", "notes.txt"])
    assert hit is not None
    assert hit[1] == {"name": "notes", "ext": "txt"}
    assert shop31.router.match(["items", "42", "extra"]) is None


def test_shop31_known_query_and_deep_objects(shop31: CompiledAPI) -> None:
    list_items = shop31.operations["listItems"]
    assert list_items.known_query == frozenset({"limit", "tag", "fields", "filter", "sort", "active"})
    assert list_items.deep_objects == frozenset({"filter"})
    assert shop31.operations["searchItems"].known_query == frozenset({"q"})
    assert shop31.operations["getItem"].known_query == frozenset()
    assert shop31.operations["getItem"].deep_objects == frozenset()


def test_shop31_parameter_specs(shop31: CompiledAPI) -> None:
    params = {p.name: p for p in shop31.operations["listItems"].params}
    assert params["limit"].kind == "primitive"
    assert params["limit"].types == frozenset({"integer"})
    assert params["limit"].required is False
    assert (params["tag"].kind, params["tag"].style, params["tag"].explode) == ("array", "form", True)
    assert params["tag"].item_types == frozenset({"string"})
    assert (params["fields"].kind, params["fields"].explode) == ("array", False)
    assert (params["filter"].kind, params["filter"].style) == ("object", "deepObject")
    assert params["filter"].property_types == {"color": frozenset({"string"}), "size": frozenset({"integer"})}
    assert params["active"].types == frozenset({"boolean"})
    get_item = {(p.name, p.location): p for p in shop31.operations["getItem"].params}
    assert set(get_item) == {("itemId", "path"), ("X-Trace", "header"), ("session", "cookie")}
    assert get_item[("itemId", "path")].required is True  # path-item level parameter inherited
    assert get_item[("X-Trace", "header")].key == "x-trace"
    assert get_item[("session", "cookie")].style == "form"


def test_shop31_parameters_validator(shop31: CompiledAPI) -> None:
    validator = shop31.operations["listItems"].params_validator
    assert validator is not None
    assert validator.is_valid({"query": {"limit": 5, "tag": ["a"], "filter": {"color": "red"}}})
    violations = validator.violations(
        {"query": {"limit": 0, "filter": {"color": "green"}}}, split_location=True
    )
    assert sorted((v.location, v.pointer) for v in violations) == [
        ("query", "/filter/color"),
        ("query", "/limit"),
    ]
    search = shop31.operations["searchItems"].params_validator
    assert search is not None
    [missing] = search.violations({"query": {}}, split_location=True)
    assert (missing.location, missing.pointer, missing.reason) == ("query", "/q", "is required")
    assert shop31.operations["createNode"].params_validator is None


def test_shop31_request_bodies(shop31: CompiledAPI) -> None:
    create = shop31.operations["createItem"].body
    assert create is not None
    assert create.required is True
    assert set(create.media) == {"application/json", "application/x-www-form-urlencoded"}
    assert create.media["application/json"].kind == "json"
    form = create.media["application/x-www-form-urlencoded"]
    assert form.kind == "form"
    assert form.property_types == {"name": frozenset({"string"}), "price": frozenset({"number"})}
    validator = create.media["application/json"].validator
    assert validator is not None
    assert validator.is_valid({"name": "pen"})
    # request view: readOnly id/created are refused, writeOnly secret is accepted
    assert not validator.is_valid({"name": "pen", "id": 1})
    assert validator.is_valid({"name": "pen", "secret": "s"})
    assert shop31.operations["listItems"].body is None


def test_shop31_responses(shop31: CompiledAPI) -> None:
    get_item = shop31.operations["getItem"]
    assert set(get_item.responses) == {"200", "404"}
    ok = get_item.responses["200"].media["application/json"]
    assert ok.validator is not None
    assert ok.stripper is not None
    # response view: writeOnly secret is refused and stripped, readOnly id is required
    assert ok.validator.is_valid({"id": 1, "name": "pen"})
    assert not ok.validator.is_valid({"name": "pen"})
    assert not ok.validator.is_valid({"id": 1, "name": "pen", "secret": "s"})
    body = {"id": 1, "name": "pen", "secret": "s", "internal": True, "owner": {"name": "o", "email": "x"}}
    removed: list[str] = []
    assert ok.stripper(body, "", removed) == {"id": 1, "name": "pen", "owner": {"name": "o"}}
    assert sorted(removed) == ["/internal", "/owner/email", "/secret"]
    text = shop31.operations["getFile"].responses["200"].media["text/plain"]
    assert (text.kind, text.validator, text.stripper) == ("opaque", None, None)
    assert shop31.operations["deleteItem"].responses["204"].media == {}


def test_shop31_recursive_schema(shop31: CompiledAPI) -> None:
    body = shop31.operations["createNode"].body
    assert body is not None
    validator = body.media["application/json"].validator
    assert validator is not None
    assert validator.is_valid({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]})
    [violation] = validator.violations(
        {"name": "a", "children": [{"name": "b", "children": [{"x": 1}]}]}, limit=1
    )
    assert violation.pointer.startswith("/children/0/children/0")


def test_string_cap_applies_to_unbounded_strings(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    post:\n      operationId: a\n      requestBody:\n        content:\n"
        "          application/json:\n            schema: {type: object, properties: {s: {type: string}}}\n"
        "      responses: {'204': {description: ok}}\n"
    )
    body = compile_text(tmp_path, text, max_string_length=3).operations["a"].body
    assert body is not None
    validator = body.media["application/json"].validator
    assert validator is not None
    assert validator.is_valid({"s": "abc"})
    assert not validator.is_valid({"s": "abcd"})


# -- shop30 ---------------------------------------------------------------------------------------


def test_shop30_compiles_with_30_semantics(shop30: CompiledAPI) -> None:
    assert shop30.issues == []
    assert shop30.document.version == "3.0"
    op = shop30.operations["putWidget"]
    assert (op.method, op.template) == ("PUT", "/widgets/{widgetId}")
    [param] = op.params
    assert (param.name, param.location, param.types) == ("widgetId", "path", frozenset({"integer"}))
    assert op.params_validator is not None
    assert op.params_validator.is_valid({"path": {"widgetId": 2**31 - 1}})
    assert not op.params_validator.is_valid({"path": {"widgetId": 2**31}})
    assert op.body is not None
    validator = op.body.media["application/json"].validator
    assert validator is not None
    assert validator.is_valid({"name": "w", "note": None, "parent": None, "kind": "large"})
    assert not validator.is_valid({"name": "w", "note": "too long"})
    assert not validator.is_valid({"name": "w", "weight": 0})
    assert validator.is_valid({"name": "w", "weight": 10})
    assert not validator.is_valid({"name": "w", "kind": "medium"})
    assert not validator.is_valid({"name": "w", "count": 2**31})


# -- response_for ---------------------------------------------------------------------------------

RESPONSES = (
    HEAD + "paths:\n  /r:\n    get:\n      operationId: r\n      responses:\n"
    "        '200': {description: exact}\n"
    "        2xx: {description: class}\n"
    "        4XX: {description: client}\n"
    "        '404': {description: missing}\n"
    "        default: {description: other}\n"
    "        x-note: {description: ignored}\n"
)


def test_response_for_exact_then_class_then_default(tmp_path: Path) -> None:
    op = compile_text(tmp_path, RESPONSES).operations["r"]
    assert set(op.responses) == {"200", "2XX", "4XX", "404", "default"}

    def key(status: int) -> str | None:
        spec = op.response_for(status)
        return spec.key if spec is not None else None

    assert key(200) == "200"
    assert key(201) == "2XX"
    assert key(299) == "2XX"
    assert key(404) == "404"
    assert key(400) == "4XX"
    assert key(500) == "default"
    assert key(302) == "default"


def test_response_for_without_default(tmp_path: Path) -> None:
    text = (
        HEAD
        + "paths:\n  /r:\n    get:\n      operationId: r\n"
        + "      responses:\n        '200': {description: ok}\n"
    )
    op = compile_text(tmp_path, text).operations["r"]
    assert op.response_for(200) is not None
    assert op.response_for(201) is None
    assert op.response_for(500) is None


# -- issues ---------------------------------------------------------------------------------------


def issue_messages(api: CompiledAPI) -> dict[tuple[str | int, ...], str]:
    return {i.path: i.message for i in api.issues}


def test_duplicate_operation_id(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n"
        "  /a:\n    get: {operationId: same, responses: {'200': {description: ok}}}\n"
        "  /b:\n    get: {operationId: same, responses: {'200': {description: ok}}}\n"
    )
    api = compile_text(tmp_path, text)
    assert issue_messages(api) == {("paths", "/b", "get", "operationId"): "duplicate operationId 'same'"}
    assert api.issues[0].severity == "error"


def test_path_parameter_missing_from_the_template(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a/{id}:\n    get:\n      operationId: a\n      parameters:\n"
        "        - {name: id, in: path, required: true, schema: {type: string}}\n"
        "        - {name: other, in: path, required: true, schema: {type: string}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    api = compile_text(tmp_path, text)
    assert issue_messages(api) == {
        ("paths", "/a/{id}", "get", "parameters", 1): "path parameter 'other' is not in the path template"
    }


def test_broken_refs(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    get:\n      operationId: a\n      parameters:\n"
        "        - {$ref: '#/components/parameters/Missing'}\n"
        "      responses:\n"
        "        '200': {$ref: '#/components/responses/Missing'}\n"
        "        '201':\n          description: ok\n          content:\n            application/json:\n"
        "              schema: {$ref: '#/components/schemas/Missing'}\n"
    )
    api = compile_text(tmp_path, text)
    messages = issue_messages(api)
    assert messages[("paths", "/a", "get", "parameters", 0)] == (
        "$ref '#/components/parameters/Missing' does not resolve"
    )
    assert messages[("paths", "/a", "get", "responses", "200")] == (
        "$ref '#/components/responses/Missing' does not resolve"
    )
    schema_issue = messages[
        ("paths", "/a", "get", "responses", "201", "content", "application/json", "schema")
    ]
    assert schema_issue.startswith("schema cannot be compiled")
    assert "/components/schemas/Missing" in schema_issue
    assert all(i.severity == "error" for i in api.issues)
    op = api.operations["a"]
    assert op.params == []
    assert "200" not in op.responses
    assert op.responses["201"].media["application/json"].validator is None


def test_reference_cycle(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    get:\n      operationId: a\n      responses:\n"
        "        '200': {$ref: '#/components/responses/A'}\n"
        "components:\n  responses:\n    A: {$ref: '#/components/responses/B'}\n"
        "    B: {$ref: '#/components/responses/A'}\n"
    )
    api = compile_text(tmp_path, text)
    assert issue_messages(api) == {("paths", "/a", "get", "responses", "200"): "reference cycle"}


@pytest.mark.parametrize("style", ["label", "matrix", "form"])
def test_unsupported_path_style(tmp_path: Path, style: str) -> None:
    text = (
        HEAD + "paths:\n  /a/{id}:\n    get:\n      operationId: a\n      parameters:\n"
        f"        - {{name: id, in: path, required: true, style: {style}, schema: {{type: string}}}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    api = compile_text(tmp_path, text)
    assert issue_messages(api) == {
        (
            "paths",
            "/a/{id}",
            "get",
            "parameters",
            0,
            "style",
        ): f"path style {style!r} is not supported; use simple"
    }


def test_malformed_parameters(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    get:\n      operationId: a\n      parameters:\n"
        "        - {name: x}\n"
        "        - {name: y, in: body}\n"
        "        - {name: Accept, in: header, schema: {type: string}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    api = compile_text(tmp_path, text)
    assert issue_messages(api) == {
        ("paths", "/a", "get", "parameters", 0): "a parameter needs 'name' and 'in'",
        ("paths", "/a", "get", "parameters", 1, "in"): "unknown parameter location 'body'",
    }
    assert api.operations["a"].params == []  # Accept is ignored per the specification


def test_missing_operation_id_is_a_warning(tmp_path: Path) -> None:
    text = HEAD + "paths:\n  /a:\n    post: {responses: {'200': {description: ok}}}\n"
    api = compile_text(tmp_path, text)
    [issue] = api.issues
    assert issue.severity == "warning"
    assert issue.path == ("paths", "/a", "post")
    assert "'POST /a'" in issue.message
    assert "POST /a" in api.operations


def test_conflicting_templates_are_an_issue(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n"
        "  /a/{x}:\n    get: {operationId: one, responses: {'200': {description: ok}}}\n"
        "  /a/{y}:\n    get: {operationId: two, responses: {'200': {description: ok}}}\n"
    )
    api = compile_text(tmp_path, text)
    [issue] = api.issues
    assert issue.path == ("paths", "/a/{y}")
    assert "identical templates" in issue.message


def test_backtracking_pattern_is_a_warning(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    get:\n      operationId: a\n      parameters:\n"
        "        - {name: q, in: query, schema: {type: string, pattern: '^(?!admin).*$'}}\n"
        "      responses: {'200': {description: ok}}\n"
    )
    api = compile_text(tmp_path, text)
    [issue] = api.issues
    assert issue.severity == "warning"
    assert issue.path == ("paths", "/a", "get", "parameters")
    assert "backtracking" in issue.message


def test_extension_keys_are_skipped(tmp_path: Path) -> None:
    text = (
        HEAD
        + "paths:\n  x-internal: {get: {operationId: hidden}}\n"
        + "  /a:\n    get: {operationId: a, responses: {}}\n"
    )
    api = compile_text(tmp_path, text)
    assert list(api.operations) == ["a"]
    assert api.router.templates() == ["/a"]


def test_malformed_path_template_is_an_issue(tmp_path: Path) -> None:
    text = HEAD + "paths:\n  /x/{}:\n    get: {operationId: x, responses: {'200': {description: ok}}}\n"
    api = compile_text(tmp_path, text)
    assert [i.path for i in api.issues] == [("paths", "/x/{}")]


# -- media types ----------------------------------------------------------------------------------


def body(*media_types: str) -> BodySpec:
    return BodySpec(required=False, media={mt: MediaSpec(mt, media_kind(mt)) for mt in media_types})


def chosen(spec: BodySpec, content_type: str) -> str | None:
    media = spec.match(content_type)
    return media.media_type if media is not None else None


def test_body_match_precedence() -> None:
    spec = body("*/*", "application/*", "application/json", "text/plain")
    assert chosen(spec, "application/json") == "application/json"
    assert chosen(spec, "application/xml") == "application/*"
    assert chosen(spec, "text/plain") == "text/plain"
    assert chosen(spec, "text/html") == "*/*"
    assert chosen(spec, "image/png") == "*/*"


def test_body_match_without_wildcards() -> None:
    spec = body("application/json")
    assert chosen(spec, "application/json") == "application/json"
    assert chosen(spec, "application/xml") is None
    assert chosen(spec, "text/plain") is None
    assert chosen(body("text/*"), "text/csv") == "text/*"
    assert chosen(body("text/*"), "application/json") is None


def test_body_media_types_are_normalised_at_compile(tmp_path: Path) -> None:
    text = (
        HEAD + "paths:\n  /a:\n    post:\n      operationId: a\n      requestBody:\n        content:\n"
        "          'Application/JSON; charset=utf-8': {schema: {type: object}}\n"
        "          'application/*': {}\n"
        "      responses: {'204': {description: ok}}\n"
    )
    spec = compile_text(tmp_path, text).operations["a"].body
    assert spec is not None
    assert set(spec.media) == {"application/json", "application/*"}
    assert chosen(spec, "application/json") == "application/json"
    assert chosen(spec, "application/octet-stream") == "application/*"


@pytest.mark.parametrize(
    ("media_type", "kind"),
    [
        ("application/json", "json"),
        ("application/problem+json", "json"),
        ("application/vnd.api+json", "json"),
        ("application/x-www-form-urlencoded", "form"),
        ("multipart/form-data", "opaque"),
        ("text/plain", "opaque"),
        ("application/jsonl", "opaque"),
    ],
)
def test_media_kind(media_type: str, kind: str) -> None:
    assert media_kind(media_type) == kind
