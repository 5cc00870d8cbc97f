"""Request-stage rules, each both ways, through real sockets.

Every refused request is checked on the wire (status, RFC 9457 body) and at
the upstream, which records what it receives: a refused request must never
reach it.
"""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests.support import Stack, raw_http

PROBLEM = "application/problem+json"


def refused(
    gw: Stack, method: str, target: str, body: object = None, status: int = 400, **kw: object
) -> dict:
    r = gw.call(method, target, body, **kw)  # type: ignore[arg-type]
    assert r.status == status, r.body
    assert r.headers["content-type"] == PROBLEM
    assert gw.upstream.received == [], "a refused request reached the upstream"
    doc = r.json()
    assert doc["status"] == status and doc["type"].startswith("https://") and doc["title"]
    return doc


def allowed(gw: Stack, method: str, target: str, body: object = None, **kw: object) -> None:
    r = gw.call(method, target, body, **kw)  # type: ignore[arg-type]
    assert r.status < 400, r.body
    assert len(gw.upstream.received) == 1


def pointers(doc: dict) -> set[tuple[str, str]]:
    return {(e["in"], e["pointer"]) for e in doc.get("errors", [])}


# -- routing -------------------------------------------------------------------------------------


def test_undocumented_path_is_404(gw: Stack) -> None:
    refused(gw, "GET", "/admin", status=404)
    refused(gw, "GET", "/items/1/secret", status=404)


def test_undocumented_method_is_405_with_allow(gw: Stack) -> None:
    r = gw.call("PATCH", "/items/1")
    assert r.status == 405
    assert r.headers["allow"] == "DELETE, GET, PUT"
    assert gw.upstream.received == []


def test_concrete_path_wins_over_template(gw: Stack) -> None:
    allowed(gw, "GET", "/items/search?q=ab")
    assert gw.upstream.received[0].target == "/items/search?q=ab"
    gw.upstream.received.clear()
    # search requires q; as /items/{itemId} 'search' would be a bad integer instead
    doc = refused(gw, "GET", "/items/search")
    assert pointers(doc) == {("query", "/q")}


def test_partial_path_template(gw: Stack) -> None:
    gw.upstream.answer("GET", "/files/abc.txt", body=b"hello", headers=[(b"content-type", b"text/plain")])
    allowed(gw, "GET", "/files/abc.txt")
    gw.upstream.received.clear()
    doc = refused(gw, "GET", "/files/abc.exe")
    assert pointers(doc) == {("path", "/ext")}


@pytest.mark.parametrize(
    "target",
    ["/items/1;x=1", "/items/..%2fadmin", "/items/%2e%2e/items", "/items/1%00", "/items\\1", "/items/%zz"],
)
def test_ambiguous_paths_are_refused(gw: Stack, target: str) -> None:
    r = gw.call("GET", target)
    assert r.status in (400, 404)
    assert gw.upstream.received == []


def test_trailing_slash_is_a_different_path(gw: Stack) -> None:
    refused(gw, "GET", "/items/1/", status=404)


# -- parameters ----------------------------------------------------------------------------------


def test_path_parameter_types(gw: Stack) -> None:
    allowed(gw, "GET", "/items/7")
    gw.upstream.received.clear()
    for bad in ("abc", "0", "007", "1e3", "-1"):
        doc = refused(gw, "GET", f"/items/{bad}")
        assert pointers(doc) == {("path", "/itemId")}


def test_uuid_path_parameter(gw: Stack) -> None:
    allowed(gw, "GET", f"/things/{uuid.uuid4()}")
    gw.upstream.received.clear()
    refused(gw, "GET", "/things/not-a-uuid")


def test_query_integer_bounds(gw: Stack) -> None:
    allowed(gw, "GET", "/items?limit=50")
    gw.upstream.received.clear()
    assert pointers(refused(gw, "GET", "/items?limit=51")) == {("query", "/limit")}
    assert pointers(refused(gw, "GET", "/items?limit=abc")) == {("query", "/limit")}


def test_unknown_query_parameter_refused(gw: Stack) -> None:
    doc = refused(gw, "GET", "/items?debug=true")
    assert pointers(doc) == {("query", "/debug")}


def test_repeated_scalar_parameter_refused(gw: Stack) -> None:
    doc = refused(gw, "GET", "/items?limit=1&limit=2")
    assert ("query", "/limit") in pointers(doc)


def test_form_exploded_array(gw: Stack) -> None:
    allowed(gw, "GET", "/items?tag=a&tag=b")
    gw.upstream.received.clear()
    doc = refused(gw, "GET", "/items?tag=a&tag=b&tag=c&tag=d")
    assert pointers(doc) == {("query", "/tag")}
    gw.upstream.received.clear()
    refused(gw, "GET", "/items?tag=toolong")


