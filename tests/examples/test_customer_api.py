"""The reference upstream (examples/customer_api): it works, and its deliberate weaknesses are real.

The service runs under uvicorn on a real socket on 127.0.0.1 with a fresh SQLite
database per test, and is exercised with the standard library's HTTP client.
Its OpenAPI document is checked too, including that every documented operation
is served and answers what the document says (apart from the known extra fields).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema_rs
import pytest
import uvicorn
import yaml

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "customer_api"
APP_FILE = EXAMPLE_DIR / "app.py"
OPENAPI_FILE = EXAMPLE_DIR / "openapi.yaml"
COMMON_FILE = EXAMPLE_DIR / "schemas" / "common.yaml"
SAMPLE_FILE = EXAMPLE_DIR / "sample_customer.json"

SEED_PASSWORD = "correct horse battery staple"
#: Fields every customer response carries although the OpenAPI document does not declare them.
INTERNAL_FIELDS = {"riskScore", "passwordHash", "internalNotes"}
SEED = {  # id: (username, partnerId, status)
    1: ("alice", "p-acme", "active"),
    2: ("bob", "p-acme", "active"),
    3: ("carol", "p-globex", "suspended"),
    4: ("dave", "p-globex", "active"),
    5: ("erin", "p-acme", "closed"),
    6: ("frank", "p-globex", "active"),
}
OPERATIONS = {
    "getHealth": ("get", "/v1/health"),
    "login": ("post", "/v1/login"),
    "listCustomers": ("get", "/v1/customers"),
    "createCustomer": ("post", "/v1/customers"),
    "searchCustomers": ("get", "/v1/customers/search"),
    "getCustomer": ("get", "/v1/customers/{customerId}"),
    "updateCustomer": ("put", "/v1/customers/{customerId}"),
    "deleteCustomer": ("delete", "/v1/customers/{customerId}"),
    "listAccounts": ("get", "/v1/customers/{customerId}/accounts"),
    "listOrders": ("get", "/v1/customers/{customerId}/orders"),
    "createOrder": ("post", "/v1/customers/{customerId}/orders"),
    "getOrder": ("get", "/v1/orders/{orderId}"),
}
ORDER_INPUT: dict[str, Any] = {
    "currency": "EUR",
    "items": [
        {"sku": "LAMP-LED", "name": "Desk lamp", "quantity": 2, "unitPrice": 24.5},
        {
            "sku": "STARTER-KIT",
            "quantity": 1,
            "unitPrice": 60,
            "bundle": [{"sku": "BULB-E27", "quantity": 4, "unitPrice": 0}],
        },
    ],
    "note": "Ring twice.",
}


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------


def load_example() -> ModuleType:
    """Load app.py by file path, as the demo and the benchmark do (no package, no sys.modules entry)."""
    spec = importlib.util.spec_from_file_location("customer_api_example", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example()


class Reply:
    def __init__(self, status: int, headers: Message, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


# No proxy from the environment: the service is on the loopback interface.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Service:
    """The example app served by uvicorn from a background thread on 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the customer API did not start within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data = raw if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if payload is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=10) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.headers, error.read())

    def get(self, path: str, **params: Any) -> Reply:
        query = urllib.parse.urlencode(params, doseq=True)
        return self.call("GET", path + (f"?{query}" if query else ""))

    def ids(self, path: str = "/v1/customers", **params: Any) -> list[int]:
        reply = self.get(path, **params)
        assert reply.status == 200, reply.text
        return [customer["id"] for customer in reply.json()]


@pytest.fixture
def api(example: ModuleType, tmp_path: Path) -> Iterator[Service]:
    service = Service(example.create_app(str(tmp_path / "customers.db")))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_customer() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------------------
# The OpenAPI document, as JSON Schema (a tiny bundler: local and relative-file refs)
# ---------------------------------------------------------------------------


def load_openapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))
    return document


