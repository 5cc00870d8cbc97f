"""What the audit event of each kind of decision says, through a real gateway over real sockets.

One OCSF API Activity event (class 6003) per request: allowed, refused for
each reason, modified, rate limited; with the caller, the route template,
the objects touched, every stage's decision, and no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support import (
    DATA,
    RecordingUpstream,
    ServerThread,
    Stack,
    eventually,
    gateway_for,
    stack,
    write_policy,
)
from tests.tokens import ISSUER, JWKSServer, claims, ec_key, jwt_auth, sign

from apishield.auth.apikeys import APIKeyRecord, generate_key
from apishield.services.apikey_store import SQLiteAPIKeyStore


def events_of(s: Stack) -> list[dict[str, Any]]:
    return list(s.gateway.server.config.app.pipeline.recorder.recent)


def event_for(s: Stack, request_id: str) -> dict[str, Any]:
    found = [e for e in events_of(s) if e["api"]["request"]["uid"] == request_id]
    assert len(found) == 1, f"{len(found)} events for request {request_id}"
    return found[0]


def assert_ocsf(event: dict[str, Any]) -> None:
    """The OCSF 1.8.0 base-event and API Activity requirements."""
    assert event["class_uid"] == 6003 and event["category_uid"] == 6
    assert event["type_uid"] == 600300 + event["activity_id"]
    assert event["metadata"]["version"] == "1.8.0"
    assert event["metadata"]["product"]["name"] == "apishield"
    assert event["metadata"]["product"]["vendor_name"] == "apishield"
    assert len(event["metadata"]["uid"]) == 32
    assert isinstance(event["time"], int) and event["time"] > 1_700_000_000_000  # epoch milliseconds
    assert event["severity_id"] in {1, 2, 3, 4, 5}
    assert event["actor"] and event["api"]["operation"] and event["src_endpoint"]["ip"]
    assert event["status_id"] in {1, 2} and event["action_id"] in {1, 2}
    assert "security_control" in event["metadata"]["profiles"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("audit-shop")
    policy = {
        "audit": {"path": str(tmp / "audit.db"), "redact": []},
        "rate_limits": {
            "limits": [
                {"id": "search-per-ip", "key": "client_ip", "rate": "1/min", "operations": ["searchItems"]}
            ]
        },
    }
    with stack(tmp, DATA / "shop31.yaml", **policy) as s:
        yield s


def test_allowed_read_names_route_objects_and_timings(shop: Stack) -> None:
    shop.upstream.answer("GET", "/items/42", body={"id": 42, "name": "lamp"})
    r = shop.call("GET", "/items/42", headers={"User-Agent": "probe/1.0"})
    assert r.status == 200
    event = event_for(shop, r.headers["x-request-id"])
    assert_ocsf(event)
    assert event["activity_id"] == 2 and event["type_uid"] == 600302
    assert event["action_id"] == 1 and event["disposition_id"] == 1 and event["severity_id"] == 1
    assert event["api"]["operation"] == "getItem"
    assert event["unmapped"]["route"] == "/items/{itemId}"
    assert event["resources"] == [{"type": "itemId", "uid": "42"}]
    assert event["http_request"]["http_method"] == "GET"
    assert event["http_request"]["user_agent"] == "probe/1.0"
    assert event["http_response"]["code"] == 200
    assert event["http_response"]["length"] == len(r.body)
    assert event["unmapped"]["records"] == 1
    assert event["src_endpoint"]["ip"] == "127.0.0.1" and event["src_endpoint"]["port"] > 0
    assert event["actor"] == {"app_name": "anonymous"}
    assert {"route", "request_validation", "forward"} <= set(event["unmapped"]["stage_us"])
    assert isinstance(event["duration"], int) and isinstance(event["http_response"]["latency"], float)


def test_validation_refusal_names_stage_and_pointer_not_value(shop: Stack) -> None:
    r = shop.call("POST", "/items", body={"name": 12345678, "price": "secret-looking-value"})
    assert r.status == 400
    event = event_for(shop, r.headers["x-request-id"])
    assert_ocsf(event)
    assert event["activity_id"] == 1 and event["type_uid"] == 600301
    assert event["action_id"] == 2 and event["disposition_id"] == 2 and event["status_id"] == 2
    assert event["status_detail"] == "validation-failed"
    denial = next(d for d in event["unmapped"]["decisions"] if d["outcome"] == "deny")
    assert denial["stage"] == "request_validation"
    assert event["policy"]["name"] in {denial.get("rule"), denial["stage"]}
    assert b"secret-looking-value" not in orjson.dumps(event)


def test_undocumented_path_is_one_event(shop: Stack) -> None:
    r = shop.call("GET", "/admin/backup.sql")
    assert r.status == 404
    event = event_for(shop, r.headers["x-request-id"])
    assert event["api"]["operation"] == "undocumented"
    assert "route" not in event["unmapped"]
    assert event["status_detail"] == "not-found" and event["action_id"] == 2


def test_rate_limited_request_carries_limit_state(shop: Stack) -> None:
    shop.upstream.answer("GET", "/items/search", body=[])
    statuses = [shop.call("GET", "/items/search?q=a") for _ in range(3)]
    refused = next(r for r in statuses if r.status == 429)
    event = event_for(shop, refused.headers["x-request-id"])
    assert event["action_id"] == 2
    limits = event["unmapped"]["rate_limits"]
    assert limits[0]["id"] == "search-per-ip" and limits[0]["allowed"] is False
    first = event_for(shop, statuses[0].headers["x-request-id"])
    assert first["unmapped"]["rate_limits"][0]["allowed"] is True


def test_stripped_response_is_a_modify_decision(shop: Stack) -> None:
    shop.upstream.answer("GET", "/items/7", body={"id": 7, "name": "lamp", "passwordHash": "x"})
    r = shop.call("GET", "/items/7")
    assert r.status == 200
    event = event_for(shop, r.headers["x-request-id"])
    modify = [d for d in event["unmapped"]["decisions"] if d["outcome"] == "modify"]
    assert modify and modify[0]["details"]["removed"] == ["/passwordHash"]
    assert event["action_id"] == 1


def test_control_characters_cannot_forge_log_lines(shop: Stack) -> None:
    from tests.support import raw_http

    port = shop.gateway.port
    raw_http(port, b"GET /items/1%0a%7b%22forged%22%3a1%7d HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x7fb\r\n\r\n")
    event = events_of(shop)[-1]
    line = orjson.dumps(event)
    assert b"\n" not in line  # one line, whatever the request said
    assert orjson.loads(line) == event


class AuthStack(Stack):
    key: Any
    api_key: str
    api_key_id: str


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    tmp = tmp_path_factory.mktemp("audit-auth")
    signing_key = ec_key("k1")
    jwks_server = ServerThread(JWKSServer(signing_key)).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    policy = write_policy(
        tmp,
        DATA / "secure31.yaml",
        up.port,
        auth={
            **jwt_auth(jwks_server.port),
            "api_keys": {"header": "X-API-Key", "store": f"sqlite:///{tmp / 'keys.db'}"},
        },
        audit={"path": str(tmp / "audit.db"), "redact": ["/actor/user/uid"]},
    )
    key, key_id, secret_hash = generate_key()
    store = SQLiteAPIKeyStore(tmp / "keys.db")
    record = APIKeyRecord(key_id, "partner-a", frozenset({"partner"}), secret_hash, time.time())
    asyncio.run(store.add(record))
    asyncio.run(store.close())
    try:
        with gateway_for(policy) as gw:
            s = AuthStack(upstream, up, gw, tmp)
            s.key = signing_key
            s.api_key = key
            s.api_key_id = key_id
            yield s
    finally:
        up.stop()
        jwks_server.stop()


def test_authenticated_call_names_actor_without_the_token(sec: AuthStack) -> None:
    sec.upstream.answer("GET", "/things", body={})
    token = sign(sec.key, claims(sub="alice@example.com", client_id="mobile-app", jti="jti-123"))
    r = sec.call("GET", "/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    event = event_for(sec, r.headers["x-request-id"])
    actor = event["actor"]
    assert actor["app_uid"] == "mobile-app"
    assert actor["user"]["uid"].startswith("redacted:")  # audit.redact: [/actor/user/uid]
    assert actor["session"]["issuer"] == ISSUER
    assert len(actor["session"]["uid"]) == 32 and "jti-123" not in orjson.dumps(event).decode()
    assert event["unmapped"]["credential"]["method"] == "jwt"
    line = orjson.dumps(event)
    assert token.encode() not in line and token.split(".")[2].encode() not in line
    assert b"alice@example.com" not in line
    # the same subject hashes the same way: an investigator can still follow one caller
    r2 = sec.call("GET", "/things", headers={"Authorization": f"Bearer {token}"})
    assert event_for(sec, r2.headers["x-request-id"])["actor"]["user"]["uid"] == actor["user"]["uid"]


def test_invalid_token_is_unauthorized(sec: AuthStack) -> None:
    token = sign(sec.key, claims(sub="mallory"))
    r = sec.call("GET", "/things", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert r.status == 401
    event = event_for(sec, r.headers["x-request-id"])
    assert_ocsf(event)
    assert event["disposition_id"] == 26 and event["status_detail"] == "invalid-token"
    assert event["severity_id"] == 3
    assert token[:-4].encode() not in orjson.dumps(event)


def test_insufficient_scope_is_blocked_with_the_stage(sec: AuthStack) -> None:
    token = sign(sec.key, claims(sub="bob", scope="things:read"))
    r = sec.call("POST", "/things", body={"name": "x"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 403
    event = event_for(sec, r.headers["x-request-id"])
    assert event["disposition_id"] == 2 and event["status_detail"] == "insufficient-scope"
    denial = next(d for d in event["unmapped"]["decisions"] if d["outcome"] == "deny")
    assert denial["stage"] == "authorization"


def test_events_only_for_decisions_when_configured(tmp_path: Path) -> None:
    """``audit.events: decisions`` stores refusals only; the queue (metrics, detectors) sees every request."""
    import sqlite3

    with stack(tmp_path, DATA / "shop31.yaml", audit={"events": "decisions", "path": "a.db"}) as s:
        s.upstream.answer("GET", "/items/1", body={"id": 1, "name": "lamp"})
        allowed = s.call("GET", "/items/1")
        refused = s.call("GET", "/nowhere")
        assert allowed.status == 200 and refused.status == 404
        seen = [e["api"]["request"]["uid"] for e in events_of(s)]
        assert seen[-2:] == [allowed.headers["x-request-id"], refused.headers["x-request-id"]]

        def stored() -> list[str]:
            with contextlib.closing(sqlite3.connect(tmp_path / "a.db")) as db:
                return [
                    json.loads(row[0])["api"]["request"]["uid"]
                    for row in db.execute("SELECT event FROM audit_events")
                ]

        eventually(lambda: refused.headers["x-request-id"] in stored(), "the refusal stored")
        assert stored() == [refused.headers["x-request-id"]]


def test_api_key_call_names_the_key_id_never_the_key(sec: AuthStack) -> None:
    sec.upstream.answer("GET", "/either", body={})
    r = sec.call("GET", "/either", headers={"X-API-Key": sec.api_key})
    assert r.status == 200, r.body
    event = event_for(sec, r.headers["x-request-id"])
    assert event["unmapped"]["credential"]["method"] == "api_key"
    assert event["unmapped"]["credential"]["key_id"] == sec.api_key_id
    assert event["actor"]["app_uid"] == "partner-a"
    line = orjson.dumps(event)
    assert sec.api_key.encode() not in line and sec.api_key.split("_")[-1].encode() not in line
    wrong = sec.call("GET", "/either", headers={"X-API-Key": sec.api_key[:-3] + "xyz"})
    assert wrong.status == 401
    refused = event_for(sec, wrong.headers["x-request-id"])
    assert refused["disposition_id"] == 26 and sec.api_key[:-3].encode() not in orjson.dumps(refused)
