"""Security response headers on every answer, CORS preflights, request-head hygiene: over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.config.load import ConfigError
from apishield.runtime import load_runtime
from tests.support import DATA, Stack, free_port, gateway_for, http, stack, write_policy

ORIGIN = "https://app.example.com"

POLICY = {
    "limits": {"max_body_bytes": 64, "max_url_length": 256, "max_header_count": 30},
    "rate_limits": {
        "limits": [{"id": "one", "key": "client_ip", "rate": "2/h", "operations": ["getPublic"]}]
    },
    "cors": {
        "allow_origins": [ORIGIN],
        "allow_credentials": True,
        "allow_headers": ["authorization", "content-type", "x-api-key"],
        "expose_headers": ["x-request-id"],
        "max_age": 300,
    },
}

API_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("edge")
    policy = {**POLICY, "auth": {"api_keys": {"header": "X-API-Key", "store": f"sqlite:///{tmp / 'k.db'}"}}}
    with stack(tmp, DATA / "secure31.yaml", **policy) as s:
        yield s


def assert_api_headers(headers: dict[str, str]) -> None:
    for name, value in API_HEADERS.items():
        assert headers.get(name) == value, name
    assert "server" not in headers and "x-powered-by" not in headers
    assert "strict-transport-security" not in headers  # plain HTTP: HSTS means nothing here


def test_headers_on_200_and_upstream_disclosure_removed(edge: Stack) -> None:
    edge.upstream.answer(
        "GET",
        "/public",
        body={},
        headers=[
            (b"content-type", b"application/json"),
            (b"server", b"gunicorn"),
            (b"x-powered-by", b"PHP/8"),
            (b"x-envoy-upstream-service-time", b"3"),
            (b"content-security-policy", b"default-src *"),
            (b"access-control-allow-origin", b"*"),
        ],
    )
    r = edge.call("GET", "/public", headers={"X-Forwarded-For": "203.0.113.1"})
    assert r.status == 200
    assert_api_headers(r.headers)
    assert "x-envoy-upstream-service-time" not in r.headers
    assert "access-control-allow-origin" not in r.headers  # the upstream's CORS grant is not passed on
    assert r.headers.get("cache-control") != "no-store"  # anonymous: the upstream decides caching


def test_headers_on_401(edge: Stack) -> None:
    r = edge.call("GET", "/things")
    assert r.status == 401
    assert_api_headers(r.headers)
    assert r.headers["cache-control"] == "no-store"


def test_headers_on_403_404_413_414_431(edge: Stack) -> None:
    r = edge.call(
        "OPTIONS",
        "/things",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status == 403
    assert_api_headers(r.headers)
    r = edge.call("GET", "/nowhere")
    assert r.status == 404
    assert_api_headers(r.headers)
    r = edge.call("POST", "/login", body={"pad": "x" * 200})
    assert r.status == 413
    assert_api_headers(r.headers)
    r = edge.call("GET", "/public?q=" + "a" * 300)
    assert r.status == 414 and r.json()["status"] == 414
    assert_api_headers(r.headers)
    r = edge.call("GET", "/public", headers={f"X-Pad-{i}": "1" for i in range(40)})
    assert r.status == 431 and r.headers["content-type"] == "application/problem+json"
    assert_api_headers(r.headers)


def test_headers_on_429(edge: Stack) -> None:
    statuses = [edge.call("GET", "/public").status for _ in range(4)]
    assert statuses[-1] == 429
    r = edge.call("GET", "/public")
    assert r.status == 429
    assert_api_headers(r.headers)


def test_headers_on_502(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, DATA / "secure31.yaml", free_port())  # nothing listens upstream
    with gateway_for(policy) as gw:
        r = http(gw.port, "GET", "/public")
    assert r.status == 502
    assert_api_headers(r.headers)


def test_method_override_headers_removed(edge: Stack) -> None:
    edge.upstream.received.clear()
    r = edge.call(
        "POST",
        "/login",
        body={},
        headers={"X-HTTP-Method-Override": "DELETE", "X-Method-Override": "PUT", "X-HTTP-Method": "PATCH"},
    )
    assert r.status == 200
    sent = dict(edge.upstream.received[-1].headers)
    assert not {"x-http-method-override", "x-method-override", "x-http-method"} & set(sent)


def test_declared_method_override_header_kept(tmp_path: Path) -> None:
    with stack(
        tmp_path, DATA / "secure31.yaml", proxy={"method_override_headers": ["X-HTTP-Method-Override"]}
    ) as s:
        s.call("POST", "/login", body={}, headers={"X-HTTP-Method-Override": "GET", "X-HTTP-Method": "PUT"})
        sent = dict(s.upstream.received[-1].headers)
    assert sent.get("x-http-method-override") == "GET" and "x-http-method" not in sent


def test_control_characters_refused(edge: Stack) -> None:
    from tests.support import raw_http

    answer = raw_http(edge.gateway.port, b"GET /public HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")


# -- CORS -------------------------------------------------------------------------------------


def preflight(
    edge: Stack, origin: str | None, method: str, path: str = "/things", headers: str = ""
) -> dict[str, str]:
    h = {"Access-Control-Request-Method": method}
    if origin is not None:
        h["Origin"] = origin
    if headers:
        h["Access-Control-Request-Headers"] = headers
    r = edge.call("OPTIONS", path, headers=h)
    return {"status": str(r.status), **r.headers}


@pytest.mark.parametrize(
    ("origin", "method", "path", "asked", "status", "granted"),
    [
        (ORIGIN, "GET", "/things", "authorization", 204, True),
        (ORIGIN, "POST", "/things", "content-type, x-api-key", 204, True),
        (ORIGIN.upper().replace("HTTPS", "https"), "GET", "/things", "", 204, True),  # host case-insensitive
        ("https://evil.example", "GET", "/things", "", 403, False),  # T-CORS-1
        ("null", "GET", "/things", "", 403, False),
        (ORIGIN + ".evil.example", "GET", "/things", "", 403, False),  # no suffix matching
        ("http://app.example.com", "GET", "/things", "", 403, False),  # scheme is part of the origin
        (ORIGIN, "DELETE", "/things", "", 403, False),  # not declared on the path
        (ORIGIN, "GET", "/things", "x-secret", 403, False),  # header not allowed
        (ORIGIN, "GET", "/nowhere", "", 404, False),
    ],
)
def test_preflight_matrix(
    edge: Stack, origin: str, method: str, path: str, asked: str, status: int, granted: bool
) -> None:
    edge.upstream.received.clear()
    h = preflight(edge, origin, method, path, asked)
    assert h["status"] == str(status)
    assert ("access-control-allow-origin" in h) is granted
    assert not edge.upstream.received  # preflights never reach the upstream
    if granted:
        assert h["access-control-allow-origin"] == origin  # exact echo, never '*' with credentials
        assert h["access-control-allow-credentials"] == "true"
        assert h["access-control-allow-methods"] == "GET, POST"  # what the document declares
        assert h["access-control-max-age"] == "300"
        assert "Origin" in h["vary"]
        if asked:
            assert h["access-control-allow-headers"] == asked.replace(" ", "").replace(",", ", ")
    assert_api_headers(h)


def test_actual_request_cors(edge: Stack) -> None:
    r = edge.call("GET", "/things", headers={"Origin": ORIGIN})  # 401, still readable by the app
    assert r.headers["access-control-allow-origin"] == ORIGIN  # T-CORS-2
    assert r.headers["access-control-expose-headers"] == "x-request-id"
    assert "Origin" in r.headers["vary"]
    r = edge.call("GET", "/things", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers and "Origin" in r.headers["vary"]
    r = edge.call("GET", "/things")
    assert "access-control-allow-origin" not in r.headers


def test_no_cors_without_policy(tmp_path: Path) -> None:
    with stack(tmp_path, DATA / "secure31.yaml") as s:
        r = s.call("OPTIONS", "/public", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert r.status == 405 and "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "cors",
    [
        {"allow_origins": ["*"], "allow_credentials": True},
        {"allow_origins": ["null"]},
        {"allow_origins": ["https://a.example/path"]},
        {"allow_origins": ["*", "https://a.example"]},
    ],
)
def test_cors_config_errors(tmp_path: Path, cors: dict[str, object]) -> None:
    policy = write_policy(tmp_path, DATA / "secure31.yaml", 9, cors=cors)
    with pytest.raises(ConfigError):
        load_runtime(policy)
