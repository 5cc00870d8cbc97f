"""Tests for :mod:`apishield.openapi.document` (loading, bundling and overlaying OpenAPI documents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apishield.openapi.document import BUNDLE_KEY, OpenAPIError, load_openapi, resolve_pointer

BUNDLED = f"#/components/{BUNDLE_KEY}/"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, overlays: list[tuple[Path, str]] | None = None) -> OpenAPIError:
    with pytest.raises(OpenAPIError) as info:
        load_openapi(path, overlays)
    return info.value


def schema_at(data: dict[str, Any], path: str, method: str = "get", status: str = "200") -> Any:
    return data["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


MAIN = """\
openapi: 3.1.0
info: {title: Bundling, version: "1"}
paths:
  /customers:
    get:
      operationId: listCustomers
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "schemas/common.yaml#/Address"}
  /local:
    get:
      operationId: local
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Local"}
components:
  schemas:
    Local: {type: string}
"""

COMMON = """\
Address:
  type: object
  properties:
    street: {$ref: "#/Street"}
    geo: {$ref: "geo.yaml#/Geo"}
    local: {$ref: "../openapi.yaml#/components/schemas/Local"}
    next: {$ref: "#/Address"}
  example:
    street: {$ref: "this is example data, not a reference"}
Street: {type: string, maxLength: 80}
"""

GEO = """\
Geo:
  type: object
  properties:
    lat: {type: number}
    home: {$ref: "common.yaml#/Address"}
