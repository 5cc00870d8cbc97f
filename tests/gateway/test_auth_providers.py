"""Opaque tokens (RFC 7662), legacy HMAC tokens with the issued-token registry, and
revocation shared through Redis by two gateway processes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from tests.services import require_redis
from tests.support import (
    DATA,
    RecordingUpstream,
    ServerThread,
    eventually,
    free_port,
    gateway_for,
    http,
    serve_process,
    wait_listening,
    write_policy,
)
from tests.tokens import b64


class IntrospectionEndpoint:
    """An RFC 7662 endpoint: checks client authentication, answers from a table of tokens."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.down = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (msg := await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.calls += 1
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if self.down:
            status, answer = 503, {}
        elif auth != self.expected:
            status, answer = 401, {"error": "invalid_client"}
        else:
            token = parse_qs(body.decode())["token"][0]
            status, answer = 200, self.tokens.get(token, {"active": False})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


def test_introspection(tmp_path: Path) -> None:
    endpoint = IntrospectionEndpoint("gateway", "s3cret-for-introspection")
    server = ServerThread(endpoint).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    os.environ["APISHIELD_TEST_INTROSPECTION_SECRET"] = "s3cret-for-introspection"
    try:
        policy = write_policy(
            tmp_path,
            DATA / "secure31.yaml",
            up.port,
            auth={
                "introspection": [
                    {
                        "endpoint": f"http://127.0.0.1:{server.port}/introspect",
                        "client_id": "gateway",
                        "client_secret_env": "APISHIELD_TEST_INTROSPECTION_SECRET",
                        "audience": "secure-api",
                        "cache_ttl": "60s",
                        "negative_cache_ttl": "1s",
                    }
                ]
            },
        )
        good = uuid.uuid4().hex
        endpoint.tokens[good] = {
            "active": True,
            "scope": "things:read",
            "sub": "bob",
            "client_id": "partner-portal",
            "aud": "secure-api",
            "exp": time.time() + 300,
        }
        other_aud = uuid.uuid4().hex
        endpoint.tokens[other_aud] = {"active": True, "scope": "things:read", "aud": "elsewhere"}
        with gateway_for(policy) as gw:
            r = http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {good}"})
            assert r.status == 200, r.body
            assert upstream.received[-1].header("x-apishield-subject") == "bob"
            calls = endpoint.calls
            for _ in range(5):  # positive answers are cached
                assert (
                    http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {good}"}).status == 200
                )
            assert endpoint.calls == calls
            assert (
                http(gw.port, "GET", "/things", headers={"Authorization": "Bearer unknown-token"}).status
                == 401
            )
            assert (
                http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {other_aud}"}).status
                == 401
            )
            scope_poor = uuid.uuid4().hex
            endpoint.tokens[scope_poor] = {"active": True, "scope": "things:read", "aud": "secure-api"}
            r = http(
                gw.port, "POST", "/things", {"name": "x"}, headers={"Authorization": f"Bearer {scope_poor}"}
            )
            assert r.status == 403
            # endpoint down: fail closed for tokens not cached
            endpoint.down = True
            fresh = uuid.uuid4().hex
            endpoint.tokens[fresh] = {"active": True, "scope": "things:read", "aud": "secure-api"}
            assert http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {fresh}"}).status == 401
            assert http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {good}"}).status == 200
    finally:
        del os.environ["APISHIELD_TEST_INTROSPECTION_SECRET"]
        up.stop()
        server.stop()