def test_form_array_explode_false(gw: Stack) -> None:
    allowed(gw, "GET", "/items?fields=id,name")
    gw.upstream.received.clear()
    doc = refused(gw, "GET", "/items?fields=id,password")
    assert pointers(doc) == {("query", "/fields/1")}


def test_deep_object(gw: Stack) -> None:
    allowed(gw, "GET", "/items?filter[color]=red&filter[size]=3")
    assert gw.upstream.received[0].target == "/items?filter%5Bcolor%5D=red&filter%5Bsize%5D=3"
    gw.upstream.received.clear()
    assert pointers(refused(gw, "GET", "/items?filter[color]=green")) == {("query", "/filter/color")}
    assert pointers(refused(gw, "GET", "/items?filter[size]=11")) == {("query", "/filter/size")}
    assert ("query", "/filter/owner") in pointers(refused(gw, "GET", "/items?filter[owner]=x"))


def test_boolean_query(gw: Stack) -> None:
    allowed(gw, "GET", "/items?active=true")
    gw.upstream.received.clear()
    refused(gw, "GET", "/items?active=yes")


def test_empty_value_refused(gw: Stack) -> None:
    assert pointers(refused(gw, "GET", "/items?sort=")) == {("query", "/sort")}


def test_header_parameter(gw: Stack) -> None:
    allowed(gw, "GET", "/items/1", headers={"X-Trace": str(uuid.uuid4())})
    gw.upstream.received.clear()
    doc = refused(gw, "GET", "/items/1", headers={"X-Trace": "nope"})
    assert pointers(doc) == {("header", "/x-trace")}


def test_cookie_parameter(gw: Stack) -> None:
    allowed(gw, "GET", "/items/1", headers={"Cookie": "session=abc; other=1"})
    gw.upstream.received.clear()
    doc = refused(gw, "GET", "/items/1", headers={"Cookie": "session=" + "x" * 9})
    assert pointers(doc) == {("cookie", "/session")}


def test_query_is_forwarded_canonically(gw: Stack) -> None:
    allowed(gw, "GET", "/items/search?q=a+b%20c")
    assert gw.upstream.received[0].target == "/items/search?q=a%20b%20c"


# -- bodies ----------------------------------------------------------------------------------------


GOOD_ITEM = {"name": "lamp", "price": 9.5, "color": "red", "tags": ["a"], "meta": {"k": "v"}}


def test_valid_body_forwarded_as_validated(gw: Stack) -> None:
    raw = b'{"name": "lamp",   "price": 9.5}'
    r = gw.call("PUT", "/items/1", raw, headers={"Content-Type": "application/json"})
    assert r.status == 200
    assert gw.upstream.received[0].body == b'{"name":"lamp","price":9.5}'


def test_mass_assignment_refused(gw: Stack) -> None:
    doc = refused(
        gw, "PUT", "/items/1", {**GOOD_ITEM, "id": 5, "isAdmin": True, "created": "2020-01-01T00:00:00Z"}
    )
    assert pointers(doc) == {("body", "/id"), ("body", "/isAdmin"), ("body", "/created")}
    reasons = {e["pointer"]: e["reason"] for e in doc["errors"]}
    assert "read-only" in reasons["/id"] and "not a documented property" in reasons["/isAdmin"]


def test_nested_undeclared_property_allowed_only_where_documented(gw: Stack) -> None:
    # owner has no additionalProperties: false, so extra members are allowed there
    allowed(gw, "PUT", "/items/1", {**GOOD_ITEM, "owner": {"name": "x", "extra": 1}})
    gw.upstream.received.clear()
    refused(gw, "PUT", "/items/1", {**GOOD_ITEM, "meta": {"k": 1}})


def test_write_only_property_accepted_in_request(gw: Stack) -> None:
    allowed(gw, "PUT", "/items/1", {**GOOD_ITEM, "secret": "s3cret"})


def test_required_body(gw: Stack) -> None:
    refused(gw, "PUT", "/items/1", b"", headers={"Content-Type": "application/json"})
    refused(gw, "PUT", "/items/1")


def test_body_on_operation_without_body_refused(gw: Stack) -> None:
    refused(gw, "GET", "/items/1", b'{"a":1}', headers={"Content-Type": "application/json"})


def test_content_type_must_be_declared(gw: Stack) -> None:
    refused(gw, "PUT", "/items/1", b"name=x", status=415, headers={"Content-Type": "text/plain"})
    refused(gw, "PUT", "/items/1", orjson.dumps(GOOD_ITEM), status=415)  # none at all
    refused(
        gw,
        "PUT",
        "/items/1",
        orjson.dumps(GOOD_ITEM),
        status=415,
        headers={"Content-Type": "application/json; charset=utf-16"},
    )


