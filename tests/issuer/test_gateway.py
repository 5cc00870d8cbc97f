"""The gateway trusts the issuer: its tokens pass, a revoked one is refused within a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.demo import example_dir, load_example_app
from tests.issuer.helpers import Issuer, code_flow
from tests.support import ServerThread, eventually, gateway_for, http, write_policy


@pytest.fixture(scope="module")
def gateway(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    upstream = ServerThread(load_example_app(example_dir(), tmp / "customers.db")).start()
    policy = write_policy(
        tmp,
        example_dir() / "openapi.yaml",
        upstream.port,
        auth={
            "jwt": [issuer.demo.gateway_jwt_provider()],
            "revocation": {"store": issuer.demo.revocation_store, "poll_interval": 0.1},
        },
    )
    try:
        with gateway_for(policy) as gw:
            yield gw
    finally:
        upstream.stop()


def _get(gateway: ServerThread, token: str, path: str = "/v1/customers/1") -> int:
    return http(gateway.port, "GET", path, headers={"Authorization": f"Bearer {token}"}).status


def test_client_credentials_token_is_accepted(issuer: Issuer, gateway: ServerThread) -> None:
    token = issuer.client_credentials(scope="customers:read")["access_token"]
    assert _get(gateway, token) == 200
    assert _get(gateway, token, "/v1/orders/00000000-0000-0000-0000-000000000000") == 403  # no orders:read


def test_user_token_is_accepted(issuer: Issuer, gateway: ServerThread) -> None:
    _, token = code_flow(issuer, scope="customers:read")
    assert _get(gateway, token["access_token"]) == 200


def test_no_token_and_foreign_token_are_refused(issuer: Issuer, gateway: ServerThread) -> None:
    assert http(gateway.port, "GET", "/v1/customers/1").status == 401
    token = issuer.client_credentials(scope="customers:read")["access_token"]
    head, payload, sig = token.split(".")
    assert _get(gateway, f"{head}.{payload}.{sig[::-1]}") == 401


def test_revoked_token_is_refused(issuer: Issuer, gateway: ServerThread) -> None:
    token = issuer.client_credentials(scope="customers:read")["access_token"]
    assert _get(gateway, token) == 200
    client = issuer.client("partner-portal")
    assert client.revoke_token(issuer.endpoint("revoke"), token=token).status_code == 200
    eventually(lambda: _get(gateway, token) == 401, "token revoked at the issuer refused by the gateway")


def test_refresh_reuse_reaches_the_gateway(issuer: Issuer, gateway: ServerThread) -> None:
    client, first = code_flow(issuer, scope="customers:read")
    second = client.refresh_token(issuer.endpoint("token"), refresh_token=first["refresh_token"])
    assert _get(gateway, second["access_token"]) == 200
    issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "mobile-app"},
    )
    eventually(lambda: _get(gateway, second["access_token"]) == 401, "token of a reused family refused")
