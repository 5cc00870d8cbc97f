"""RFC 7009 revocation and RFC 7662 introspection at the issuer."""

from __future__ import annotations

from tests.issuer.helpers import Issuer, code_flow


def test_introspection_requires_client_authentication(issuer: Issuer) -> None:
    token = issuer.client_credentials()["access_token"]
    r = issuer.post("introspect", {"token": token})
    assert r.status_code == 401  # T-7662-1
    assert r.json()["error"] == "invalid_client"
    r = issuer.post("introspect", {"token": token}, auth=("resource-server", "wrong"))
    assert r.status_code == 401
    r = issuer.post("introspect", {"token": token, "client_id": "mobile-app"})  # public clients may not
    assert r.status_code in (400, 401)


def test_introspection_of_an_active_access_token(issuer: Issuer) -> None:
    token = issuer.client_credentials(scope="orders:read")["access_token"]
    body = issuer.introspect(token)
    claims = issuer.verify(token).claims
    assert body["active"] is True
    assert body["scope"] == "orders:read"
    assert body["client_id"] == body["sub"] == "partner-portal"
    assert body["token_type"] == "Bearer"
    assert body["iss"] == issuer.url and body["aud"] == "customer-api"
    assert body["jti"] == claims["jti"] and body["exp"] == claims["exp"] and body["iat"] == claims["iat"]
    assert body["partner_id"] == "p-acme"


def test_introspection_of_a_user_token_names_the_user(issuer: Issuer) -> None:
    _, token = code_flow(issuer, username="frank")
    body = issuer.introspect(token["access_token"])
    assert body["username"] == body["sub"] == "frank"
    assert body["customer_id"] == 6
    refresh = issuer.introspect(token["refresh_token"])
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert refresh["client_id"] == "mobile-app" and refresh["username"] == "frank"


def test_a_client_may_introspect_its_own_tokens_only(issuer: Issuer) -> None:
    mine = issuer.client_credentials()["access_token"]
    theirs = issuer.client_credentials("resource-server")["access_token"]
    auth = ("partner-portal", issuer.secrets["partner-portal"])
    assert issuer.introspect(mine, auth=auth)["active"] is True
    assert issuer.introspect(theirs, auth=auth) == {"active": False}


def test_unknown_token_is_inactive_with_nothing_else(issuer: Issuer) -> None:
    for token in ("nonsense", "a.b.c", "x" * 43, "é" * 10):
        assert issuer.introspect(token) == {"active": False}


def test_revoking_an_access_token(issuer: Issuer) -> None:
    token = issuer.client_credentials()["access_token"]
    client = issuer.client("partner-portal")
    r = client.revoke_token(issuer.endpoint("revoke"), token=token, token_type_hint="access_token")
    assert r.status_code == 200
    assert issuer.introspect(token) == {"active": False}  # T-7662-2


def test_revoking_a_refresh_token_revokes_its_grant(issuer: Issuer) -> None:
    _, token = code_flow(issuer)
    r = issuer.post("revoke", {"token": token["refresh_token"], "client_id": "mobile-app"})  # a public client
    assert r.status_code == 200
    assert issuer.introspect(token["refresh_token"]) == {"active": False}
    assert issuer.introspect(token["access_token"]) == {"active": False}
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": "mobile-app"},
    )
    assert r.json()["error"] == "invalid_grant"  # T-7009-2


def test_revoking_with_a_wrong_hint_still_finds_the_token(issuer: Issuer) -> None:
    token = issuer.client_credentials()["access_token"]
    auth = ("partner-portal", issuer.secrets["partner-portal"])
    assert (
        issuer.post("revoke", {"token": token, "token_type_hint": "refresh_token"}, auth=auth).status_code
        == 200
    )
    assert issuer.introspect(token) == {"active": False}


def test_revoking_an_unknown_token_is_200(issuer: Issuer) -> None:
    auth = ("partner-portal", issuer.secrets["partner-portal"])
    assert issuer.post("revoke", {"token": "never-issued"}, auth=auth).status_code == 200  # T-7009-1


def test_revoking_another_clients_token_is_refused(issuer: Issuer) -> None:
    token = issuer.client_credentials()["access_token"]
    r = issuer.post("revoke", {"token": token}, auth=("resource-server", issuer.secrets["resource-server"]))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert issuer.introspect(token)["active"] is True


def test_revocation_requires_client_authentication(issuer: Issuer) -> None:
    token = issuer.client_credentials()["access_token"]
    r = issuer.post("revoke", {"token": token})
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = issuer.post("revoke", {"token": token}, auth=("partner-portal", "wrong"))
    assert r.status_code == 401
    assert issuer.introspect(token)["active"] is True


def test_unsupported_token_type_hint(issuer: Issuer) -> None:
    auth = ("partner-portal", issuer.secrets["partner-portal"])
    r = issuer.post("revoke", {"token": "x", "token_type_hint": "id_token"}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_token_type"
    token = issuer.client_credentials()["access_token"]
    r = issuer.post(
        "introspect",
        {"token": token, "token_type_hint": "id_token"},
        auth=("resource-server", issuer.secrets["resource-server"]),
    )
    assert r.json()["active"] is True  # RFC 7662 §2.1: the hint may be ignored


def test_client_authentication_failures_look_alike(issuer: Issuer) -> None:
    unknown = issuer.post("token", {"grant_type": "client_credentials"}, auth=("no-such-client", "x" * 43))
    wrong = issuer.post("token", {"grant_type": "client_credentials"}, auth=("partner-portal", "x" * 43))
    assert unknown.status_code == wrong.status_code == 401
    assert (
        unknown.json()
        == wrong.json()
        == {
            "error": "invalid_client",
            "error_description": "client authentication failed",
        }
    )