"""


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    write(tmp_path, "schemas/common.yaml", COMMON)
    write(tmp_path, "schemas/geo.yaml", GEO)
    return write(tmp_path, "openapi.yaml", MAIN)


def test_relative_file_refs_are_bundled(bundle: Path) -> None:
    doc = load_openapi(bundle)
    assert doc.version == "3.1"
    assert doc.source == "openapi.yaml"
    assert doc.warnings == []
    assert schema_at(doc.data, "/customers") == {"$ref": BUNDLED + "common.Address"}
    bundled = doc.data["components"][BUNDLE_KEY]
    assert set(bundled) == {"common.Address", "common.Street", "geo.Geo"}
    address = bundled["common.Address"]
    assert address["properties"]["street"] == {"$ref": BUNDLED + "common.Street"}
    assert address["properties"]["geo"] == {"$ref": BUNDLED + "geo.Geo"}
    assert bundled["common.Street"] == {"type": "string", "maxLength": 80}


def test_internal_refs_of_a_bundled_file_point_into_the_bundle(bundle: Path) -> None:
    address = load_openapi(bundle).data["components"][BUNDLE_KEY]["common.Address"]
    assert address["properties"]["next"] == {"$ref": BUNDLED + "common.Address"}


def test_refs_back_into_the_main_document_become_local(bundle: Path) -> None:
    doc = load_openapi(bundle)
    address = doc.data["components"][BUNDLE_KEY]["common.Address"]
    assert address["properties"]["local"] == {"$ref": "#/components/schemas/Local"}
    assert schema_at(doc.data, "/local") == {"$ref": "#/components/schemas/Local"}


def test_recursive_cross_file_refs_terminate(bundle: Path) -> None:
    bundled = load_openapi(bundle).data["components"][BUNDLE_KEY]
    assert bundled["geo.Geo"]["properties"]["home"] == {"$ref": BUNDLED + "common.Address"}


def test_every_ref_in_the_result_resolves_locally(bundle: Path) -> None:
    data = load_openapi(bundle).data
    refs: list[str] = []

    def collect(node: Any, skip: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and not skip:
                    refs.append(value)
                else:
                    collect(value, skip or key == "example")
        elif isinstance(node, list):
            for item in node:
                collect(item, skip)

    collect(data)
    assert len(refs) == 7  # 2 in the main document, 4 in Address, 1 in Geo
    for ref in refs:
        assert ref.startswith("#/")
        assert isinstance(resolve_pointer(data, ref), dict)


def test_example_values_are_not_rewritten(bundle: Path) -> None:
    address = load_openapi(bundle).data["components"][BUNDLE_KEY]["common.Address"]
    assert address["example"] == {"street": {"$ref": "this is example data, not a reference"}}


def test_whole_file_ref(tmp_path: Path) -> None:
    write(tmp_path, "error.yaml", "type: object\nproperties:\n  code: {type: integer}\n")
    main = write(tmp_path, "api.yaml", MAIN.replace("schemas/common.yaml#/Address", "error.yaml"))
    doc = load_openapi(main)
    assert schema_at(doc.data, "/customers") == {"$ref": BUNDLED + "error"}
    assert doc.data["components"][BUNDLE_KEY]["error"]["properties"]["code"] == {"type": "integer"}


def test_same_name_in_two_files_gets_distinct_bundle_names(tmp_path: Path) -> None:
    write(tmp_path, "a/common.yaml", "Address: {type: string}\n")
    write(tmp_path, "b/common.yaml", "Address: {type: integer}\n")
    text = MAIN.replace('{$ref: "#/components/schemas/Local"}', '{$ref: "b/common.yaml#/Address"}').replace(
        "schemas/common.yaml", "a/common.yaml"
    )
    doc = load_openapi(write(tmp_path, "api.yaml", text))
    first = resolve_pointer(doc.data, schema_at(doc.data, "/customers")["$ref"])
    second = resolve_pointer(doc.data, schema_at(doc.data, "/local")["$ref"])
    assert first == {"type": "string"}
    assert second == {"type": "integer"}


def test_documents_without_external_refs_get_no_bundle(tmp_path: Path) -> None:
    doc = load_openapi(
        write(
            tmp_path, "api.yaml", MAIN.replace("schemas/common.yaml#/Address", "#/components/schemas/Local")
        )
    )
    assert BUNDLE_KEY not in doc.data["components"]


def test_external_ref_under_the_default_response_is_bundled(tmp_path: Path) -> None:
    write(tmp_path, "responses.yaml", "Error:\n  description: failure\n")
    text = MAIN.replace(
        '        "200":\n          description: ok\n          content:\n            application/json:\n'
        '              schema: {$ref: "schemas/common.yaml#/Address"}',
        '        default: {$ref: "responses.yaml#/Error"}',
    )
    doc = load_openapi(write(tmp_path, "api.yaml", text))
    ref = doc.data["paths"]["/customers"]["get"]["responses"]["default"]["$ref"]
    assert resolve_pointer(doc.data, ref) == {"description": "failure"}


def test_external_ref_of_a_property_named_default_is_bundled(bundle: Path) -> None:
    text = MAIN.replace(
        'schema: {$ref: "schemas/common.yaml#/Address"}',
        'schema: {type: object, properties: {default: {$ref: "schemas/common.yaml#/Street"}}}',
    )
    doc = load_openapi(write(bundle.parent, "api.yaml", text))
    ref = schema_at(doc.data, "/customers")["properties"]["default"]["$ref"]
    assert resolve_pointer(doc.data, ref) == {"type": "string", "maxLength": 80}


# -- refused references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["https://example.com/schemas.yaml#/Address", "http://10.0.0.1/x.json", "file:///etc/passwd"],
)
def test_remote_refs_are_refused(tmp_path: Path, ref: str) -> None:
    err = error_of(write(tmp_path, "api.yaml", MAIN.replace("schemas/common.yaml#/Address", ref)))
    assert "remote reference" in str(err)
    assert repr(ref) in str(err)
    assert "not fetched" in str(err)


def test_remote_ref_inside_a_bundled_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "schemas/common.yaml", "Address: {$ref: 'https://example.com/a.yaml#/A'}\n")
    err = error_of(write(tmp_path, "api.yaml", MAIN))
    assert "remote reference 'https://example.com/a.yaml#/A'" in str(err)


def test_missing_file_error_names_the_file(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "api.yaml", MAIN.replace("schemas/common.yaml", "schemas/absent.yaml")))
    assert err.source == "absent.yaml"
    assert str(err) == "absent.yaml: file not found"


def test_missing_pointer_target_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "schemas/common.yaml", "Street: {type: string}\n")
    err = error_of(write(tmp_path, "api.yaml", MAIN))
    assert err.source == "common.yaml"
    assert "$ref target /Address not found" in str(err)


def test_invalid_yaml_in_a_referenced_file_has_its_line(tmp_path: Path) -> None:
    write(tmp_path, "schemas/common.yaml", "Address:\n  type: object\n  type: string\n")
    err = error_of(write(tmp_path, "api.yaml", MAIN))
    assert (err.source, err.line) == ("common.yaml", 3)
    assert "duplicate key 'type'" in str(err)


def test_missing_main_document(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.yaml")
    assert str(err) == "nope.yaml: file not found"


# -- versions -------------------------------------------------------------------------------------


def test_30_document_is_accepted(tmp_path: Path) -> None:
    doc = load_openapi(
        write(tmp_path, "api.yaml", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n")
    )
    assert doc.version == "3.0"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('swagger: "2.0"\ninfo: {title: t, version: "1"}\npaths: {}\n', 1, "Swagger 2.0 is not supported"),
        ("info: {title: t, version: '1'}\npaths: {}\n", 1, "missing 'openapi' version field"),
        (
            "info: {title: t, version: '1'}\nopenapi: 3.2.0\npaths: {}\n",
            2,
            "unsupported OpenAPI version '3.2.0'",
        ),
        ("info: {title: t}\n\nopenapi: 4.0.0\n", 3, "unsupported OpenAPI version '4.0.0'"),
        ("openapi: '3.1'\n", 1, "unsupported OpenAPI version '3.1'"),
        ("openapi: 3.0\n", 1, "the 'openapi' field must be a string"),
    ],
)
def test_unsupported_versions_are_refused_with_a_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    err = error_of(write(tmp_path, "api.yaml", text))
    assert err.source == "api.yaml"
    assert err.line == line
    assert message in str(err)
    assert str(err).startswith(f"api.yaml:{line}: ")


@pytest.mark.parametrize("text", ["- openapi: 3.1.0\n", "openapi\n", ""])
def test_document_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    err = error_of(write(tmp_path, "api.yaml", text))
    assert str(err) == "api.yaml:1: an OpenAPI document must be a mapping"


def test_paths_must_be_a_mapping(tmp_path: Path) -> None:
    err = error_of(
        write(tmp_path, "api.yaml", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: [a]\n")
    )
    assert str(err) == "api.yaml:3: 'paths' must be a mapping"


# -- resolve_pointer ------------------------------------------------------------------------------

POINTER_DOC: dict[str, Any] = {
    "paths": {"/items/{id}": {"get": 1}},
    "a~b": {"c/d": [10, 20, 30]},
    "~1": "tilde-one",
    "/": "slash",
    "": {"": "empty"},
    "x y": "space",
    "%": "percent",
    "list": [{"k": "v"}],
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("#/paths/~1items~1{id}/get", 1),
        ("/paths/~1items~1{id}/get", 1),
        ("#/a~0b/c~1d/2", 30),
        ("#/~01", "tilde-one"),
        ("#/~1", "slash"),
        ("#//", "empty"),
        ("#/x%20y", "space"),
        ("#/%25", "percent"),
        ("#/paths/~1items~1%7Bid%7D/get", 1),
        ("#/list/0/k", "v"),
        ("#", POINTER_DOC),
        ("", POINTER_DOC),
    ],
)
def test_resolve_pointer(pointer: str, value: Any) -> None:
    assert resolve_pointer(POINTER_DOC, pointer) == value


@pytest.mark.parametrize(
    ("pointer", "error"),
    [
        ("#/nope", KeyError),
        ("#paths", KeyError),
        ("#/a~1b", KeyError),
        ("#/list/-", KeyError),
        ("#/list/k", KeyError),
        ("#/list/5", IndexError),
        ("#/x y/deeper", KeyError),
        ("#/~01/x", KeyError),
    ],
)
def test_resolve_pointer_failures(pointer: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resolve_pointer(POINTER_DOC, pointer)


def test_resolve_pointer_non_ascii_digit_index_is_a_key_error() -> None:
    with pytest.raises((KeyError, IndexError)):
        resolve_pointer(POINTER_DOC, "#/list/\u00b2")


def test_resolve_pointer_refuses_leading_zero_indexes() -> None:
    with pytest.raises(KeyError):
        resolve_pointer({"list": ["a", "b"]}, "#/list/01")


# -- overlays -------------------------------------------------------------------------------------

OVERLAY = """\
overlay: 1.0.0
info: {title: tighten, version: "1"}
actions:
  - target: $.components.schemas.Local
    update:
      maxLength: 12
  - target: $.paths['/local'].get.responses['200'].content['application/json']
    update:
      schema:
        $ref: "schemas/common.yaml#/Street"
  - target: $.paths['/nowhere']
    remove: true
