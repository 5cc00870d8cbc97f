"""One behaviour suite, two adapters: the same request gets the same decision through both.

Every case is sent to the gateway (in front of a recording upstream, over
HTTP) and to the middleware (wrapping a recording app, in process), both
under uvicorn on real sockets and under one policy. The status, the problem
body (without its request id), the headers of interest and what the
upstream received (nothing, for a refusal) must be equal.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from apishield.demo import example_dir
from tests.middleware.support import Pair, pair_for
from tests.support import DATA, Canned, ServerThread
from tests.tokens import AUDIENCE, ISSUER, JWKSServer, claims, ec_key, sign

# -- validation, strip, uniform failure, routing (tests/data/shop31.yaml) ---------------------------


@pytest.fixture(scope="module")
def shop_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    policy = {
        "limits": {"max_body_bytes": 4096, "max_json_depth": 8, "max_string_length": 64},
        "operations": {"login": {"uniform_failure": {"status": 401, "title": "Login failed"}}},
    }
    with pair_for(tmp_path_factory.mktemp("shop-pair"), DATA / "shop31.yaml", **policy) as pair:
        yield pair


@pytest.fixture()
def shop(shop_pair: Pair) -> Pair:
    shop_pair.reset()
    shop_pair.answer("GET", "/items", body=[])
    shop_pair.answer("GET", "/items/search", body=[])
    return shop_pair


LEAKY = {"id": 1, "name": "lamp", "secret": "w", "passwordHash": "abc123", "owner": {"name": "o", "ssn": "1"}}

REFUSED = [
    ("GET", "/admin", None, {}, 404),
    ("GET", "/items/1/secret", None, {}, 404),
    ("PATCH", "/items/1", None, {}, 405),
    ("GET", "/items/1/", None, {}, 404),  # a trailing slash is another, undocumented path
    ("GET", "/items/abc", None, {}, 400),
    ("GET", "/items/007", None, {}, 400),
    ("GET", "/items/1;x=1", None, {}, 400),
    ("GET", "/items/..%2fadmin", None, {}, 400),
    ("GET", "/items/%2e%2e/items", None, {}, 400),
    ("GET", "/items?limit=0", None, {}, 400),
    ("GET", "/items?unknown=1", None, {}, 400),
    ("GET", "/items?limit=1&limit=2", None, {}, 400),
    ("GET", "/items/search", None, {}, 400),
    ("GET", "/files/abc.exe", None, {}, 400),
    ("GET", "/items/1", None, {"X-Trace": "not-a-uuid"}, 400),
    ("POST", "/items", {"id": 1, "name": "lamp"}, {}, 400),  # read-only member (mass assignment)
    ("POST", "/items", {"name": "lamp", "isAdmin": True}, {}, 400),
    ("POST", "/items", None, {}, 400),  # required body
    ("POST", "/items", b"name=lamp", {"Content-Type": "text/plain"}, 415),
    ("POST", "/items", b'{"name": "a", "name": "b"}', {"Content-Type": "application/json"}, 400),
    ("POST", "/items", {"name": "x" * 5000}, {}, 413),
    ("POST", "/nodes", {"name": "a", "children": [{"name": "b" * 11}]}, {}, 400),
    ("DELETE", "/items/1", b"{}", {"Content-Type": "application/json"}, 400),  # a body where none is
]


@pytest.mark.parametrize(("method", "target", "body", "headers", "status"), REFUSED)
def test_refused_alike_and_never_forwarded(
    shop: Pair, method: str, target: str, body: Any, headers: dict[str, str], status: int
) -> None:
    answers = shop.same(method, target, body, headers, status=status, forwarded=0)
    assert answers["middleware"].headers["content-type"] == "application/problem+json"


ALLOWED = [
    ("GET", "/items", None, {}),
    ("GET", "/items?limit=5&tag=a&tag=b&filter[color]=red&active=true", None, {}),
    ("GET", "/items?fields=id,name", None, {}),
    ("GET", "/items/search?q=lamp%20shade", None, {}),
    ("GET", "/items/7", None, {"X-Trace": "2f1c4b7e-8a5d-4e3f-9b2a-1c0d3e4f5a6b", "Cookie": "session=abc"}),
    ("POST", "/items", {"name": "lamp", "price": 3.5, "secret": "s"}, {}),
    ("POST", "/items", b"name=lamp&price=2", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("PUT", "/items/1", {"name": "lamp"}, {"X-End-To-End": "kept", "Connection": "X-Hop", "X-Hop": "1"}),
    ("DELETE", "/items/1", None, {}),
    ("GET", "/things/2f1c4b7e-8a5d-4e3f-9b2a-1c0d3e4f5a6b", None, {"X-Forwarded-For": "6.6.6.6"}),
]


@pytest.mark.parametrize(("method", "target", "body", "headers"), ALLOWED)
def test_allowed_alike_and_forwarded_alike(
    shop: Pair, method: str, target: str, body: Any, headers: dict[str, str]
) -> None:
    shop.answer("POST", "/items", status=201, body={"id": 1, "name": "lamp"})
    shop.answer("PUT", "/items/1", body={"id": 1, "name": "lamp"})
    shop.answer("GET", "/items/7", body={"id": 7, "name": "lamp"})
    shop.answer_with("DELETE", "/items/1", Canned(status=204, body=b"", headers=[]))
    expected = {"POST": 201, "DELETE": 204}.get(method, 200)
    shop.same(method, target, body, headers, status=expected)


def noteworthy(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions of an audit event other than plain allows."""
    return [d for d in event["unmapped"].get("decisions", []) if d["outcome"] != "allow"]