def hs256(secret: bytes, claims: dict[str, Any]) -> str:
    import hashlib
    import hmac

    signing_input = f"{b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(orjson.dumps(claims))}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def test_legacy_hmac_tokens_and_issued_registry(tmp_path: Path) -> None:
    secret = os.urandom(32)
    (tmp_path / "legacy.key").write_bytes(secret)
    upstream = RecordingUpstream()
    issued = hs256(secret, {"sub": "alice", "scope": "things:read", "exp": int(time.time()) + 300})
    upstream.answer("POST", "/login", body={"token": issued})
    up = ServerThread(upstream).start()
    try:
        policy = write_policy(
            tmp_path,
            DATA / "secure31.yaml",
            up.port,
            auth={
                "jwt": [
                    {
                        "issuer": "legacy-app",
                        "audience": "unused",
                        "algorithms": ["HS256"],
                        "hmac_secret_file": "legacy.key",
                        "require_iss": False,
                        "require_aud": False,
                        "require_typ": False,
                        "required_claims": ["exp", "sub"],
                        "require_issued_by_gateway": True,
                    }
                ],
                "issued_tokens": {"login_operation": "login", "token_pointer": "/token"},
            },
        )
        check = subprocess.run(
            [sys.executable, "-m", "apishield", "check", "--config", str(policy)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        assert "relaxed token checks: require_iss, require_aud, require_typ: false" in check.stderr
        with gateway_for(policy) as gw:
            # signed with the leaked secret, but never issued by the application
            forged = hs256(secret, {"sub": "admin", "scope": "things:read", "exp": int(time.time()) + 300})
            assert (
                http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {forged}"}).status == 401
            )
            assert (
                http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {issued}"}).status == 401
            )
            assert http(gw.port, "POST", "/login", {"username": "alice"}).status == 200  # the app issues it
            r = http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {issued}"})
            assert r.status == 200, r.body
            assert (
                http(gw.port, "GET", "/things", headers={"Authorization": f"Bearer {forged}"}).status == 401
            )
    finally:
        up.stop()


def test_weak_legacy_secret_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "weak.key").write_bytes(b"short")
    base = {
        "issuer": "legacy",
        "audience": "x",
        "algorithms": ["HS256"],
        "hmac_secret_file": "weak.key",
        "require_iss": False,
    }
    for allow, code in ((False, 2), (True, 0)):
        policy = write_policy(
            tmp_path, DATA / "secure31.yaml", 1, auth={"jwt": [{**base, "allow_weak_secret": allow}]}
        )
        result = subprocess.run(
            [sys.executable, "-m", "apishield", "check", "--config", str(policy)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == code, result.stderr
    assert "can be brute-forced" in result.stderr


def test_inline_secret_is_not_a_policy_key(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        DATA / "secure31.yaml",
        1,
        auth={"jwt": [{"issuer": "l", "audience": "x", "algorithms": ["HS256"], "hmac_secret": "inline"}]},
    )
    result = subprocess.run(
        [sys.executable, "-m", "apishield", "check", "--config", str(policy)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown key 'hmac_secret'" in result.stderr


@pytest.mark.redis
def test_revocation_reaches_two_gateway_processes_through_redis(tmp_path: Path) -> None:
    redis_url = require_redis()
    from tests.tokens import AUDIENCE, ISSUER, claims, ec_key, sign

    key = ec_key("k1")
    (tmp_path / "jwks.json").write_bytes(orjson.dumps({"keys": [key.as_dict(private=False)]}))
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    namespace = uuid.uuid4().hex
    policy = write_policy(
        tmp_path,
        DATA / "secure31.yaml",
        up.port,
        auth={
            "jwt": [
                {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["ES256"], "jwks_file": "jwks.json"}
            ],
            "revocation": {"store": redis_url, "poll_interval": 0.1},
        },
    )
    ports = [free_port(), free_port()]
    procs = [serve_process(policy, p) for p in ports]
    try:
        for p in ports:
            wait_listening(p, "/public")
        c = claims(jti=f"{namespace}-jti")
        token = sign(key, c)
        for p in ports:
            assert http(p, "GET", "/things", headers={"Authorization": f"Bearer {token}"}).status == 200
        subprocess.run(
            [sys.executable, "-m", "apishield", "revoke", "--config", str(policy), "--jti", c["jti"]],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for p in ports:
            eventually(
                lambda p=p: (
                    http(p, "GET", "/things", headers={"Authorization": f"Bearer {token}"}).status == 401
                ),
                f"revoked token refused by the instance on port {p}",
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            # uvicorn drains connections for up to its graceful-shutdown timeout (30 s) before exiting
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        up.stop()
