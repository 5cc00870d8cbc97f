"""FastAPI integration: the principal in the endpoint, documented security, the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Request, Security

from apishield import Shield
from apishield.auth.principal import Principal
from apishield.config.load import ConfigError
from apishield.middleware.fastapi import (
    PUBLIC,
    CurrentPrincipal,
    api_key_scheme,
    bearer_scheme,
    oauth2_scheme,
)
from tests.middleware.conftest import Issuer
from tests.support import ServerThread, http

FLOWS = {"clientCredentials": {"tokenUrl": "https://issuer.test/token", "scopes": {"things:read": "read"}}}
# module level: endpoint annotations are strings here, resolved in the module's namespace
OAUTH2 = oauth2_scheme(FLOWS)
BEARER = bearer_scheme()
KEY = api_key_scheme("X-API-Key", "partnerKey")


def build_app(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append("app shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/me", operation_id="me")
    async def me(
        request: Request, who: Annotated[Principal, Security(OAUTH2, scopes=["things:read"])]
    ) -> dict[str, Any]:
        in_scope = request.scope["apishield"]
        return {
            "subject": who.subject,
            "scopes": sorted(who.scopes),
            "same": in_scope is who,
            "typed": isinstance(who, Principal),
        }

    @app.get("/open", operation_id="open", openapi_extra=PUBLIC)
    async def open_(who: CurrentPrincipal) -> dict[str, Any]:
        return {"authenticated": who.authenticated, "method": who.method}

    return app


def test_principal_reaches_the_endpoint(tmp_path: Path, issuer: Issuer) -> None:
    events: list[str] = []
    app = build_app(events)
    document = app.openapi()
    assert document["paths"]["/me"]["get"]["security"] == [{"oauth2": ["things:read"]}]
    assert document["components"]["securitySchemes"]["oauth2"]["type"] == "oauth2"
    shielded = Shield(app, config=issuer.policy(tmp_path), openapi=app.openapi, decision_log=None)
    server = ServerThread(shielded).start()
    try:
        r = http(server.port, "GET", "/me", headers=issuer.bearer(sub="alice"))
        assert r.status == 200, r.body
        assert r.json() == {"subject": "alice", "scopes": ["things:read"], "same": True, "typed": True}
        assert http(server.port, "GET", "/me").status == 401
        r = http(server.port, "GET", "/me", headers=issuer.bearer(scope="other"))
        assert r.status == 403
        assert http(server.port, "GET", "/open").json() == {"authenticated": False, "method": "anonymous"}
    finally:
        server.stop()


def test_lifespan_warms_keys_and_runs_the_apps_own(tmp_path: Path, issuer: Issuer) -> None:
    events: list[str] = []
    app = build_app(events)
    shielded = Shield(app, config=issuer.policy(tmp_path), openapi=app.openapi, decision_log=None)
    before = issuer.jwks.fetches
    server = ServerThread(shielded).start()
    try:
        assert issuer.jwks.fetches == before + 1  # fetched at startup, before any request
        assert events == ["app startup"]
        assert shielded.effects is not None and shielded.startup is not None
        assert http(server.port, "GET", "/me", headers=issuer.bearer()).status == 200
        assert issuer.jwks.fetches == before + 1
    finally:
        server.stop()
    assert events == ["app startup", "app shutdown"]
    assert shielded._started is False


def test_add_middleware_form(tmp_path: Path, issuer: Issuer) -> None:
    events: list[str] = []
    app = build_app(events)
    app.add_middleware(Shield, config=issuer.policy(tmp_path), openapi=app.openapi, decision_log=None)
    before = issuer.jwks.fetches
    server = ServerThread(app).start()
    try:
        assert issuer.jwks.fetches == before + 1
        assert http(server.port, "GET", "/me", headers=issuer.bearer(sub="bob")).json()["subject"] == "bob"
        assert http(server.port, "GET", "/docs").status == 404  # not in the document
    finally:
        server.stop()
    assert events == ["app startup", "app shutdown"]


async def no_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app that knows nothing of the lifespan protocol."""
    assert scope["type"] == "http"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


NO_LIFESPAN_DOC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "security": [{"bearer": []}],
    "paths": {
        "/ok": {
            "get": {
                "operationId": "ok",
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
            }
        }
    },
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
}