def test_form_body(gw: Stack) -> None:
    r = gw.call(
        "POST",
        "/items",
        b"name=lamp&price=2.5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status < 400
    assert gw.upstream.received[0].body == b"name=lamp&price=2.5"
    gw.upstream.received.clear()
    refused(
        gw,
        "POST",
        "/items",
        b"name=lamp&price=-1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    refused(
        gw, "POST", "/items", b"name=a&name=b", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"name": "a", "name": "b"}', "duplicate"),
        (b'{"name": "a", "price": NaN}', "NaN"),
        (b'{"name": "a", "price": Infinity}', "Infinity"),
        (b'{"name": "a"', "malformed"),
        (b'\xef\xbb\xbf{"name": "a"}', "byte-order"),
        (b'{"name": "\xff"}', "UTF-8"),
        (b'{"name": "\\ud800"}', "surrogate"),
        (b'{"name": "a", "price": 1' + b"0" * 30 + b"}", "range"),
    ],
)
def test_strict_json(gw: Stack, raw: bytes, reason: str) -> None:
    doc = refused(gw, "PUT", "/items/1", raw, headers={"Content-Type": "application/json"})
    assert reason in doc["errors"][0]["reason"]


def test_depth_limit(gw: Stack) -> None:
    deep = {
        "name": "n",
        "children": [{"name": "n", "children": [{"name": "n", "children": [{"name": "n"}]}]}],
    }
    allowed(gw, "POST", "/nodes", deep)
    gw.upstream.received.clear()
    node: dict = {"name": "n"}
    for _ in range(10):
        node = {"name": "n", "children": [node]}
    doc = refused(gw, "POST", "/nodes", node)
    assert "nesting deeper than 8" in doc["errors"][0]["reason"]


def test_recursive_schema_validated_at_depth(gw: Stack) -> None:
    bad = {"name": "n", "children": [{"name": "n", "children": [{"name": "far too long a name"}]}]}
    doc = refused(gw, "POST", "/nodes", bad)
    assert pointers(doc) == {("body", "/children/0/children/0/name")}


def test_max_string_length_applies_without_max_length(gw: Stack) -> None:
    # 'free' has no maxLength; the policy's limits.max_string_length is 64
    allowed(gw, "POST", "/formats", {"free": "x" * 64})
    gw.upstream.received.clear()
    assert pointers(refused(gw, "POST", "/formats", {"free": "x" * 65})) == {("body", "/free")}


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("email", "a@example.com", "not-an-email"),
        ("uuid", "0b5c4a3e-8f6d-4a8e-9e4f-2f7c1d3b9a10", "0b5c4a3e"),
        ("date", "2024-02-29", "2023-02-29"),
        ("dateTime", "2024-01-01T10:00:00Z", "2024-01-01 10:00"),
        ("uri", "https://example.com/a", "not a uri"),
        ("ipv4", "192.0.2.1", "192.0.2.256"),
        ("ipv6", "2001:db8::1", "2001:db8:::1"),
        ("count", 2**31 - 1, 2**31),
        ("ratio", 0.5, 0),
        ("nullableName", None, "abcd"),
    ],
)
def test_formats_and_3_1_keywords(gw: Stack, field: str, good: object, bad: object) -> None:
    allowed(gw, "POST", "/formats", {field: good})
    gw.upstream.received.clear()
    assert pointers(refused(gw, "POST", "/formats", {field: bad})) == {("body", f"/{field}")}


def test_problem_never_echoes_the_value(gw: Stack) -> None:
    marker = "<script>alert('zz-marker')</script>"
    r = gw.call("POST", "/formats", {"email": marker, "uri": marker, "free": marker * 3})
    assert r.status == 400
    assert b"zz-marker" not in r.body


def test_oversized_body_refused_before_it_is_read(gw: Stack) -> None:
    # announce 10 MB but send only the headers and 1 KB: the answer must come anyway
    head = (
        b"PUT /items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n" + b"{" + b" " * 1023
    )
    answer = raw_http(gw.gateway.port, head, timeout=5)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert gw.upstream.received == []


def test_oversized_chunked_body_refused_while_streaming(gw: Stack) -> None:
    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"
    head = (
        b"PUT /items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3
    )
    answer = raw_http(gw.gateway.port, head, timeout=5)  # no terminating chunk: never "complete"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert gw.upstream.received == []


def test_chunked_body_within_limit_is_forwarded(gw: Stack) -> None:
    body = orjson.dumps(GOOD_ITEM)
    payload = (
        b"PUT /items/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = raw_http(gw.gateway.port, payload)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert gw.upstream.received[0].json()["name"] == "lamp"
