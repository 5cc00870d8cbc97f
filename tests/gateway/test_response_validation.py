"""Response-stage rules: strip, enforce, report, off; write-only; 5xx bodies; uniform failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import DATA, Stack, stack

LEAKY = {
    "id": 1,
    "name": "lamp",
    "secret": "write-only-value",
    "passwordHash": "abc123",
    "meta": {"free": "form"},
    "owner": {"name": "o", "ssn": "123-45-6789"},
}


def noteworthy(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions of an audit event other than plain allows."""
    return [d for d in event["unmapped"].get("decisions", []) if d["outcome"] != "allow"]


def decisions(stack: Stack) -> list[dict[str, Any]]:
    """The decision records the gateway of ``stack`` wrote (the newest last)."""
    recorder = stack.gateway.server.config.app.pipeline.recorder
    return list(recorder.recent)


def test_strip_removes_undocumented_and_write_only_members(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items/1", body=LEAKY)
    r = gw.call("GET", "/items/1")
    assert r.status == 200
    assert r.json() == {"id": 1, "name": "lamp", "meta": {"free": "form"}, "owner": {"name": "o"}}
    assert int(r.headers["content-length"]) == len(r.body)
    for secret in (b"write-only-value", b"abc123", b"123-45-6789"):
        assert secret not in r.body
    record = next(
        d for d in reversed(decisions(gw)) if d["api"]["request"]["uid"] == r.headers["x-request-id"]
    )
    removed = noteworthy(record)[0]["details"]["removed"]
    assert sorted(removed) == ["/owner/ssn", "/passwordHash", "/secret"]
    assert b"abc123" not in orjson.dumps(list(gw.gateway.server.config.app.pipeline.recorder.recent))


def test_strip_in_arrays(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items", body=[LEAKY, {**LEAKY, "id": 2}])
    r = gw.call("GET", "/items")
    assert r.status == 200
    assert [sorted(x) for x in r.json()] == [["id", "meta", "name", "owner"]] * 2


def test_strip_refuses_a_value_of_another_shape(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items", body={"id": 1, "name": "not an array"})
    r = gw.call("GET", "/items")
    assert r.status == 502
    assert b"not an array" not in r.body


def test_undocumented_media_type_is_not_passed_on(gw: Stack) -> None:
    gw.upstream.answer(
        "GET", "/items/1", body=b"<html>debug</html>", headers=[(b"content-type", b"text/html")]
    )
    r = gw.call("GET", "/items/1")
    assert r.status == 502
    assert b"debug" not in r.body


def test_documented_error_status_passes(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items/9", status=404, body={"error": "no such item", "trace": "x"})
    r = gw.call("GET", "/items/9")
    assert r.status == 404
    assert r.json() == {"error": "no such item"}


def test_undocumented_status_is_logged(gw: Stack) -> None:
    gw.upstream.answer("GET", "/items/1", status=202, body={})
    r = gw.call("GET", "/items/1")
    assert r.status == 202
    record = decisions(gw)[-1]
    assert record["api"]["request"]["uid"] == r.headers["x-request-id"]
    assert noteworthy(record)[0]["reason"] == "undocumented status 202"


def test_upstream_5xx_body_replaced(gw: Stack) -> None:
    trace = (
        b'Traceback (most recent call last):\n  File "app.py"\nsqlite3.OperationalError: SELECT * FROM users'
    )
    gw.upstream.answer(
        "GET",
        "/boom",
        status=503,
        body=trace,
        headers=[(b"content-type", b"text/plain"), (b"retry-after", b"5")],
    )
    r = gw.call("GET", "/boom")
    assert r.status == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "5"
    assert b"Traceback" not in r.body and b"SELECT" not in r.body
    assert r.json()["status"] == 503


def test_uniform_failure_hides_which_part_failed(gw: Stack) -> None:
    gw.upstream.answer("POST", "/login", status=404, body={"error": "unknown user"})
    unknown = gw.call("POST", "/login", {"username": "nobody", "password": "pw"})
    gw.upstream.answer("POST", "/login", status=401, body={"error": "wrong password"})
    wrong = gw.call("POST", "/login", {"username": "alice", "password": "pw"})
    invalid = gw.call("POST", "/login", {"username": "x" * 30, "password": "pw"})  # refused by the gateway
    for r in (unknown, wrong, invalid):
        assert r.status == 401
        assert r.body == unknown.body
        assert r.headers["content-type"] == "application/problem+json"
        assert sorted(r.headers) == sorted(unknown.headers)
    gw.upstream.answer("POST", "/login", status=200, body={"token": "t"})
    assert gw.call("POST", "/login", {"username": "alice", "password": "pw"}).status == 200


@pytest.fixture(scope="module")
def modes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    policy = {
        "validation": {"requests": "report", "responses": "report"},
        "operations": {
            "getItem": {"validation": {"responses": "enforce"}},
            "updateItem": {"validation": {"requests": "enforce", "responses": "off"}},
            "login": {"uniform_failure": {"status": 400, "when_body_pointer": "/error", "when_status": []}},
        },
    }
    with stack(tmp_path_factory.mktemp("modes"), DATA / "shop31.yaml", **policy) as s:
        yield s


def test_enforce_turns_violations_into_502(modes: Stack) -> None:
    modes.upstream.answer("GET", "/items/1", body=LEAKY)
    r = modes.call("GET", "/items/1")
    assert r.status == 502
    assert b"abc123" not in r.body
    modes.upstream.answer("GET", "/items/1", body={"id": 1, "name": "ok"})
    assert modes.call("GET", "/items/1").status == 200


def test_report_mode_lets_requests_through_and_logs(modes: Stack) -> None:
    modes.upstream.received.clear()
    r = modes.call("GET", "/items?limit=0&debug=1")
    assert r.status == 200
    assert len(modes.upstream.received) == 1
    record = decisions(modes)[-1]
    reported = [d for d in record["unmapped"]["decisions"] if d["outcome"] == "report"]
    assert {e["pointer"] for e in reported[0]["details"]["errors"]} == {"/limit", "/debug"}


def test_report_mode_response_untouched(modes: Stack) -> None:
    modes.upstream.answer("GET", "/items", body=[LEAKY])
    r = modes.call("GET", "/items")
    assert r.status == 200
    assert r.json() == [LEAKY]


def test_per_operation_mode_overrides(modes: Stack) -> None:
    modes.upstream.received.clear()
    r = modes.call("PUT", "/items/1", {"name": "n", "isAdmin": True})
    assert r.status == 400
    assert modes.upstream.received == []
    modes.upstream.answer("PUT", "/items/1", body=LEAKY)
    r = modes.call("PUT", "/items/1", {"name": "n"})
    assert r.json() == LEAKY  # responses: off for this operation


def test_uniform_failure_on_error_message_in_200(modes: Stack) -> None:
    modes.upstream.answer("POST", "/login", status=200, body={"error": "wrong password"})
    r = modes.call("POST", "/login", {"username": "a", "password": "b"})
    assert r.status == 400
    assert b"wrong password" not in r.body


def test_openapi_30_dialect(tmp_path: Path) -> None:
    with stack(tmp_path, DATA / "shop30.yaml") as s:
        ok = {"name": "w", "note": None, "weight": 10, "kind": "small", "parent": None, "count": 5}
        s.upstream.answer("PUT", "/widgets/1", body=ok)
        assert s.call("PUT", "/widgets/1", ok).status == 200
        bad = [
            ({"name": "w", "weight": 0}, "/weight"),  # exclusiveMinimum: true
            ({"name": "w", "note": "toolong"}, "/note"),
            ({"name": "w", "kind": "medium"}, "/kind"),
            ({"name": "w", "count": 2**31}, "/count"),
        ]
        for body, pointer in bad:
            r = s.call("PUT", "/widgets/1", body)
            assert r.status == 400, body
            assert [e["pointer"] for e in r.json()["errors"]] == [pointer]
        assert s.call("PUT", f"/widgets/{2**31}", ok).status == 400  # int32 path parameter
        assert len(s.upstream.received) == 1