def test_strip_alike(shop: Pair) -> None:
    shop.answer("GET", "/items/1", body=LEAKY)
    answers = shop.same("GET", "/items/1", status=200)
    assert answers["middleware"].json() == {"id": 1, "name": "lamp", "owner": {"name": "o"}}
    for side in ("gateway", "middleware"):
        record = shop[side].recorder.recent[-1]
        assert sorted(noteworthy(record)[0]["details"]["removed"]) == [
            "/owner/ssn",
            "/passwordHash",
            "/secret",
        ]


def test_response_refusals_alike(shop: Pair) -> None:
    shop.answer("GET", "/items", body={"id": 1, "name": "not an array"})
    shop.same("GET", "/items", status=502)
    shop.answer("GET", "/items/1", body=b"<html>debug</html>", headers=[(b"content-type", b"text/html")])
    shop.same("GET", "/items/1", status=502)
    trace = b"Traceback (most recent call last): sqlite3.OperationalError: SELECT * FROM users"
    headers = [(b"content-type", b"text/plain"), (b"retry-after", b"5"), (b"x-powered-by", b"app/1")]
    shop.answer("GET", "/boom", status=503, body=trace, headers=headers)
    answers = shop.same("GET", "/boom", status=503)
    assert b"Traceback" not in answers["middleware"].body
    assert "x-powered-by" not in answers["middleware"].headers


def test_documented_error_and_undocumented_status_alike(shop: Pair) -> None:
    shop.answer("GET", "/items/9", status=404, body={"error": "no such item", "trace": "x"})
    assert shop.same("GET", "/items/9", status=404)["middleware"].json() == {"error": "no such item"}
    shop.answer("GET", "/items/1", status=202, body={})
    shop.same("GET", "/items/1", status=202)


def test_uniform_failure_alike(shop: Pair) -> None:
    shop.answer("POST", "/login", status=404, body={"error": "unknown user"})
    unknown = shop.same("POST", "/login", {"username": "nobody", "password": "pw"}, status=401)
    shop.answer("POST", "/login", status=401, body={"error": "wrong password"})
    wrong = shop.same("POST", "/login", {"username": "alice", "password": "pw"}, status=401)
    invalid = shop.same("POST", "/login", {"username": "x" * 30, "password": "pw"}, status=401, forwarded=0)
    bodies = {r.body.split(b'"request_id"')[0] for a in (unknown, wrong, invalid) for r in a.values()}
    assert len(bodies) == 1


