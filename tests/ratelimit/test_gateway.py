"""Rate limits through the gateway over real sockets, with the memory store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import http_sf
import orjson
import pytest

from tests.support import DATA, Canned, Response, Stack, stack

SHOP = DATA / "shop31.yaml"
SECURE = DATA / "secure31.yaml"


def fields(response: Response, name: str) -> list[tuple[str, dict[str, Any]]]:
    """An RFC 9651 List, parsed strictly by an independent implementation."""
    value = response.headers[name]
    parsed = http_sf.parse(value.encode("ascii"), tltype="list")
    for item, params in parsed:
        assert isinstance(item, str)
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in params.values()), value
    return parsed


@pytest.fixture()
def shop(tmp_path: Path) -> Iterator[Stack]:
    policy = {
        "rate_limits": {
            "limits": [
                {"id": "per-ip", "key": "client_ip", "rate": "2/s", "burst": 3, "operations": ["listItems"]},
                {
                    "id": "tenant-burst",
                    "key": "headers['x-tenant']",
                    "rate": "100/s",
                    "burst": 5,
                    "operations": ["getItem", "createItem"],
                },
                {
                    "id": "tenant-daily",
                    "key": "headers['x-tenant']",
                    "rate": "8/day",
                    "operations": ["getItem", "createItem"],
                    "costs": {"createItem": 3},
                },
                {
                    "id": "search-report",
                    "key": "client_ip",
                    "rate": "1/min",
                    "operations": ["searchItems"],
                    "mode": "report",
                },
            ]
        }
    }
    with stack(tmp_path, SHOP, **policy) as s:
        s.upstream.answer("GET", "/items", body=[])
        s.upstream.answer("GET", "/items/search", body=[])
        s.upstream.answer("GET", "/items/1", body={"id": 1, "name": "x"})
        s.upstream.answer("POST", "/items", status=201, body={"id": 1, "name": "x"})
        yield s


def test_429_with_problem_retry_after_and_headers_that_track_time(shop: Stack) -> None:
    seen = []
    for _ in range(3):
        r = shop.call("GET", "/items")
        assert r.status == 200
        assert fields(r, "ratelimit-policy") == [("per-ip", {"q": 3, "w": 2})]
        [(name, params)] = fields(r, "ratelimit")
        seen.append(params["r"])
        assert name == "per-ip" and 1 <= params["t"] <= 2
    assert seen == [2, 1, 0]
    refused = shop.call("GET", "/items")
    assert refused.status == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert problem["status"] == 429 and problem["violated-policies"] == ["per-ip"]
    [(_, params)] = fields(refused, "ratelimit")
    assert params["r"] == 0 and int(refused.headers["retry-after"]) >= params["t"] >= 1
    assert len(shop.upstream.received) == 3  # the refused request never reached the upstream
    time.sleep(0.55)  # one unit back (2/s)
    again = shop.call("GET", "/items")
    assert again.status == 200 and fields(again, "ratelimit")[0][1]["r"] == 0
    assert shop.call("GET", "/items").status == 429


def test_several_limits_per_request_and_per_operation_cost(shop: Stack) -> None:
    acme = {"X-Tenant": "acme"}
    r = shop.call("GET", "/items/1", headers=acme)
    assert r.status == 200
    assert dict(fields(r, "ratelimit")) == {
        "tenant-burst": {"r": 4, "t": 1},
        "tenant-daily": {"r": 7, "t": 10800},
    }
    assert shop.call("POST", "/items", {"name": "x"}, headers=acme).status == 201  # costs 3
    assert dict(fields(shop.call("GET", "/items/1", headers=acme), "ratelimit"))["tenant-daily"]["r"] == 3
    assert shop.call("POST", "/items", {"name": "x"}, headers=acme).status == 201  # 0 left
    refused = shop.call("GET", "/items/1", headers=acme)
    assert refused.status == 429 and refused.json()["violated-policies"] == ["tenant-daily"]
    assert int(refused.headers["retry-after"]) > 3600
    # another tenant has its own budgets; no tenant header: exempt from the tenant limits
    assert shop.call("GET", "/items/1", headers={"X-Tenant": "globex"}).status == 200
    plain = shop.call("GET", "/items/1")
    assert plain.status == 200 and "ratelimit" not in plain.headers


def test_report_mode_lets_the_request_through_and_records_it(shop: Stack) -> None:
    assert [shop.call("GET", "/items/search?q=ab").status for _ in range(3)] == [200, 200, 200]


def test_spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing(shop: Stack) -> None:
    statuses = [
        shop.call(
            "GET", "/items", headers={"X-Forwarded-For": f"198.51.100.{i}", "Forwarded": f"for=192.0.2.{i}"}
        ).status
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 429, 429, 429]
    sent = shop.upstream.received[0]
    assert sent.header("x-forwarded-for") == "127.0.0.1"
    assert sent.header(
        "forwarded",
    ).startswith("for=127.0.0.1;proto=http")


def test_trusted_proxy_chain_keys_the_client_and_is_forwarded(tmp_path: Path) -> None:
    policy = {
        "trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"],
        "rate_limits": {"limits": [{"id": "per-ip", "key": "client_ip", "rate": "1/min", "burst": 1}]},
    }
    with stack(tmp_path, SHOP, **policy) as s:
        s.upstream.answer("GET", "/items", body=[])

        def via(client: str) -> int:
            xff = f"6.6.6.6, {client}, 10.0.0.7"
            return s.call("GET", "/items", headers={"X-Forwarded-For": xff}).status

        assert [via("198.51.100.1"), via("198.51.100.1"), via("198.51.100.2")] == [200, 429, 200]
        sent = s.upstream.received[0]
        assert sent.header("x-forwarded-for") == "198.51.100.1, 10.0.0.7, 127.0.0.1"
        assert sent.header("forwarded") is not None
        assert sent.header("forwarded").startswith("for=198.51.100.1, for=10.0.0.7, for=127.0.0.1;proto=http")


def test_login_brake_counts_failures_per_account_even_when_the_app_answers_200(tmp_path: Path) -> None:
    policy = {
        "rate_limits": {
            "limits": [
                {
                    "id": "login-account",
                    "key": ["client_ip", "body.username.lowerAscii()"],
                    "operations": ["login"],
                    "rate": "3/min",
                    "count_if": "response.status != 200 || has(response.body.error)",
                    "backoff": "10m",
                },
                {
                    "id": "login-ip",
                    "key": "client_ip",
                    "operations": ["login"],
                    "rate": "6/min",
                    "count_if": "response.status != 200 || has(response.body.error)",
                },
            ]
        }
    }
    with stack(tmp_path, SHOP, **policy) as s:

        def answer(rec: Any) -> Canned:
            ok = rec.json()["password"] == "right"
            body = {"token": "t"} if ok else {"error": "wrong password"}  # 200 either way
            return Canned(200, orjson.dumps(body))

        s.upstream.answers[("POST", "/login")] = answer

        def login(user: str, password: str = "wrong") -> int:
            return s.call("POST", "/login", {"username": user, "password": password}).status

        assert [login("alice", "right") for _ in range(4)] == [200] * 4  # successes do not count
        assert [login("Alice") for _ in range(3)] == [200] * 3  # three failures...
        upstream_calls = len(s.upstream.received)
        refused = s.call("POST", "/login", {"username": "alice", "password": "right"})
        assert refused.status == 429  # ...block the account from this address, right password or not
        assert refused.json()["violated-policies"] == ["login-account"]
        assert "ratelimit" not in refused.headers  # brakes are not advertised
        assert len(s.upstream.received) == upstream_calls
        wait = [
            int(s.call("POST", "/login", {"username": "alice", "password": "x"}).headers["retry-after"])
            for _ in range(3)
        ]
        assert wait[0] < wait[1] < wait[2]  # backoff: hammering extends the block
        assert [login("bob") for _ in range(3)] == [200, 200, 200]  # another account: its own budget...
        assert login("carol") == 429  # ...but the address has used its six failures


def test_authentication_failures_are_braked_per_ip_before_authentication(tmp_path: Path) -> None:
    from tests.tokens import AUDIENCE, ISSUER, claims, ec_key, sign

    key = ec_key("k1")
    (tmp_path / "jwks.json").write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    policy = {
        "trusted_proxies": ["127.0.0.1/32"],
        "auth": {
            "jwt": [
                {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["ES256"], "jwks_file": "jwks.json"}
            ]
        },
        "rate_limits": {
            "limits": [
                {
                    "id": "auth-failures",
                    "key": "client_ip",
                    "rate": "3/min",
                    "count_if": "response.status == 401",
                },
                {"id": "per-client", "key": "principal.client_id", "rate": "50/s", "burst": 50},
            ]
        },
    }
    with stack(tmp_path, SECURE, **policy) as s:
        good = {"Authorization": f"Bearer {sign(key, claims())}"}
        bad = {"Authorization": "Bearer not-a-token"}

        def call(ip: str, headers: dict[str, str]) -> Response:
            return s.call("GET", "/things", headers={**headers, "X-Forwarded-For": ip})

        ok = call("198.51.100.1", good)
        assert ok.status == 200
        assert [name for name, _ in fields(ok, "ratelimit-policy")] == ["per-client"]
        assert [call("198.51.100.9", bad).status for _ in range(3)] == [401] * 3
        blocked = call("198.51.100.9", good)
        assert blocked.status == 429 and blocked.json()["violated-policies"] == ["auth-failures"]
        assert call("198.51.100.1", good).status == 200  # other addresses are unaffected


def test_load_shedding_per_client_and_global(tmp_path: Path) -> None:
    policy = {
        "rate_limits": {
            "concurrency": {
                "max_in_flight": 2,
                "queue_timeout": "150ms",
                "per_client": {"key": "headers['x-tenant']", "max": 1},
            }
        }
    }
    with stack(tmp_path, SHOP, **policy) as s:
        s.upstream.answers[("GET", "/items")] = Canned(200, b"[]", delay=0.6)

        def get(tenant: str) -> Response:
            return s.call("GET", "/items", headers={"X-Tenant": tenant})

        with ThreadPoolExecutor(8) as pool:
            same = sorted(r.status for r in pool.map(get, ["a", "a"]))
            assert same == [200, 429]
            statuses = sorted(r.status for r in pool.map(get, ["b", "c", "d", "e"]))
            assert statuses == [200, 200, 503, 503]
        shed = get("f")
        assert shed.status == 200  # every slot was released


def test_queued_requests_get_the_freed_slots(tmp_path: Path) -> None:
    policy = {"rate_limits": {"concurrency": {"max_in_flight": 1, "queue_timeout": "3s", "max_queue": 3}}}
    with stack(tmp_path, SHOP, **policy) as s:
        s.upstream.answers[("GET", "/items")] = Canned(200, b"[]", delay=0.2)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: s.call("GET", "/items").status, range(4)))
            assert statuses == [200] * 4  # one at a time, the others waiting their turn
            statuses = list(pool.map(lambda _: s.call("GET", "/items").status, range(5)))
            assert sorted(statuses) == [200] * 4 + [503]  # the queue holds three


def test_legacy_headers(tmp_path: Path) -> None:
    policy = {
        "rate_limits": {
            "headers": "legacy",
            "limits": [{"id": "per-ip", "key": "client_ip", "rate": "10/min"}],
        }
    }
    with stack(tmp_path, SHOP, **policy) as s:
        s.upstream.answer("GET", "/items", body=[])
        r = s.call("GET", "/items")
        assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("10", "9")
        assert r.headers["ratelimit-reset"] == "6" and "ratelimit" not in r.headers
