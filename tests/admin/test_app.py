"""The admin listener: credential, health, readiness, routes and start-up errors, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.admin import AdminConfigError, AdminServer, Answer, Check, Route, build_admin_server
from apishield.admin.app import AdminRequest
from apishield.config.audit import AdminPolicy
from tests.admin.support import LoopThread, parse_exposition
from tests.support import http

TOKEN = "s3cret-admin-token-for-tests"


@pytest.fixture()
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def start(loop: LoopThread, server: AdminServer) -> AdminServer:
    loop.run(server.start())
    return server


@pytest.fixture()
def guarded(loop: LoopThread, tmp_path: Path) -> Iterator[AdminServer]:
    """An admin server whose token is in a file next to the policy (a relative token_file)."""
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    server = start(loop, build_admin_server(AdminPolicy(port=0, token_file="admin.token"), tmp_path))
    yield server
    loop.run(server.stop())


def test_metrics_need_the_token(guarded: AdminServer) -> None:
    missing = http(guarded.port, "GET", "/metrics")
    assert missing.status == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == 'Bearer realm="apishield-admin"'
    problem = missing.json()
    assert problem["status"] == 401 and problem["type"].endswith("/admin-unauthorized")
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        refused = http(guarded.port, "GET", "/metrics", headers={"Authorization": wrong})
        assert refused.status == 401, wrong
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert TOKEN not in refused.body.decode()
    ok = http(guarded.port, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and b"apishield_build_info" in ok.body
    assert ok.headers["cache-control"] == "no-store"
    lower = http(guarded.port, "GET", "/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert lower.status == 200  # the scheme is case-insensitive (RFC 9110 §11.1)


def test_health_answers_without_the_token(guarded: AdminServer) -> None:
    health = http(guarded.port, "GET", "/healthz")
    assert health.status == 200 and health.json() == {"status": "pass"}
    assert http(guarded.port, "GET", "/readyz").status == 503  # not started yet


def test_unknown_paths_and_methods(guarded: AdminServer) -> None:
    assert http(guarded.port, "GET", "/metrics/x").status == 404
    assert http(guarded.port, "GET", "/").status == 404
    post = http(guarded.port, "POST", "/healthz", body=b"")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"
    head = http(guarded.port, "HEAD", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 0


def test_readiness_names_the_failing_checks(loop: LoopThread, tmp_path: Path) -> None:
    state = {"store": True}

    async def slow_store() -> bool:
        await asyncio.sleep(0)
        return state["store"]

    def broken() -> bool:
        raise RuntimeError("probe exploded")

    checks = [Check("store", slow_store), Check("always", lambda: True)]
    server = start(loop, build_admin_server(AdminPolicy(port=0), tmp_path, checks=checks))
    try:
        before = http(server.port, "GET", "/readyz")
        assert before.status == 503
        assert before.json()["failed"] == ["started"]
        assert before.json()["checks"] == {"started": "fail", "store": "pass", "always": "pass"}
        server.readiness.started()
        ready = http(server.port, "GET", "/readyz")
        assert ready.status == 200 and ready.json()["status"] == "pass" and "failed" not in ready.json()
        state["store"] = False
        down = http(server.port, "GET", "/readyz")
        assert down.status == 503 and down.json()["failed"] == ["store"]
        assert down.headers["content-type"] == "application/json"
        server.readiness.add(Check("broken", broken))
        state["store"] = True
        raised = http(server.port, "GET", "/readyz")
        assert raised.status == 503 and raised.json()["failed"] == ["broken"]
        assert "exploded" not in raised.body.decode()
        server.readiness.stopping()
        assert http(server.port, "GET", "/readyz").json()["failed"] == ["started", "broken"]
    finally:
        loop.run(server.stop())


def test_a_console_can_add_routes(loop: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APISHIELD_TEST_ADMIN", TOKEN)
    server = build_admin_server(AdminPolicy(port=0, token_env="APISHIELD_TEST_ADMIN"), tmp_path)

    async def console(request: AdminRequest) -> Answer:
        return Answer(200, f"console {request.path}".encode(), b"text/plain; charset=utf-8")

    server.app.add(Route("/console", console, prefix=True))
    start(loop, server)
    try:
        assert http(server.port, "GET", "/console/events").status == 401
        page = http(server.port, "GET", "/console/events", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status == 200 and page.body == b"console /console/events"
        assert (
            http(server.port, "GET", "/consoleX", headers={"Authorization": f"Bearer {TOKEN}"}).status == 404
        )
    finally:
        loop.run(server.stop())
    with pytest.raises(ValueError, match="taken"):
        server.app.add(Route("/metrics", console))


def test_credential_errors_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AdminConfigError, match=r"admin\.token_file: cannot read missing\.token"):
        build_admin_server(AdminPolicy(token_file="missing.token"), tmp_path)
    (tmp_path / "empty.token").write_text("\n")
    with pytest.raises(AdminConfigError, match=r"admin\.token_file: empty\.token is empty"):
        build_admin_server(AdminPolicy(token_file="empty.token"), tmp_path)
    monkeypatch.delenv("APISHIELD_TEST_UNSET", raising=False)
    with pytest.raises(
        AdminConfigError, match=r"admin\.token_env: environment variable APISHIELD_TEST_UNSET"
    ):
        build_admin_server(AdminPolicy(token_env="APISHIELD_TEST_UNSET"), tmp_path)
    monkeypatch.setenv("APISHIELD_TEST_SHORT", "short")
    with pytest.raises(AdminConfigError, match="shorter than 16"):
        build_admin_server(AdminPolicy(token_env="APISHIELD_TEST_SHORT"), tmp_path)


def test_a_port_in_use_is_a_startup_error(loop: LoopThread, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = build_admin_server(AdminPolicy(port=port), tmp_path)
        with pytest.raises(
            AdminConfigError, match=rf"admin\.host/admin\.port: cannot listen on 127\.0\.0\.1:{port}"
        ):
            loop.run(server.start())


def test_port_zero_reports_the_bound_port_and_stop_closes_it(loop: LoopThread, tmp_path: Path) -> None:
    server = start(loop, build_admin_server(AdminPolicy(port=0), tmp_path))
    port = server.port
    assert port != 0 and server.url == f"http://127.0.0.1:{port}"
    assert http(port, "GET", "/healthz").status == 200
    loop.run(server.stop())
    with pytest.raises(OSError):
        http(port, "GET", "/healthz", timeout=2)
    with pytest.raises(RuntimeError):
        _ = server.port


def test_readiness_fails_while_fetched_keys_are_unusable(loop: LoopThread, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from apishield.auth.jwks import KeySetState
    from apishield.auth.token_cache import TokenCache

    keys = KeySetState("https://issuer.example", 60, 3600, 300, 10, 600)
    provider = SimpleNamespace(issuer="https://issuer.example", jwks_uri="https://issuer.example/jwks")
    auth = SimpleNamespace(
        token_cache=TokenCache(1),
        introspection_cache=TokenCache(1),
        api_key_cache=TokenCache(1),
        issuers={"https://issuer.example": SimpleNamespace(provider=provider, keys=keys)},
    )
    server = start(loop, build_admin_server(AdminPolicy(port=0), tmp_path, auth=auth))  # type: ignore[arg-type]
    try:
        server.readiness.started()
        never_fetched = http(server.port, "GET", "/readyz")
        assert never_fetched.status == 503 and never_fetched.json()["failed"] == ["jwks"]
        keys.fetched(object(), "max-age=300", time.time())
        assert http(server.port, "GET", "/readyz").status == 200
        usable = parse_exposition(http(server.port, "GET", "/metrics").body.decode())
        assert usable.value("apishield_jwks_keys_usable", issuer="https://issuer.example") == 1
    finally:
        loop.run(server.stop())