def test_chunked_body_alike(shop: Pair) -> None:
    shop.answer("PUT", "/items/1", body={"id": 1, "name": "lamp"})

    def chunks() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"lamp"}'

    for side in ("gateway", "middleware"):
        shop[side].upstream.received.clear()
        conn = http.client.HTTPConnection("127.0.0.1", shop[side].server.port, timeout=10)
        conn.request("PUT", "/items/1", body=chunks(), headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
        assert shop[side].upstream.received[0].json() == {"name": "lamp"}


# -- authentication and object rules (the example customer API and its policy) ---------------------

CUSTOMER_1 = {
    "id": 1,
    "name": "Alice Martin",
    "email": "alice@example.com",
    "phone": "+33612345678",
    "status": "active",
    "tier": "gold",
    "partnerId": "p-acme",
    "createdAt": "2023-01-15T09:30:00Z",
    "riskScore": 0.12,
    "passwordHash": "9f2c",
}
CUSTOMER_2 = {**CUSTOMER_1, "id": 2, "name": "Bob", "email": "bob@example.com"}
CUSTOMER_3 = {**CUSTOMER_1, "id": 3, "name": "Carol", "partnerId": "p-globex"}
GOOD = {"name": "Alice Example", "email": "alice@example.com", "status": "active"}


class Callers:
    def __init__(self, key: Any) -> None:
        self.key = key

    def token(self, **over: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign(self.key, claims(**over))}"}

    def alice(self, scope: str = "customers:read customers:write orders:read") -> dict[str, str]:
        return self.token(sub="alice", roles=["customer"], customer_id=1, scope=scope)

    def acme(self) -> dict[str, str]:
        return self.token(
            sub="partner-portal", roles=["partner"], partner_id="p-acme", scope="customers:read"
        )

    def sam(self) -> dict[str, str]:
        return self.token(sub="sam", roles=["support"], scope="customers:read customers:write")


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[JWKSServer, ServerThread, Any]]:
    key = ec_key("k1")
    server = JWKSServer(key)
    thread = ServerThread(server).start()
    try:
        yield server, thread, key
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def customers_pair(
    tmp_path_factory: pytest.TempPathFactory, jwks: tuple[JWKSServer, ServerThread, Any]
) -> Iterator[tuple[Pair, Callers]]:
    server, thread, key = jwks
    tmp = tmp_path_factory.mktemp("customers-pair")
    folder = example_dir()
    policy = yaml.safe_load((folder / "apishield.yaml").read_text())
    for key_name in ("openapi", "upstream", "listen", "version"):
        policy.pop(key_name, None)
    policy["auth"]["jwt"] = [
        {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_uri": f"http://127.0.0.1:{thread.port}/jwks",
            "algorithms": ["ES256"],
        }
    ]
    policy["auth"]["revocation"] = {"store": f"sqlite:///{tmp / 'revocations.db'}"}
    before = server.fetches
    with pair_for(tmp, folder / "openapi.yaml", **policy) as pair:
        assert server.fetches - before == 2  # each adapter warmed its key set up at startup
        yield pair, Callers(key)


@pytest.fixture()
def customers(customers_pair: tuple[Pair, Callers]) -> tuple[Pair, Callers]:
    pair, callers = customers_pair
    pair.reset()
    pair.answer("GET", "/v1/customers/1", body=CUSTOMER_1)
    pair.answer("GET", "/v1/customers/2", body=CUSTOMER_2)
    pair.answer("PUT", "/v1/customers/1", body=CUSTOMER_1)
    pair.answer("PUT", "/v1/customers/2", body=CUSTOMER_2)
    pair.answer("GET", "/v1/customers", body=[CUSTOMER_1, CUSTOMER_2, CUSTOMER_3])
    pair.answer("GET", "/v1/health", body={"status": "ok"})
    return pair, callers


def test_authentication_alike(customers: tuple[Pair, Callers]) -> None:
    pair, who = customers
    pair.same("GET", "/v1/health", status=200)
    r = pair.same("GET", "/v1/customers/1", status=401, forwarded=0)["middleware"]
    assert r.headers["www-authenticate"] == 'Bearer realm="apishield"'
    forged = sign(ec_key("k1"), claims(sub="admin", roles=["support"]))
    pair.same(
        "GET", "/v1/customers/1", headers={"Authorization": f"Bearer {forged}"}, status=401, forwarded=0
    )
    expired = who.token(exp=int(time.time()) - 120, iat=int(time.time()) - 300, roles=["support"])
    pair.same("GET", "/v1/customers/1", headers=expired, status=401, forwarded=0)
    pair.same(
        "GET", "/v1/customers/1", headers=who.token(aud="other", roles=["support"]), status=401, forwarded=0
    )


