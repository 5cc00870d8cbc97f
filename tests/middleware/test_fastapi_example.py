"""examples/fastapi_app: the customer API in FastAPI, behind Shield, with the gateway demo's policy.

Tokens come from the embedded issuer through the real grants (as in
tests/scenario); the application runs under uvicorn on a real socket. The
expectations are the gateway scenario's (tests/scenario/test_bola_matrix.py):
the same policy gives the same answers in process.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from apishield.demo_client import mobile_token, partner_token
from apishield.issuer import create_issuer_app
from apishield.issuer.demo import DEMO_PASSWORD, bootstrap_demo
from apishield.issuer.settings import PasswordHashSettings
from tests.support import Response, ServerThread, free_port, http

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
GATEWAY_POLICY = Path(__file__).resolve().parents[2] / "examples" / "customer_api" / "apishield.yaml"
FAST_HASH = PasswordHashSettings(time_cost=1, memory_cost_kib=8192, parallelism=1)
CALLBACK = "http://127.0.0.1:8765/callback"
ACME, GLOBEX = {1, 2, 5}, {3, 4, 6}


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("apishield_example_fastapi_app", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


@dataclass
class Example:
    server: ServerThread
    app: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, who: str | None, method: str, target: str, body: Any = None) -> Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return http(self.server.port, method, target, body, headers)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    tmp = tmp_path_factory.mktemp("fastapi-example")
    issuer_port = free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    demo = bootstrap_demo(tmp / "issuer", issuer_url, "customer-api", password_hash=FAST_HASH)
    issuer = ServerThread(create_issuer_app(demo.settings), issuer_port).start()
    policy = yaml.safe_load((EXAMPLE / "apishield.yaml").read_text())
    policy["auth"]["jwt"] = [{**policy["auth"]["jwt"][0], **demo.gateway_jwt_provider()}]
    policy["auth"]["revocation"] = {"store": demo.revocation_store, "poll_interval": 0.25}
    policy_path = tmp / "apishield.yaml"
    policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))
    app = load_example().create_app(str(tmp / "customers.db"), policy_path, decision_log=None)
    server = ServerThread(app).start()
    try:
        ex = Example(server, app)
        scopes = "customers:read customers:write orders:read orders:write"
        for user in ("alice", "bob", "carol", "sam"):
            ex.tokens[user] = mobile_token(issuer_url, user, DEMO_PASSWORD, CALLBACK, scopes)["access_token"]
        ex.tokens["acme"] = partner_token(
            issuer_url, "partner-portal", demo.partner_portal_secret, "customers:read orders:read"
        )
        globex_secret = (tmp / "issuer" / "globex-portal.secret").read_text().strip()
        ex.tokens["globex"] = partner_token(
            issuer_url, "globex-portal", globex_secret, "customers:read orders:read"
        )
        yield ex
    finally:
        server.stop()
        issuer.stop()
        app.state.store.close()


def test_policy_is_the_gateway_demos() -> None:
    mine = yaml.safe_load((EXAMPLE / "apishield.yaml").read_text())
    theirs = yaml.safe_load(GATEWAY_POLICY.read_text())
    for key in ("openapi", "upstream", "listen"):
        theirs.pop(key)
    assert mine == theirs


def test_document_matches_the_contract(example: Example) -> None:
    document = example.app.openapi()
    contract = yaml.safe_load((GATEWAY_POLICY.parent / "openapi.yaml").read_text())
    ops = {
        (path, method): op["operationId"]
        for path, item in contract["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    mine = {
        (path, method): op["operationId"]
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert mine == ops
    for (path, method), op_id in ops.items():
        assert document["paths"][path][method].get("security") == contract["paths"][path][method].get(
            "security"
        ), op_id


READS = [
    ("alice", 1, 200), ("alice", 2, 404), ("alice", 3, 404),
    ("bob", 2, 200), ("bob", 1, 404),
    ("carol", 3, 200), ("carol", 4, 404),
    ("acme", 1, 200), ("acme", 5, 200), ("acme", 3, 404), ("acme", 6, 404),
    ("globex", 3, 200), ("globex", 1, 404),
    ("sam", 1, 200), ("sam", 4, 200),
]  # fmt: skip


@pytest.mark.parametrize(("who", "customer", "status"), READS)
def test_read_customer(example: Example, who: str, customer: int, status: int) -> None:
    r = example.call(who, "GET", f"/v1/customers/{customer}")
    assert r.status == status, r.body
    if status == 200:
        assert r.json()["id"] == customer


def test_a_denied_read_leaks_nothing(example: Example) -> None:
    denied = example.call("alice", "GET", "/v1/customers/2")
    missing = example.call("alice", "GET", "/v1/customers/999")
    assert denied.status == missing.status == 404
    assert denied.body.split(b'"request_id"')[0] == missing.body.split(b'"request_id"')[0]
    assert b"Bob" not in denied.body


@pytest.mark.parametrize(
    ("who", "visible"),
    [("alice", {1}), ("carol", {3}), ("acme", ACME), ("globex", GLOBEX), ("sam", ACME | GLOBEX)],
)
def test_list_is_filtered_per_caller(example: Example, who: str, visible: set[int]) -> None:
    r = example.call(who, "GET", "/v1/customers?limit=100")
    assert r.status == 200
    assert {c["id"] for c in r.json()} == visible


def test_personal_data_needs_ownership_or_pii_read(example: Example) -> None:
    own = example.call("alice", "GET", "/v1/customers/1").json()
    assert own["email"] and own["phone"]
    partner_view = example.call("acme", "GET", "/v1/customers/1").json()
    assert "email" not in partner_view and "phone" not in partner_view and partner_view["name"]


@pytest.mark.parametrize(
    ("who", "customer", "status"),
    [
        ("alice", 1, 200),
        ("alice", 2, 404),
        ("acme", 1, 200),
        ("acme", 3, 404),
        ("globex", 3, 200),
        ("sam", 2, 200),
    ],
)
def test_sub_resources_follow_their_customer(example: Example, who: str, customer: int, status: int) -> None:
    for sub in ("accounts", "orders"):
        r = example.call(who, "GET", f"/v1/customers/{customer}/{sub}")
        assert r.status == status, (sub, r.body)


def test_order_reads_by_owner_only(example: Example) -> None:
    orders = example.call("alice", "GET", "/v1/customers/1/orders").json()
    order_id = orders[0]["id"]
    assert example.call("alice", "GET", f"/v1/orders/{order_id}").status == 200
    assert example.call("carol", "GET", f"/v1/orders/{order_id}").status == 404
    assert example.call("sam", "GET", f"/v1/orders/{order_id}").status == 200


GOOD = {"name": "Alice Example", "email": "alice@example.com", "status": "active"}


def test_writes_with_pre_check_answered_by_the_app(example: Example) -> None:
    assert example.call("alice", "PUT", "/v1/customers/1", GOOD).status == 200
    r = example.call("alice", "PUT", "/v1/customers/2", {**GOOD, "name": "Not Bob"})
    assert r.status == 404
    assert example.call("sam", "GET", "/v1/customers/2").json()["name"] != "Not Bob"
    assert example.call("acme", "PUT", "/v1/customers/1", GOOD).status == 403  # no write scope
    assert (
        example.call("alice", "PUT", "/v1/customers/1", {**GOOD, "tier": "gold"}).status == 403
    )  # support only
    assert (
        example.call("alice", "PUT", "/v1/customers/1", {**GOOD, "id": 7}).status == 400
    )  # read-only member


def test_function_level(example: Example) -> None:
    assert example.call("alice", "DELETE", "/v1/customers/1").status == 403
    assert example.call("alice", "POST", "/v1/customers", GOOD).status == 403
    assert example.call(None, "GET", "/v1/customers/1").status == 401
    assert example.call(None, "GET", "/v1/health").json() == {"status": "ok"}


def test_order_creation_for_own_customer_only(example: Example) -> None:
    order = {"currency": "EUR", "items": [{"sku": "SKU-1", "name": "Lamp", "quantity": 1, "unitPrice": 10.0}]}
    created = example.call("alice", "POST", "/v1/customers/1/orders", order)
    assert created.status == 201, created.body
    assert created.json()["customerId"] == 1
    assert created.headers["location"] == f"/v1/orders/{created.json()['id']}"
    assert example.call("alice", "POST", "/v1/customers/3/orders", order).status == 404
    bad = {"currency": "EUR", "items": [{"sku": "bad sku", "quantity": 1, "unitPrice": 1}]}
    r = example.call("alice", "POST", "/v1/customers/1/orders", bad)
    assert r.status == 400
    assert [e["pointer"] for e in r.json()["errors"]] == ["/items/0/sku"]


def test_login_fails_uniformly(example: Example) -> None:
    unknown = example.call(None, "POST", "/v1/login", {"username": "nobody", "password": "x"})
    wrong = example.call(None, "POST", "/v1/login", {"username": "alice", "password": "x"})
    assert unknown.status == wrong.status == 401
    assert unknown.body.split(b'"request_id"')[0] == wrong.body.split(b'"request_id"')[0]
    ok = example.call(None, "POST", "/v1/login", {"username": "alice", "password": DEMO_PASSWORD})
    assert ok.status == 200 and ok.json()["customerId"] == 1


@pytest.mark.parametrize(
    "target",
    [
        "/v1/customers/%32",  # percent-encoded 2
        "/v1/customers/02",  # leading zero
        "/v1/customers/2/",  # trailing slash (FastAPI alone would redirect)
        "/v1/customers/2;x=1",
        "/v1/customers/1/../2",
        "/v1/customers/%2e%2e/2",
        "/v1/customers/2%2F",
        "/v1/customers/1?customerId=2",
        "/v1/CUSTOMERS/2",
    ],
)
def test_identifier_encoding_bypasses(example: Example, target: str) -> None:
    r = example.call("alice", "GET", target)
    assert r.status in (400, 404), (target, r.status)
    assert b"Bob" not in r.body


@pytest.mark.parametrize("target", ["/docs", "/openapi.json", "/redoc"])
def test_framework_pages_are_not_the_api(example: Example, target: str) -> None:
    assert example.call("sam", "GET", target).status == 404