def schema_defs() -> dict[str, Any]:
    """components.schemas and common.yaml as one `$defs` map, refs rewritten to point into it."""

    def rewrite_ref(ref: str, in_common: bool) -> str:
        target, _, pointer = ref.partition("#")
        if target == "schemas/common.yaml" or (target == "" and in_common):
            return "#/$defs/common." + pointer.removeprefix("/")
        assert target == "" and pointer.startswith("/components/schemas/"), ref
        return "#/$defs/" + pointer.removeprefix("/components/schemas/")

    def rewrite(node: Any, in_common: bool) -> Any:
        if isinstance(node, dict):
            return {
                key: rewrite_ref(value, in_common) if key == "$ref" else rewrite(value, in_common)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(value, in_common) for value in node]
        return node

    common = yaml.safe_load(COMMON_FILE.read_text(encoding="utf-8"))
    defs = {name: rewrite(schema, False) for name, schema in load_openapi()["components"]["schemas"].items()}
    defs.update({f"common.{name}": rewrite(schema, True) for name, schema in common.items()})
    return defs


def direction_view(defs: dict[str, Any], drop: str) -> dict[str, Any]:
    """The schemas as seen in one direction.

    Drops the `readOnly` properties (requests) or the `writeOnly` ones (responses).
    """
    view = copy.deepcopy(defs)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                for name in [name for name, prop in properties.items() if prop.get(drop)]:
                    del properties[name]
                    if name in node.get("required", []):
                        node["required"] = [item for item in node["required"] if item != name]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(view)
    return view


def validator(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, **schema}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def errors(schema: dict[str, Any], defs: dict[str, Any], instance: Any) -> list[str]:
    return [error.message for error in validator(schema, defs).iter_errors(instance)]


def without_internal_fields(value: Any) -> Any:
    if isinstance(value, list):
        return [without_internal_fields(item) for item in value]
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key not in INTERNAL_FIELDS}
    return value


# ---------------------------------------------------------------------------
# The OpenAPI document
# ---------------------------------------------------------------------------


def test_openapi_document_is_valid() -> None:
    validator_module = pytest.importorskip("openapi_spec_validator")
    validator_module.validate(load_openapi(), base_uri=OPENAPI_FILE.as_uri())