def test_app_without_lifespan_support(tmp_path: Path, issuer: Issuer) -> None:
    shielded = Shield(
        no_lifespan_app, config=issuer.policy(tmp_path), openapi=NO_LIFESPAN_DOC, decision_log=None
    )
    before = issuer.jwks.fetches
    server = ServerThread(shielded).start()
    try:
        assert issuer.jwks.fetches == before + 1  # Shield answered the lifespan alone
        assert http(server.port, "GET", "/ok", headers=issuer.bearer()).status == 200
    finally:
        server.stop()
    assert shielded._started is False


def test_server_without_lifespan(tmp_path: Path, issuer: Issuer) -> None:
    """``lifespan="off"``: nothing warms up, keys are fetched on the first token instead."""

    async def closing_jwks(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # nothing closes the middleware's key fetcher without a lifespan: let the server close instead
        async def send_closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"connection", b"close")]
            await send(message)

        await issuer.jwks(scope, receive, send_closing)

    jwks = ServerThread(closing_jwks).start()
    policy = issuer.policy(tmp_path)
    policy.write_text(policy.read_text().replace(f":{issuer.server.port}/", f":{jwks.port}/"))
    shielded = Shield(no_lifespan_app, config=policy, openapi=NO_LIFESPAN_DOC, decision_log=None)
    before = issuer.jwks.fetches
    server = ServerThread(shielded, lifespan="off").start()
    try:
        assert issuer.jwks.fetches == before
        assert http(server.port, "GET", "/ok", headers=issuer.bearer()).status == 200
        assert issuer.jwks.fetches == before + 1
        assert http(server.port, "GET", "/ok").status == 401
    finally:
        server.stop()
        jwks.stop()


def test_failed_startup_is_reported_to_the_server(tmp_path: Path, issuer: Issuer) -> None:
    events: list[str] = []
    app = build_app(events)
    shielded = Shield(app, config=issuer.policy(tmp_path), openapi=app.openapi, decision_log=None)

    async def broken() -> None:
        raise RuntimeError("store unreachable")

    shielded.startup = broken  # type: ignore[method-assign]
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(shielded({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "store unreachable" in sent[0]["message"]
    assert events == []  # the application's own startup never ran


def test_websocket_refused(tmp_path: Path, issuer: Issuer) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    shielded = Shield(
        no_lifespan_app, config=issuer.policy(tmp_path), openapi=NO_LIFESPAN_DOC, decision_log=None
    )
    asyncio.run(shielded({"type": "websocket", "path": "/ok", "headers": []}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_scheme_helpers_document_what_shield_reads(tmp_path: Path) -> None:
    app = FastAPI()

    @app.get("/b", operation_id="b")
    async def b(who: Annotated[Principal, Security(BEARER)]) -> dict[str, str]:
        return {}

    @app.get("/k", operation_id="k")
    async def k(who: Annotated[Principal, Security(KEY)]) -> dict[str, str]:
        return {}

    schemes = app.openapi()["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["partnerKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    policy = tmp_path / "p.yaml"
    policy.write_text("auth: {public_operations: [b, k]}\n")
    shield = Shield(app, config=policy, openapi=app.openapi, decision_log=None)
    assert shield.runtime.plans["b"].mode == "public"


def test_principal_dependency_without_shield_fails_closed() -> None:
    app = FastAPI()

    @app.get("/open")
    async def open_(who: CurrentPrincipal) -> dict[str, str]:
        return {"subject": str(who.subject)}

    server = ServerThread(app).start()
    try:
        assert http(server.port, "GET", "/open").status == 500
    finally:
        server.stop()


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("validation: {requests: enforce}\n")
    with pytest.raises(ConfigError, match="openapi=") as info:
        Shield(no_lifespan_app, config=policy)
    assert info.value.issues[0].path == ("openapi",)
    with pytest.raises(ConfigError, match="unsupported OpenAPI version"):
        Shield(no_lifespan_app, config=policy, openapi={"openapi": "2.0", "paths": {}})
    with pytest.raises(ConfigError, match="points outside the document"):
        doc = {**NO_LIFESPAN_DOC, "components": {"schemas": {"X": {"$ref": "other.yaml#/X"}}}}
        Shield(no_lifespan_app, config=policy, openapi=doc)
    policy.write_text("operations: {nope: {validation: {requests: off}}}\n")
    with pytest.raises(ConfigError, match="no operation 'nope'"):
        Shield(no_lifespan_app, config=policy, openapi=NO_LIFESPAN_DOC)
    with pytest.raises(TypeError):
        Shield(no_lifespan_app)
