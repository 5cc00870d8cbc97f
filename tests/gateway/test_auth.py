"""Authentication and scopes at the gateway, over HTTP, against a real JWKS endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DATA,
    RecordingUpstream,
    ServerThread,
    Stack,
    eventually,
    gateway_for,
    http,
    write_policy,
)
from tests.tokens import AUDIENCE, ISSUER, JWKSServer, claims, ec_key, sign


class AuthStack(Stack):
    jwks: JWKSServer
    jwks_server: ServerThread
    key: Any


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    tmp = tmp_path_factory.mktemp("auth")
    key = ec_key("k1")
    jwks = JWKSServer(key)
    jwks_server = ServerThread(jwks).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    policy = write_policy(
        tmp,
        DATA / "secure31.yaml",
        up.port,
        auth={
            "jwt": [
                {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "jwks_uri": f"http://127.0.0.1:{jwks_server.port}/jwks",
                    "algorithms": ["ES256"],
                    "jwks_cache": {"refresh_cooldown": "30s"},
                }
            ],
            "api_keys": {"header": "X-API-Key", "store": f"sqlite:///{tmp / 'keys.db'}"},
            "revocation": {"store": f"sqlite:///{tmp / 'revocations.db'}", "poll_interval": 0.1},
        },
    )
    try:
        with gateway_for(policy) as gw:
            s = AuthStack(upstream, up, gw, tmp)
            s.jwks, s.jwks_server, s.key = jwks, jwks_server, key
            s.policy = policy  # type: ignore[attr-defined]
            yield s
    finally:
        up.stop()
        jwks_server.stop()


@pytest.fixture()
def auth(sec: AuthStack) -> AuthStack:
    sec.upstream.received.clear()
    return sec


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_credentials_is_401_with_challenge(auth: AuthStack) -> None:
    r = auth.call("GET", "/things")
    assert r.status == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="apishield"'
    assert r.headers["content-type"] == "application/problem+json"
    assert auth.upstream.received == []


def test_valid_token_reaches_upstream_with_identity(auth: AuthStack) -> None:
    token = sign(auth.key, claims())
    r = auth.call("GET", "/things", headers={**bearer(token), "X-Apishield-Subject": "admin"})
    assert r.status == 200, r.body
    rec = auth.upstream.received[0]
    assert rec.header("x-apishield-subject") == "alice"
    assert [v for k, v in rec.headers if k == "x-apishield-subject"] == ["alice"]
    assert rec.header("x-apishield-client") == "mobile-app"
    assert rec.header("x-apishield-scopes") == "things:read"
    assert rec.header("authorization") is None


def test_lowercase_bearer_scheme_accepted(auth: AuthStack) -> None:
    token = sign(auth.key, claims())
    assert auth.call("GET", "/things", headers={"Authorization": f"bearer {token}"}).status == 200


def test_tampered_token_is_invalid_token(auth: AuthStack) -> None:
    token = sign(auth.key, claims())
    head, _payload, sig = token.split(".")
    forged = sign(ec_key("k1"), claims(sub="admin"))  # same kid, attacker's key
    for bad in (f"{head}.{forged.split('.')[1]}.{sig}", forged, token[:-4] + "AAAA"):
        r = auth.call("GET", "/things", headers=bearer(bad))
        assert r.status == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert auth.upstream.received == []


def test_missing_scope_is_403_naming_it(auth: AuthStack) -> None:
    token = sign(auth.key, claims(scope="things:read"))
    r = auth.call("POST", "/things", {"name": "x"}, headers=bearer(token))
    assert r.status == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="things:write"' in r.headers["www-authenticate"]
    assert r.json()["required_scopes"] == ["things:write"]
    token = sign(auth.key, claims(scope="things:read things:write"))
    assert auth.call("POST", "/things", {"name": "x"}, headers=bearer(token)).status == 200


def test_public_and_optional_operations(auth: AuthStack) -> None:
    assert auth.call("GET", "/public").status == 200
    assert auth.call("GET", "/optional").status == 200
    token = sign(auth.key, claims(scope=""))
    assert auth.call("GET", "/optional", headers=bearer(token)).status == 200


def test_token_in_query_or_twice_is_invalid_request(auth: AuthStack) -> None:
    token = sign(auth.key, claims())
    r = auth.call("GET", f"/things?access_token={token}")
    assert r.status == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]
    r = auth.call("GET", "/things", headers={"Authorization": f"Bearer {token} {token}"})
    assert r.status == 400


def test_expired_and_wrong_audience_refused(auth: AuthStack) -> None:
    now = int(time.time())
    for c in (
        claims(exp=now - 60, iat=now - 120),
        claims(aud="another-api"),
        claims(iss="https://evil.test"),
    ):
        assert auth.call("GET", "/things", headers=bearer(sign(auth.key, c))).status == 401


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("jku", {"jku": "JWKS_URL_PLACEHOLDER"}),
        ("jwk", {"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
        ("x5u", {"x5u": "JWKS_URL_PLACEHOLDER"}),
        ("none", {"alg": "none"}),
        ("typ-jwt", {"typ": "JWT"}),
        ("crit", {"crit": ["x-unknown"], "x-unknown": 1}),
    ],
)
def test_header_attacks_refused_without_fetching(auth: AuthStack, name: str, header: dict[str, Any]) -> None:
    url = f"http://127.0.0.1:{auth.jwks_server.port}/attacker-jwks"
    header = {k: (url if v == "JWKS_URL_PLACEHOLDER" else v) for k, v in header.items()}
    before = auth.jwks.fetches
    if header.get("alg") == "none":
        good = sign(auth.key, claims())
        h = sign(auth.key, claims(), header=header, alg="ES256").split(".")[0]  # header claims none
        token = f"{h}.{good.split('.')[1]}."
    else:
        token = sign(auth.key, claims(), header=header)
    r = auth.call("GET", "/things", headers=bearer(token))
    assert r.status == 401
    assert auth.jwks.fetches == before


def test_key_rotation_then_kid_storm(auth: AuthStack) -> None:
    new = ec_key("k2")
    auth.jwks.keys.append(new)
    before = auth.jwks.fetches
    r = auth.call("GET", "/things", headers=bearer(sign(new, claims())))
    assert r.status == 200, r.body
    assert auth.jwks.fetches == before + 1
    # a storm of unknown kids within the cooldown: no further fetch at all
    for i in range(30):
        stranger = ec_key(f"random-{i}")
        assert auth.call("GET", "/things", headers=bearer(sign(stranger, claims()))).status == 401
    assert auth.jwks.fetches == before + 1


def test_api_key_lifecycle(auth: AuthStack) -> None:
    import subprocess
    import sys

    policy = auth.policy  # type: ignore[attr-defined]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "apishield",
            "keys",
            "create",
            "--config",
            str(policy),
            "--client",
            "partner-a",
            "--scopes",
            "partner",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    key = out.stdout.strip()
    assert key.startswith("ask_")
    db = (auth.tmp / "keys.db").read_bytes()
    assert key.encode() not in db and key.split("_")[2].encode() not in db
    r = auth.call("GET", "/either", headers={"X-API-Key": key})
    assert r.status == 200, r.body
    assert auth.upstream.received[-1].header("x-apishield-client") == "partner-a"
    assert auth.call("GET", "/either", headers={"X-API-Key": key[:-2] + "xx"}).status == 401
    assert auth.call("GET", f"/either?X-API-Key={key}").status in (400, 401)  # never from the query
    # an API key alone does not satisfy an operation that needs a token and a key
    assert auth.call("GET", "/both", headers={"X-API-Key": key}).status == 401
    token = sign(auth.key, claims())
    assert auth.call("GET", "/both", headers={"X-API-Key": key, **bearer(token)}).status == 200
    key_id = key.split("_")[1]
    listing = subprocess.run(
        [sys.executable, "-m", "apishield", "keys", "list", "--config", str(policy)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert key_id in listing and "partner-a" in listing and key not in listing
    subprocess.run(
        [sys.executable, "-m", "apishield", "keys", "revoke", "--config", str(policy), key_id],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    # the instance polls the revocation store every 0.1 s here; bench/revocation_bench.py measures
    # how soon a revocation lands, this only checks that it does
    eventually(
        lambda: auth.call("GET", "/either", headers={"X-API-Key": key}).status == 401, "revoked key refused"
    )


def test_revoked_jti_refused_even_when_cached(auth: AuthStack) -> None:
    import subprocess
    import sys

    c = claims()
    token = sign(auth.key, c)
    assert auth.call("GET", "/things", headers=bearer(token)).status == 200  # now cached
    subprocess.run(
        [sys.executable, "-m", "apishield", "revoke", "--config", str(auth.policy), "--jti", c["jti"]],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    eventually(
        lambda: auth.call("GET", "/things", headers=bearer(token)).status == 401, "revoked token refused"
    )


def test_default_deny_without_security(tmp_path: Path) -> None:
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    try:
        policy = write_policy(
            tmp_path, DATA / "nosec31.yaml", up.port, auth={"public_operations": ["health"]}
        )
        with gateway_for(policy) as gw:
            assert http(gw.port, "GET", "/debug").status == 403
            assert http(gw.port, "GET", "/health").status == 200
        assert [r.target for r in upstream.received] == ["/health"]
    finally:
        up.stop()


def test_issuer_down_cached_keys_still_serve(tmp_path: Path) -> None:
    key = ec_key("k1")
    jwks = JWKSServer(key, cache_control="max-age=1")
    jwks_server = ServerThread(jwks).start()
    upstream = RecordingUpstream()
    up = ServerThread(upstream).start()
    try:
        policy = write_policy(
            tmp_path,
            DATA / "secure31.yaml",
            up.port,
            auth={
                "jwt": [
                    {
                        "issuer": ISSUER,
                        "audience": AUDIENCE,
                        "algorithms": ["ES256"],
                        "jwks_uri": f"http://127.0.0.1:{jwks_server.port}/jwks",
                        "jwks_cache": {"min_ttl": "1s", "stale_if_error": "1h"},
                    }
                ]
            },
        )
        with gateway_for(policy) as gw:
            assert http(gw.port, "GET", "/things", headers=bearer(sign(key, claims()))).status == 200
            jwks.down = True
            time.sleep(2.5)  # the set is stale now, and the background refresh has failed
            assert jwks.fetches >= 2
            r = http(gw.port, "GET", "/things", headers=bearer(sign(key, claims())))
            assert r.status == 200, r.body
    finally:
        up.stop()
        jwks_server.stop()