def test_openapi_operations_are_exactly_the_documented_surface() -> None:
    document = load_openapi()
    assert document["openapi"] == "3.1.0"
    assert [server["url"] for server in document["servers"]] == ["http://127.0.0.1:8080"]
    found = {
        operation["operationId"]: (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    }
    assert found == OPERATIONS
    assert "/v1/internal/debug" not in document["paths"]
    assert "/v1/customers/{customerId}/export" not in document["paths"]


def test_openapi_security_requirements() -> None:
    document = load_openapi()
    schemes = document["components"]["securitySchemes"]
    flows = schemes["oauth2"]["flows"]
    assert flows["authorizationCode"]["authorizationUrl"] == "http://127.0.0.1:8081/authorize"
    assert flows["authorizationCode"]["tokenUrl"] == flows["clientCredentials"]["tokenUrl"]
    assert flows["clientCredentials"]["tokenUrl"] == "http://127.0.0.1:8081/token"
    scopes = {
        "customers:read",
        "customers:write",
        "customers:admin",
        "orders:read",
        "orders:write",
        "pii:read",
    }
    assert set(flows["authorizationCode"]["scopes"]) == set(flows["clientCredentials"]["scopes"]) == scopes
    assert schemes["partnerKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["partnerKey"]["description"],
    }
    expected = {
        "getHealth": [],
        "login": [],
        "listCustomers": [{"oauth2": ["customers:read"]}],
        "createCustomer": [{"oauth2": ["customers:write"]}],
        "searchCustomers": [{"oauth2": ["customers:read"]}],
        "getCustomer": [{"oauth2": ["customers:read"]}],
        "updateCustomer": [{"oauth2": ["customers:write"]}],
        "deleteCustomer": [{"oauth2": ["customers:admin"]}],
        "listAccounts": [{"oauth2": ["customers:read"]}],
        "listOrders": [{"oauth2": ["orders:read"]}],
        "createOrder": [{"oauth2": ["orders:write"]}],
        "getOrder": [{"oauth2": ["orders:read"]}],
    }
    for operation_id, (method, path) in OPERATIONS.items():
        assert document["paths"][path][method]["security"] == expected[operation_id], operation_id


def test_openapi_request_schemas_reject_read_only_and_undeclared_fields() -> None:
    request_defs = direction_view(schema_defs(), drop="readOnly")
    body = {"$ref": "#/$defs/CustomerInput"}
    assert errors(body, request_defs, sample_customer()) == []
    for field, value in [("id", 7), ("partnerId", "p-globex"), ("createdAt", "2024-01-01T00:00:00Z")]:
        assert errors(body, request_defs, {**sample_customer(), field: value}), field
    assert errors(body, request_defs, {**sample_customer(), "isAdmin": True})
    assert errors(body, request_defs, {**sample_customer(), "password": "short"})
    assert errors(body, request_defs, {**sample_customer(), "password": "a long enough password"}) == []
    # The address comes from the relative-file $ref, its country from a ref inside that file.
    assert errors(
        body, request_defs, {**sample_customer(), "address": {"line1": "x", "city": "y", "country": "fr"}}
    )
    order = {"$ref": "#/$defs/OrderInput"}
    assert errors(order, request_defs, ORDER_INPUT) == []
    assert errors(order, request_defs, {**ORDER_INPUT, "total": 0.01})
    nested = copy.deepcopy(ORDER_INPUT)
    nested["items"][1]["bundle"][0]["bundle"] = [{"sku": "x", "quantity": 1, "unitPrice": 0}]
    assert errors(order, request_defs, nested), "the recursive OrderItem schema applies at every depth"


def test_sample_customer_is_a_realistic_put_body() -> None:
    sample = sample_customer()
    assert 400 <= len(SAMPLE_FILE.read_bytes()) <= 600
    assert {"name", "email", "status", "tags", "address", "dateOfBirth"} <= sample.keys()
    assert not {"id", "partnerId", "createdAt"} & sample.keys()


# ---------------------------------------------------------------------------
# Normal operation
# ---------------------------------------------------------------------------


def test_health_and_seed_data(api: Service) -> None:
    assert api.get("/v1/health").json() == {"status": "ok"}
    customers = api.get("/v1/customers").json()
    assert {c["id"]: (c["partnerId"], c["status"]) for c in customers} == {
        customer_id: (partner, status) for customer_id, (_, partner, status) in SEED.items()
    }
    for customer_id in SEED:
        accounts = api.get(f"/v1/customers/{customer_id}/accounts").json()
        orders = api.get(f"/v1/customers/{customer_id}/orders").json()
        assert 1 <= len(accounts) <= 2 and orders
        assert all(re.fullmatch(r"acc_[0-9]+", account["id"]) for account in accounts)
        assert all(uuid.UUID(order["id"]) for order in orders)


def test_documented_operations_are_served_as_documented(api: Service, example: ModuleType) -> None:
    """One valid request per documented operation: the documented status, the documented body.

    Customer bodies match the document once the undocumented internal fields are removed.
    """
    document = load_openapi()
    response_defs = direction_view(schema_defs(), drop="writeOnly")
    requests: dict[str, tuple[str, Any, dict[str, str], int]] = {
        "getHealth": ("/v1/health", None, {}, 200),
        "login": ("/v1/login", {"username": "alice", "password": SEED_PASSWORD}, {}, 200),
        "listCustomers": (
            "/v1/customers?limit=5&offset=0&status=active&sort=name&tag=vip&filter%5Bcountry%5D=FR",
            None,
            {},
            200,
        ),
        "createCustomer": ("/v1/customers", {**sample_customer(), "email": "new@example.com"}, {}, 201),
        "searchCustomers": ("/v1/customers/search?q=ma", None, {}, 200),
        "getCustomer": ("/v1/customers/2", None, {"X-Request-Id": str(uuid.uuid4())}, 200),
        "updateCustomer": ("/v1/customers/1", sample_customer(), {}, 200),
        "deleteCustomer": ("/v1/customers/5", None, {}, 204),
        "listAccounts": ("/v1/customers/1/accounts", None, {}, 200),
        "listOrders": ("/v1/customers/1/orders", None, {"Cookie": "session_hint=web-42"}, 200),
        "createOrder": ("/v1/customers/2/orders", ORDER_INPUT, {}, 201),
        "getOrder": (f"/v1/orders/{example.seed_order_id(1)}", None, {}, 200),
    }
    assert requests.keys() == OPERATIONS.keys()
    for operation_id, (method, template) in OPERATIONS.items():
        path, payload, headers, status = requests[operation_id]
        template_re = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        assert re.fullmatch(template_re, path.partition("?")[0]), operation_id
        reply = api.call(method.upper(), path, payload, headers=headers)
        assert reply.status == status, (operation_id, reply.status, reply.text)
        documented = document["paths"][template][method]["responses"][str(status)]
        if "content" not in documented:
            assert reply.body == b""
            continue
        assert reply.headers["Content-Type"] == "application/json"
        schema = documented["content"]["application/json"]["schema"]
        schema = json.loads(json.dumps(schema).replace("#/components/schemas/", "#/$defs/"))
        assert errors(schema, response_defs, without_internal_fields(reply.json())) == [], operation_id


def test_customer_crud(api: Service) -> None:
    created = api.call(
        "POST", "/v1/customers", {**sample_customer(), "name": "Gina Lopez", "email": "g@example.com"}
    )
    assert created.status == 201
    customer = created.json()
    assert customer["id"] == 7  # sequential ids
    assert created.headers["Location"] == "/v1/customers/7"
    assert customer["partnerId"] == "p-acme" and customer["createdAt"].endswith("Z")
    assert api.get("/v1/customers/7").json() == customer

    updated = api.call("PUT", "/v1/customers/7", {**sample_customer(), "name": "Gina Lopez-Ruiz"})
    assert updated.status == 200 and updated.json()["name"] == "Gina Lopez-Ruiz"
    assert api.call("DELETE", "/v1/customers/7").status == 204
    assert api.get("/v1/customers/7").status == 404
    assert api.get("/v1/customers/7").json() == {"error": "customer not found"}
    assert api.call("DELETE", "/v1/customers/7").status == 404
    assert api.call("PUT", "/v1/customers/7", sample_customer()).status == 404


def test_put_of_the_sample_body_is_idempotent(api: Service) -> None:
    before = api.get("/v1/customers/1").json()
    reply = api.call("PUT", "/v1/customers/1", sample_customer())
    assert reply.status == 200
    assert reply.json() == before
    assert api.get("/v1/customers/1").json() == before


def test_list_filters_paging_and_sorting(api: Service) -> None:
    assert api.ids() == [1, 2, 3, 4, 5, 6]
    assert api.ids(status="suspended") == [3]
    assert api.ids(tag=["vip", "newsletter"]) == [1]
    assert api.ids(tag="vip") == [1, 6]
    assert api.ids(**{"filter[city]": "Paris"}) == [1, 3]
    assert api.ids(**{"filter[city]": "Paris", "filter[country]": "FR", "status": "active"}) == [1]
    assert api.ids(**{"filter[country]": "DE"}) == [2]
    assert api.ids(limit=2, offset=3) == [4, 5]
    assert api.ids(sort="name") == [1, 2, 3, 4, 5, 6]
    assert api.ids(sort="createdAt") == [1, 2, 3, 4, 5, 6]
    assert api.ids("/v1/customers/search", q="MARTIN") == [1]
    assert api.ids("/v1/customers/search", q="example.org") == [3, 6]
    assert api.ids("/v1/customers/") == [1, 2, 3, 4, 5, 6]  # a trailing slash is tolerated


def test_orders(api: Service, example: ModuleType) -> None:
    first = api.get(f"/v1/orders/{example.seed_order_id(1)}").json()
    assert first["customerId"] == 1 and first["total"] == 1648.0
    # The seeded bundle nests a bundle: the recursive OrderItem schema has data to check.
    assert first["items"][1]["bundle"][1]["bundle"][0]["sku"] == "MOUSE-WL"

    reply = api.call("POST", "/v1/customers/2/orders", ORDER_INPUT)
    assert reply.status == 201
    order = reply.json()
    assert order["status"] == "pending" and order["total"] == 109.0 and order["customerId"] == 2
    assert reply.headers["Location"] == f"/v1/orders/{order['id']}"
    assert api.get(f"/v1/orders/{order['id']}").json() == order
    assert order in api.get("/v1/customers/2/orders").json()
    assert api.get(f"/v1/orders/{uuid.uuid4()}").status == 404
    assert api.call("POST", "/v1/customers/99/orders", ORDER_INPUT).status == 404
    assert api.get("/v1/customers/99/orders").status == 404
    assert api.get("/v1/customers/99/accounts").status == 404


def test_delete_removes_accounts_and_orders(api: Service, example: ModuleType) -> None:
    order_ids = [order["id"] for order in api.get("/v1/customers/5/orders").json()]
    reply = api.call("DELETE", "/v1/customers/5")
    assert reply.status == 204 and reply.body == b""
    assert all(api.get(f"/v1/orders/{order_id}").status == 404 for order_id in order_ids)
    assert api.ids() == [1, 2, 3, 4, 6]


def test_routing_errors(api: Service) -> None:
    missing = api.get("/v1/nothing-here")
    assert missing.status == 404 and missing.json() == {"error": "not found"}
    wrong_method = api.call("PATCH", "/v1/customers/1", {"name": "x"})
    assert wrong_method.status == 405 and wrong_method.headers["Allow"] == "GET, PUT, DELETE"
    assert api.call("POST", "/v1/health", {}).status == 405


def test_request_id_is_echoed(api: Service) -> None:
    request_id = str(uuid.uuid4())
    reply = api.call("GET", "/v1/customers/1", headers={"X-Request-Id": request_id})
    assert reply.headers["X-Request-Id"] == request_id


def test_login_succeeds_with_username_or_email(api: Service) -> None:
    for username, customer_id in [("alice", 1), ("frank", 6), ("carol.nguyen@example.org", 3)]:
        reply = api.call("POST", "/v1/login", {"username": username, "password": SEED_PASSWORD})
        assert reply.status == 200, username
        body = reply.json()
        assert body["customerId"] == customer_id and re.fullmatch(r"[0-9a-f]{64}", body["token"])


# ---------------------------------------------------------------------------
# The deliberate weaknesses
# ---------------------------------------------------------------------------


def test_responses_carry_undocumented_internal_fields(api: Service) -> None:
    documented = set(load_openapi()["components"]["schemas"]["Customer"]["properties"])
    customer = api.get("/v1/customers/3").json()
    assert set(customer) - documented == INTERNAL_FIELDS
    assert customer["riskScore"] == 0.81
    assert re.fullmatch(r"[0-9a-f]{64}", customer["passwordHash"])
    assert "fraud review" in customer["internalNotes"]
    for listed in api.get("/v1/customers").json() + api.get("/v1/customers/search", q="ex").json():
        assert set(listed) - documented == INTERNAL_FIELDS
    # So a response validated against the document fails on exactly these fields.
    response_defs = direction_view(schema_defs(), drop="writeOnly")
    assert errors({"$ref": "#/$defs/Customer"}, response_defs, customer)
    assert errors({"$ref": "#/$defs/Customer"}, response_defs, without_internal_fields(customer)) == []


def test_mass_assignment_on_create(api: Service) -> None:
    body = {
        **sample_customer(),
        "name": "Mallory",
        "email": "mallory@example.com",
        "password": "mallory-password-1",
        "id": 4242,
        "partnerId": "p-globex",
        "riskScore": 0.0,
        "isAdmin": True,
        "role": "admin",
    }
    reply = api.call("POST", "/v1/customers", body)
    assert reply.status == 201
    customer = reply.json()
    assert customer["id"] == 4242 and reply.headers["Location"] == "/v1/customers/4242"
    assert customer["partnerId"] == "p-globex" and customer["riskScore"] == 0.0
    assert "password" not in customer
    stored = api.get("/v1/customers/4242").json()
    assert stored["isAdmin"] is True and stored["role"] == "admin"
    login = api.call(
        "POST", "/v1/login", {"username": "mallory@example.com", "password": "mallory-password-1"}
    )
    assert login.status == 200 and login.json()["customerId"] == 4242


def test_mass_assignment_on_update_renumbers_the_customer(api: Service) -> None:
    reply = api.call(
        "PUT", "/v1/customers/2", {"id": 77, "isAdmin": True, "createdAt": "1999-01-01T00:00:00Z"}
    )
    assert reply.status == 200
    assert reply.json()["id"] == 77 and reply.json()["isAdmin"] is True
    assert reply.json()["createdAt"] == "1999-01-01T00:00:00Z"
    assert api.get("/v1/customers/2").status == 404
    assert api.get("/v1/customers/77").json()["name"] == "Bob Schneider"
    assert api.get("/v1/customers/77/accounts").json() == []  # bob's account stayed behind on id 2
    # Renumbering onto an existing customer breaks the primary key: a debug 500.
    clash = api.call("PUT", "/v1/customers/77", {"id": 1})
    assert clash.status == 500 and "sqlite3.IntegrityError" in clash.text


def test_mass_assignment_on_orders(api: Service) -> None:
    body = {**ORDER_INPUT, "status": "paid", "total": 0.01, "customerId": 3, "coupon": "FREE"}
    order = api.call("POST", "/v1/customers/2/orders", body).json()
    assert (order["status"], order["total"], order["customerId"], order["coupon"]) == (
        "paid",
        0.01,
        3,
        "FREE",
    )


def test_sort_is_injected_into_sql(api: Service) -> None:
    assert api.ids(sort="id DESC") == [6, 5, 4, 3, 2, 1]

    # Blind, boolean injection: the ordering answers yes/no questions about any table.
    def ask(condition: str) -> bool:
        ids = api.ids(sort=f"CASE WHEN {condition} THEN id ELSE -id END")
        assert ids in ([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1])
        return ids[0] == 1

    assert ask("(SELECT username FROM customers WHERE id = 1) = 'alice'")
    assert not ask("(SELECT username FROM customers WHERE id = 1) = 'mallory'")
    assert not ask("(SELECT count(*) FROM sessions) > 0")
    api.call("POST", "/v1/login", {"username": "bob", "password": SEED_PASSWORD})
    assert ask("(SELECT count(*) FROM sessions) > 0")


def test_errors_answer_500_with_traceback_and_sql(api: Service) -> None:
    reply = api.get("/v1/customers", sort="nonexistent")
    assert reply.status == 500
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Traceback (most recent call last)" in reply.text
    assert "sqlite3.OperationalError: no such column: nonexistent" in reply.text
    assert "SELECT * FROM customers ORDER BY nonexistent LIMIT ? OFFSET ?" in reply.text
    assert 'File "' in reply.text  # source paths of the server

    stacked = api.get("/v1/customers", sort="id; DELETE FROM customers")
    assert stacked.status == 500 and "DELETE FROM customers" in stacked.text
    assert api.ids() == [1, 2, 3, 4, 5, 6]  # one statement at a time: nothing was deleted

    # Input the document forbids reaches code that does not expect it.
    for reply in [
        api.get("/v1/customers/abc"),  # ValueError
        api.get("/v1/customers", limit="ten"),  # ValueError
        api.get("/v1/customers/search"),  # KeyError: 'q'
        api.call("POST", "/v1/customers", raw=b"{not json", headers={"Content-Type": "application/json"}),
        api.call("POST", "/v1/customers", {"name": {"first": "A"}, "email": "a@example.com"}),
        api.call("POST", "/v1/customers", {"email": "no-name@example.com"}),  # NOT NULL constraint
        api.call("POST", "/v1/login", {"username": "alice"}),  # KeyError: 'password'
    ]:
        assert reply.status == 500 and "Traceback" in reply.text, reply.text


def test_no_bounds_and_last_value_wins(api: Service) -> None:
    assert api.ids(limit=-1) == [1, 2, 3, 4, 5, 6]  # SQLite reads a negative limit as "no limit"
    assert api.ids(limit=[1, 3]) == [1, 2, 3]  # a repeated scalar parameter: the last one wins
    assert api.ids("/v1/customers/search", q="e") == [1, 2, 3, 4, 5, 6]  # minLength 2 is not enforced
    # Duplicate JSON keys: the last one wins too.
    raw = b'{"name": "Alice Martin", "name": "Eve"}'
    reply = api.call("PUT", "/v1/customers/1", raw=raw, headers={"Content-Type": "text/plain"})
    assert reply.status == 200 and reply.json()["name"] == "Eve"


def test_routes_on_the_percent_decoded_path(api: Service) -> None:
    reply = api.get("/v1/customers/1%2Fexport")  # one path segment on the wire, two in the app
    assert reply.status == 200 and reply.json()["customer"]["username"] == "alice"
    assert reply.headers["X-Powered-By"] == "customer-api/1.4.2 (python)"


def test_partner_header_is_trusted(api: Service) -> None:
    reply = api.call("GET", "/v1/customers", headers={"X-Partner-Id": "p-globex"})
    assert [c["id"] for c in reply.json()] == [3, 4, 6]
    created = api.call(
        "POST",
        "/v1/customers",
        {"name": "Hal", "email": "hal@example.com", "status": "active"},
        headers={"X-Partner-Id": "p-initech"},
    )
    assert created.json()["partnerId"] == "p-initech"


def test_login_tells_unknown_users_from_wrong_passwords(api: Service) -> None:
    unknown = api.call("POST", "/v1/login", {"username": "mallory", "password": SEED_PASSWORD})
    assert (unknown.status, unknown.json()) == (404, {"error": "unknown user"})
    wrong = api.call("POST", "/v1/login", {"username": "alice", "password": "Tr0ub4dor&3"})
    assert (wrong.status, wrong.json()) == (401, {"error": "wrong password"})


def test_undocumented_debug_endpoint_leaks_configuration(api: Service) -> None:
    reply = api.get("/v1/internal/debug")
    assert reply.status == 200
    config = reply.json()["config"]
    url = urllib.parse.urlsplit(config["DATABASE_URL"])
    assert url.username == "customer_api" and url.password
    assert config["SQLITE_PATH"].endswith("customers.db")
    assert reply.json()["counts"]["customers"] == 6


def test_undocumented_export_endpoint_dumps_everything(api: Service) -> None:
    token = api.call("POST", "/v1/login", {"username": "alice", "password": SEED_PASSWORD}).json()["token"]
    reply = api.get("/v1/customers/1/export")
    assert reply.status == 200
    export = reply.json()
    assert export["customer"]["username"] == "alice"
    assert export["customer"]["passwordSalt"] and export["customer"]["passwordHash"]
    assert [account["id"] for account in export["accounts"]] == ["acc_10001", "acc_10002"]
    assert len(export["orders"]) == 2
    assert [session["token"] for session in export["sessions"]] == [token]  # live session tokens
    assert api.get("/v1/customers/999/export").status == 404


def test_leaked_hash_is_a_single_salted_sha256(api: Service, example: ModuleType) -> None:
    customer = api.get("/v1/customers/1/export").json()["customer"]
    assert example.hash_password(SEED_PASSWORD, customer["passwordSalt"]) == customer["passwordHash"]


# ---------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------


def test_existing_database_is_reused_not_reseeded(example: ModuleType, tmp_path: Path) -> None:
    db_path = str(tmp_path / "reuse.db")
    example.create_app(db_path).close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("DELETE FROM customers WHERE id = 6")
    example.create_app(db_path).close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (5,)
    with pytest.raises(ValueError, match="file"):
        example.create_app(":memory:")


def test_runs_as_a_script(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(APP_FILE), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--db", str(tmp_path / "script.db"), "--log-level", "warning"]
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    with _OPENER.open(f"http://127.0.0.1:{port}/v1/health", timeout=2) as response:
                        assert json.loads(response.read()) == {"status": "ok"}
                        break
                except (urllib.error.URLError, ConnectionError):
                    assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
                    assert time.monotonic() < deadline, "the script did not start within 15 s"
                    time.sleep(0.05)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    # uvicorn re-raises the SIGTERM after its graceful shutdown.
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    # The lifespan shutdown closed the database: SQLite removed its write-ahead log.
    assert (tmp_path / "script.db").exists() and not (tmp_path / "script.db-wal").exists()
