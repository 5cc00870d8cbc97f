"""The simulator writes events in the gateway's and the issuer's layout, and facts read both alike."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

from apishield.audit.event import build_api_activity
from apishield.auth.principal import Principal
from apishield.core.exchange import Exchange, Reply, RequestHead
from apishield.detect.facts import API, AUTH, extract, object_of, path_of, peer_of
from apishield.detect.simulate.events import Call, Emitter, SignIn
from apishield.issuer.audit import authentication_event
from apishield.problem import NotFound


def _paths(node: Any, prefix: str = "") -> set[str]:
    """Every member path of a JSON value (list items collapsed to ``[]``)."""
    out = {prefix} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            out |= _paths(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list):
        for item in node:
            out |= _paths(item, prefix + "[]")
    return out


def _real(status: int) -> dict[str, Any]:
    head = RequestHead(
        "GET",
        b"/v1/customers/42",
        b"",
        [(b"host", b"api.example.com"), (b"user-agent", b"CustomerApp/4.3.1")],
        client=("10.1.2.3", 50123),
        server=("10.255.0.10", 8443),
    )
    ex = Exchange(head, "req-1", time.perf_counter_ns())
    ex.operation = SimpleNamespace(operation_id="getCustomer", template="/v1/customers/{customerId}")  # type: ignore[assignment]
    ex.path_params = {"customerId": "42"}
    ex.principal = Principal(
        method="jwt",
        subject="user000042",
        client_id="mobile-app",
        issuer="https://login.example.com",
        scopes=frozenset({"customers:read"}),
        roles=frozenset({"customer"}),
        token_id="jti-1",
    )
    ex.decide("route", "allow", "documented operation", rule="getCustomer")
    ex.decide("authentication", "allow", "authenticated by jwt", rule="https://login.example.com")
    if status == 200:
        ex.upstream_status = 200
        ex.reply = Reply(200, [], b'{"id": 42}', from_upstream=True)
        ex.reply.value = {"id": 42}
    else:
        ex.upstream_status = 404
        ex.decide("object_access", "deny", "rule denied the answer", rule="authorization.getCustomer")
        problem = NotFound(detail="The requested object was not found.")
        ex.reply = Reply(404, [], problem.body(ex.request_id), problem=problem)
    return build_api_activity(ex, "gw-1")


def _simulated(status: int) -> dict[str, Any]:
    call = Call(
        int(time.time() * 1000),
        sub="user000042",
        client="mobile-app",
        roles=("customer",),
        scopes=("customers:read",),
        token="f" * 32,
        ip="10.1.2.3",
        agent="CustomerApp/4.3.1",
        method="GET",
        operation="getCustomer",
        route="/v1/customers/{customerId}",
        path="/v1/customers/42",
        params=(("customerId", "42"),),
        status=status,
        detail=None if status == 200 else "not-found",
        stage=None if status == 200 else "object_access",
        rule=None if status == 200 else "authorization.getCustomer",
        records=1 if status == 200 else None,
        length=560,
    )
    return Emitter(random.Random(1), limits=False).api(call)


def test_api_events_have_the_gateway_layout() -> None:
    for status in (200, 404):
        real, sim = _real(status), _simulated(status)
        # the simulator adds no member the gateway does not write (stage timings are optional there)
        assert _paths(sim) - _paths(real) == set()
        assert _paths(real) - _paths(sim) <= {"unmapped.stage_us"}
        for path in ("class_uid", "action_id", "status_id", "disposition_id", "severity_id", "activity_id"):
            assert real[path] == sim[path], path


def test_authentication_events_have_the_issuer_layout() -> None:
    real = authentication_event(
        activity=1,
        success=False,
        service="customer-api",
        instance="issuer-1",
        src_ip="203.0.113.5",
        user_name="user000042",
        client_id="mobile-app",
        detail="login_failed",
        endpoint="authorize",
    )
    sim = Emitter(random.Random(1)).auth(
        SignIn(
            0,
            endpoint="authorize",
            client="mobile-app",
            ip="203.0.113.5",
            success=False,
            user_name="user000042",
            detail="login_failed",
        )
    )
    assert _paths(sim) == _paths(real)
    assert (sim["status_id"], sim["severity_id"]) == (real["status_id"], real["severity_id"])


def test_facts_read_real_and_simulated_events_alike() -> None:
    for status in (200, 404):
        real, sim = extract(_real(status)), extract(_simulated(status))
        assert real is not None and sim is not None
        for name in (
            "kind",
            "principal",
            "subject",
            "client",
            "ip",
            "operation",
            "route",
            "status",
            "denied",
        ):
            assert getattr(real, name) == getattr(sim, name), name
        assert real.kind == API and real.principal == "sub:user000042"
        assert real.token is not None and len(real.token) == 32
        assert object_of(real) == object_of(sim) == "42"
        assert peer_of(real) == peer_of(sim) == "mobile-app|customer"
    assert extract(_real(200)).records == 1  # type: ignore[union-attr]


def test_facts_of_an_authentication_event() -> None:
    event = authentication_event(
        activity=1,
        success=False,
        service="customer-api",
        instance="issuer-1",
        src_ip="203.0.113.5",
        user_uid="user000042",
        client_id="mobile-app",
        detail="refresh_token_reuse",
        severity=5,
        endpoint="token",
        grant_type="refresh_token",
    )
    f = extract(event)
    assert f is not None and f.kind == AUTH
    assert (f.principal, f.account, f.client, f.ip) == (
        "sub:user000042",
        "user000042",
        "mobile-app",
        "203.0.113.5",
    )
    assert (f.success, f.detail, f.grant, f.service) == (
        False,
        "refresh_token_reuse",
        "refresh_token",
        "customer-api",
    )


def test_anonymous_and_client_credentials_principals() -> None:
    undocumented = Emitter(random.Random(1)).api(
        Call(
            0,
            sub="user1",
            client="mobile-app",
            roles=("customer",),
            scopes=(),
            token="t" * 32,
            ip="198.51.100.7",
            agent="x",
            method="GET",
            operation="undocumented",
            route=None,
            path="/v1/internal/debug",
            status=404,
            detail="not-found",
            stage="route",
        )
    )
    f = extract(undocumented)
    assert f is not None
    assert f.principal == "ip:198.51.100.7"  # the router refuses before anyone is authenticated
    assert f.token is None and path_of(f) == "/v1/internal/debug"
    partner = Emitter(random.Random(1)).api(
        Call(
            0,
            sub="partner-portal",
            client="partner-portal",
            roles=("partner",),
            scopes=(),
            token="p" * 32,
            ip="198.51.100.10",
            agent="x",
            method="GET",
            operation="listCustomers",
            route="/v1/customers",
            path="/v1/customers",
            records=50,
            length=21_000,
        )
    )
    g = extract(partner)
    assert g is not None and g.principal == "client:partner-portal" and g.records == 50


def test_damaged_and_foreign_events() -> None:
    assert extract({"class_uid": 2004, "time": 1}) is None
    assert extract({"time": 1}) is None
    assert extract({"class_uid": 6003, "time": "yesterday"}) is None
    f = extract({"class_uid": 6003, "time": 5, "actor": {"user": {"uid": "u"}}, "http_response": {}})
    assert f is not None and f.principal == "sub:u" and f.status == 0 and f.ip == "unknown"
