"""Full OAuth 2.0 flows over HTTP, driven by Authlib's client; tokens checked by the project's verifier."""

from __future__ import annotations

import time

import requests
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssParameterMetadata

from tests.issuer.helpers import MOBILE_REDIRECT, Issuer, code_flow, redirect_params, s256, sign_in


def test_metadata_is_valid_rfc8414(issuer: Issuer) -> None:
    r = requests.get(issuer.url + "/.well-known/oauth-authorization-server", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    AuthorizationServerMetadata(doc).validate(metadata_classes=[IssParameterMetadata])
    assert doc["issuer"] == issuer.url  # RFC 8414 §3.3
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert doc["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "ES256" in doc["dpop_signing_alg_values_supported"]


def test_jwks_publishes_public_keys_only(issuer: Issuer) -> None:
    r = requests.get(issuer.endpoint("jwks.json"), timeout=10)
    assert r.headers["content-type"] == "application/jwk-set+json"
    (key,) = r.json()["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
    assert "d" not in key


def test_client_credentials_token_is_an_rfc9068_jwt(issuer: Issuer) -> None:
    token = issuer.client_credentials(scope="customers:read")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 600
    assert token["scope"] == "customers:read"
    assert "refresh_token" not in token  # RFC 6749 §4.4.3
    verified = issuer.verify(token["access_token"])
    claims = verified.claims
    assert claims["iss"] == issuer.url
    assert claims["aud"] == "customer-api"
    assert claims["sub"] == claims["client_id"] == "partner-portal"
    assert claims["partner_id"] == "p-acme" and claims["roles"] == ["partner"]
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) >= 22
    header = issuer.jwks()["keys"][0]
    assert verified.key_thumbprint == header["kid"]


def test_client_credentials_defaults_to_every_allowed_scope(issuer: Issuer) -> None:
    token = issuer.client_credentials()
    assert token["scope"] == "customers:read orders:read"


def test_client_secret_post_works_too(issuer: Issuer) -> None:
    client = issuer.client("partner-portal", token_endpoint_auth_method="client_secret_post")
    token = client.fetch_token(issuer.endpoint("token"), grant_type="client_credentials")
    assert issuer.verify(token["access_token"]).client_id == "partner-portal"


def test_token_response_is_not_cacheable(issuer: Issuer) -> None:
    r = issuer.post(
        "token",
        {"grant_type": "client_credentials"},
        auth=("partner-portal", issuer.secrets["partner-portal"]),
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    assert r.headers["pragma"] == "no-cache"


def test_authorization_code_with_pkce_for_the_public_client(issuer: Issuer) -> None:
    _, token = code_flow(issuer)
    assert token["token_type"] == "Bearer"
    assert token["refresh_token"]
    claims = issuer.verify(token["access_token"]).claims
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "mobile-app"
    assert claims["scope"] == "customers:read orders:read"
    assert claims["customer_id"] == 1 and claims["partner_id"] == "p-acme"
    assert abs(claims["auth_time"] - time.time()) < 60


def test_authorization_response_carries_state_and_iss(issuer: Issuer) -> None:
    verifier = "v" * 43
    url = issuer.authorize_url(
        redirect_uri=MOBILE_REDIRECT,
        scope="orders:read",
        state="xyz-123",
        code_challenge=s256(verifier),
        code_challenge_method="S256",
    )
    answer = sign_in(issuer, url, username="bob")
    assert answer.status_code == 303  # RFC 9700 §4.12: not 307 after a form post
    assert answer.headers["location"].startswith(MOBILE_REDIRECT + "?")
    params = redirect_params(answer)
    assert params["state"] == "xyz-123"
    assert params["iss"] == issuer.url  # RFC 9207
    assert len(params["code"]) >= 43


def test_confidential_client_code_flow(issuer: Issuer) -> None:
    from tests.issuer.helpers import WEB_REDIRECT

    client = issuer.client("web-portal", redirect_uri=WEB_REDIRECT, code_challenge_method="S256")
    verifier = "w" * 64
    url, _ = client.create_authorization_url(issuer.endpoint("authorize"), code_verifier=verifier)
    answer = sign_in(issuer, url, username="carol")
    token = client.fetch_token(
        issuer.endpoint("token"), authorization_response=answer.headers["location"], code_verifier=verifier
    )
    claims = issuer.verify(token["access_token"]).claims
    assert claims["sub"] == "carol" and claims["customer_id"] == 3 and claims["partner_id"] == "p-globex"
    assert claims["scope"] == "customers:read orders:read"


def test_refresh_rotates_the_refresh_token(issuer: Issuer) -> None:
    client, first = code_flow(issuer)
    second = client.refresh_token(issuer.endpoint("token"), refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert issuer.verify(second["access_token"]).claims["sub"] == "alice"
    # T-RT-1: the previous refresh token no longer works
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "mobile-app"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_refresh_may_narrow_the_scope(issuer: Issuer) -> None:
    client, first = code_flow(issuer)
    second = client.refresh_token(
        issuer.endpoint("token"), refresh_token=first["refresh_token"], scope="orders:read"
    )
    assert second["scope"] == "orders:read"
    assert issuer.verify(second["access_token"]).scopes == {"orders:read"}