def test_scopes_and_roles_alike(customers: tuple[Pair, Callers]) -> None:
    pair, who = customers
    r = pair.same("PUT", "/v1/customers/1", GOOD, who.alice(scope="customers:read"), status=403, forwarded=0)
    assert 'error="insufficient_scope"' in r["middleware"].headers["www-authenticate"]
    pair.same("DELETE", "/v1/customers/1", headers=who.alice(), status=403, forwarded=0)
    pair.same("POST", "/v1/customers", GOOD, who.alice(), status=403, forwarded=0)


def test_identity_reaches_the_app_alike(customers: tuple[Pair, Callers]) -> None:
    pair, who = customers
    headers = {**who.alice(), "X-Partner-Id": "p-globex", "X-Apishield-Subject": "admin"}
    pair.same("GET", "/v1/customers/1", headers=headers, status=200)
    rec = pair["middleware"].upstream.received[0]
    assert rec.header("x-apishield-subject") == "alice"
    assert rec.header("x-partner-id") is None and rec.header("authorization") is None


def test_object_rules_alike(customers: tuple[Pair, Callers]) -> None:
    pair, who = customers
    own = pair.same("GET", "/v1/customers/1", headers=who.alice(), status=200)["middleware"].json()
    assert own["email"] == "alice@example.com" and "riskScore" not in own
    pair.same("GET", "/v1/customers/2", headers=who.alice(), status=404)  # decided on the answer
    pair.same("GET", "/v1/customers/999", headers=who.alice(), status=404)
    seen = pair.same("GET", "/v1/customers/2", headers=who.acme(), status=200)["middleware"].json()
    assert "email" not in seen  # personal data needs pii:read or ownership
    listed = pair.same("GET", "/v1/customers", headers=who.acme(), status=200)["middleware"].json()
    assert [c["id"] for c in listed] == [1, 2]
    assert [
        c["id"]
        for c in pair.same("GET", "/v1/customers", headers=who.alice(), status=200)["middleware"].json()
    ] == [1]


def test_write_precheck_alike(customers: tuple[Pair, Callers]) -> None:
    pair, who = customers
    pair.same(
        "PUT", "/v1/customers/1", GOOD, who.alice(), status=200, forwarded=2
    )  # pre-check read, then write
    read = pair["middleware"].upstream.received[0]
    assert (read.method, read.target, read.header("x-apishield-auth")) == (
        "GET",
        "/v1/customers/1",
        "service",
    )
    assert read.header("x-apishield-subject") == "apishield-gateway"
    pair.same("PUT", "/v1/customers/2", GOOD, who.alice(), status=404, forwarded=1)  # only the read
    pair.same("PUT", "/v1/customers/2", GOOD, who.sam(), status=200, forwarded=2)
    pair.same("PUT", "/v1/customers/1", {**GOOD, "tier": "gold"}, who.alice(), status=403, forwarded=0)


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("GET", "/items/7", None, 200),
        ("POST", "/items", {"name": 5}, 400),
        ("GET", "/nowhere/at/all", None, 404),
        ("DELETE", "/items/search", None, 405),
    ],
)
def test_audit_events_alike(shop: Pair, method: str, target: str, body: Any, status: int) -> None:
    """Both adapters write the same audit event for the same request (one decision core)."""
    shop.answer("GET", "/items/7", body={"id": 7, "name": "lamp"})
    answers = shop.same(method, target, body, status=status, forwarded=1 if status == 200 else 0)
    events = {}
    for side in ("gateway", "middleware"):
        request_id = answers[side].headers["x-request-id"]
        found = [e for e in shop[side].recorder.recent if e["api"]["request"]["uid"] == request_id]
        assert len(found) == 1, side
        events[side] = found[0]
    gw, mw = events["gateway"], events["middleware"]
    for path in (
        ("class_uid",),
        ("activity_id",),
        ("action_id",),
        ("disposition_id",),
        ("status_detail",),
        ("api", "operation"),
        ("http_response", "code"),
        ("resources",),
        ("unmapped", "route"),
    ):
        a, b = gw, mw
        for key in path:
            a, b = a.get(key) if a else None, b.get(key) if b else None
        assert a == b, path
    outcomes = [(d["stage"], d["outcome"]) for d in gw["unmapped"].get("decisions", [])]
    assert outcomes == [(d["stage"], d["outcome"]) for d in mw["unmapped"].get("decisions", [])]