"""


def test_overlays_are_applied_before_bundling(bundle: Path) -> None:
    overlay = write(bundle.parent, "overlays/tighten.yaml", OVERLAY)
    doc = load_openapi(bundle, [(overlay, "tighten.yaml")])
    assert doc.data["components"]["schemas"]["Local"] == {"type": "string", "maxLength": 12}
    # the overlay's $ref is relative to the API document, and bundled like any other
    assert schema_at(doc.data, "/local") == {"$ref": BUNDLED + "common.Street"}
    assert doc.warnings
    assert all(w.startswith("tighten.yaml: actions[2]: ") for w in doc.warnings)


def test_overlays_apply_in_order(bundle: Path) -> None:
    first = write(bundle.parent, "one.yaml", OVERLAY.split("  - target: $.paths['/local']")[0])
    second = write(
        bundle.parent,
        "two.yaml",
        "overlay: 1.0.0\ninfo: {title: t, version: '1'}\nactions:\n"
        "  - target: $.components.schemas.Local\n    update: {maxLength: 3}\n",
    )
    doc = load_openapi(bundle, [(first, "one.yaml"), (second, "two.yaml")])
    assert doc.data["components"]["schemas"]["Local"]["maxLength"] == 3


def test_overlay_does_not_change_the_main_document_lines(bundle: Path) -> None:
    overlay = write(bundle.parent, "tighten.yaml", OVERLAY)
    doc = load_openapi(bundle, [(overlay, "tighten.yaml")])
    assert doc.line_of(("components", "schemas", "Local")) == 24
    assert doc.main.value["components"]["schemas"]["Local"] == {"type": "string"}


def test_invalid_overlay_is_an_openapi_error(bundle: Path) -> None:
    overlay = write(
        bundle.parent, "bad.yaml", "overlay: 2.0.0\ninfo: {title: t, version: '1'}\nactions: []\n"
    )
    err = error_of(bundle, [(overlay, "bad.yaml")])
    assert "bad.yaml" in str(err)


def test_overlay_that_is_not_a_mapping(bundle: Path) -> None:
    overlay = write(bundle.parent, "list.yaml", "- a\n")
    err = error_of(bundle, [(overlay, "list.yaml")])
    assert str(err) == "list.yaml:1: an overlay must be a mapping"


def test_missing_overlay_file(bundle: Path) -> None:
    err = error_of(bundle, [(bundle.parent / "absent.yaml", "absent.yaml")])
    assert str(err) == "absent.yaml: file not found"
