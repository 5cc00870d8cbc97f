"""The issue's negative cases: PKCE, code reuse, redirect URIs, scopes, refresh reuse, secrets, expiry."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError

from apishield.services.revocation_store import open_revocation_store
from tests.issuer.helpers import (
    MOBILE_REDIRECT,
    Clock,
    Issuer,
    code_flow,
    redirect_params,
    s256,
    sign_in,
)


def _code(issuer: Issuer, verifier: str, username: str = "dave", **params: str) -> str:
    query = {
        "redirect_uri": MOBILE_REDIRECT,
        "scope": "customers:read",
        "state": "s1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **params,
    }
    answer = sign_in(issuer, issuer.authorize_url(**query), username=username)
    assert answer.status_code == 303, answer.text
    return redirect_params(answer)["code"]


def _redeem(issuer: Issuer, code: str, verifier: str | None, **extra: str) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": MOBILE_REDIRECT}
    form["client_id"] = "mobile-app"
    if verifier is not None:
        form["code_verifier"] = verifier
    form.update(extra)
    return issuer.post("token", form)


def _published(issuer: Issuer) -> set[str]:
    async def read() -> set[str]:
        store = open_revocation_store(issuer.demo.revocation_store, issuer.tmp)
        try:
            entries, _ = await store.since(0)
        finally:
            await store.close()
        return {ident for kind, ident, _ in entries if kind == "jti"}

    return asyncio.run(read())


# -- PKCE (RFC 7636, RFC 9700 §2.1.1) -------------------------------------------------------------


def test_pkce_missing_is_refused_at_the_authorization_endpoint(issuer: Issuer) -> None:
    url = issuer.authorize_url(redirect_uri=MOBILE_REDIRECT, scope="customers:read", state="st")
    r = requests.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    params = redirect_params(r)
    assert params["error"] == "invalid_request"
    assert params["state"] == "st" and params["iss"] == issuer.url


@pytest.mark.parametrize("method", ["plain", None, "s256"])
def test_pkce_plain_or_no_method_is_refused(issuer: Issuer, method: str | None) -> None:
    query = {"redirect_uri": MOBILE_REDIRECT, "state": "st", "code_challenge": "a" * 43}
    if method is not None:
        query["code_challenge_method"] = method
    r = requests.get(issuer.authorize_url(**query), allow_redirects=False, timeout=10)
    assert r.status_code == 303
    assert redirect_params(r)["error"] == "invalid_request"
    assert "code" not in redirect_params(r)


def test_pkce_wrong_verifier_is_invalid_grant(issuer: Issuer) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    r = _redeem(issuer, code, secrets.token_urlsafe(32))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_pkce_missing_verifier_is_refused(issuer: Issuer) -> None:
    code = _code(issuer, secrets.token_urlsafe(32))
    r = _redeem(issuer, code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_pkce_verifier_equal_to_challenge_plain_is_refused(issuer: Issuer) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    r = _redeem(issuer, code, s256(verifier))  # a 'plain' comparison would accept this
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# -- code reuse (RFC 6749 §4.1.2) -----------------------------------------------------------------


def test_code_reuse_is_refused_and_revokes_its_tokens(issuer: Issuer) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    first = _redeem(issuer, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert issuer.introspect(tokens["access_token"])["active"] is True
    second = _redeem(issuer, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert issuer.introspect(tokens["access_token"]) == {"active": False}
    assert issuer.introspect(tokens["refresh_token"]) == {"active": False}
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "mobile-app"},
    )
    assert r.json()["error"] == "invalid_grant"
    assert issuer.verify(tokens["access_token"]).jti in _published(issuer)  # gateways learn of it


def test_code_of_another_client_is_refused(issuer: Issuer) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    r = issuer.post(
        "token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": MOBILE_REDIRECT,
            "code_verifier": verifier,
        },
        auth=("web-portal", issuer.secrets["web-portal"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_expired_code_is_refused(issuer: Issuer, clock: Clock) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    clock.offset = 61  # code_lifetime is 60 s
    r = _redeem(issuer, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_at_the_token_endpoint(issuer: Issuer) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(issuer, verifier)
    r = _redeem(issuer, code, verifier, redirect_uri="http://127.0.0.1:8765/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# -- redirect URIs (RFC 6749 §4.1.2.1, RFC 9700 §2.1) ----------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://attacker.example/callback",
        MOBILE_REDIRECT + "/",
        MOBILE_REDIRECT + "?x=1",
        "http://127.0.0.1:8766/callback",
        "HTTP://127.0.0.1:8765/callback",
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    issuer: Issuer, redirect_uri: str
) -> None:
    verifier = secrets.token_urlsafe(32)
    url = issuer.authorize_url(
        redirect_uri=redirect_uri, state="st", code_challenge=s256(verifier), code_challenge_method="S256"
    )
    r = requests.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 400
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    # the sign-in form is not offered for an unregistered URI either
    assert "<form" not in r.text


def test_unknown_client_gets_an_error_page(issuer: Issuer) -> None:
    url = issuer.authorize_url(client_id="nobody", redirect_uri=MOBILE_REDIRECT, code_challenge="a" * 43)
    r = requests.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "location" not in r.headers


def test_repeated_parameter_gets_an_error_page(issuer: Issuer) -> None:
    url = (
        issuer.authorize_url(redirect_uri=MOBILE_REDIRECT) + "&redirect_uri=https%3A%2F%2Fattacker.example%2F"
    )
    r = requests.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "location" not in r.headers


# -- scopes ----------------------------------------------------------------------------------------


def test_scope_beyond_the_clients_allowance_at_the_authorization_endpoint(issuer: Issuer) -> None:
    url = issuer.authorize_url(
        redirect_uri=MOBILE_REDIRECT,
        scope="customers:read customers:admin",
        state="st",
        code_challenge="a" * 43,
        code_challenge_method="S256",
    )
    r = requests.get(url, allow_redirects=False, timeout=10)
    assert r.status_code == 303
    params = redirect_params(r)
    assert params["error"] == "invalid_scope" and params["state"] == "st"


def test_scope_beyond_the_clients_allowance_with_client_credentials(issuer: Issuer) -> None:
    with pytest.raises(OAuthError) as err:
        issuer.client_credentials(scope="customers:read customers:write")
    assert err.value.error == "invalid_scope"
    with pytest.raises(OAuthError) as err:
        issuer.client_credentials(scope="no:such-scope")
    assert err.value.error == "invalid_scope"


def test_refresh_cannot_widen_the_scope(issuer: Issuer) -> None:
    client, token = code_flow(issuer, scope="orders:read")
    with pytest.raises(OAuthError) as err:
        client.refresh_token(
            issuer.endpoint("token"),
            refresh_token=token["refresh_token"],
            scope="orders:read customers:write",
        )
    assert err.value.error == "invalid_scope"


# -- refresh reuse (RFC 9700 §4.14.2) ---------------------------------------------------------------


def test_refresh_token_reuse_revokes_the_family(issuer: Issuer) -> None:
    client, first = code_flow(issuer)
    second = client.refresh_token(issuer.endpoint("token"), refresh_token=first["refresh_token"])
    assert issuer.introspect(second["access_token"])["active"] is True
    # an attacker (or a confused client) replays the first refresh token
    replay = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "mobile-app"},
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # T-RT-2: the newest refresh token and every access token of the family are dead
    again = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "client_id": "mobile-app"},
    )
    assert again.json()["error"] == "invalid_grant"
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert issuer.introspect(token) == {"active": False}
    published = _published(issuer)
    assert issuer.verify(first["access_token"]).jti in published
    assert issuer.verify(second["access_token"]).jti in published


def test_refresh_token_of_another_client_is_refused(issuer: Issuer) -> None:
    _, token = code_flow(issuer)
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=("web-portal", issuer.secrets["web-portal"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # T-RT-3


def test_refresh_token_expires(issuer: Issuer, clock: Clock) -> None:
    _, token = code_flow(issuer)
    clock.offset = 86_401
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": "mobile-app"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# -- client authentication ---------------------------------------------------------------------------


def test_wrong_client_secret_is_invalid_client(issuer: Issuer) -> None:
    r = issuer.post("token", {"grant_type": "client_credentials"}, auth=("partner-portal", "not-the-secret"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic ")
    r = issuer.post(
        "token", {"grant_type": "client_credentials", "client_id": "partner-portal", "client_secret": "nope"}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_confidential_client_without_its_secret_is_invalid_client(issuer: Issuer) -> None:
    r = issuer.post("token", {"grant_type": "client_credentials", "client_id": "partner-portal"})
    assert r.json()["error"] == "invalid_client"


def test_public_client_cannot_use_client_credentials(issuer: Issuer) -> None:
    r = issuer.post("token", {"grant_type": "client_credentials", "client_id": "mobile-app"})
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "unauthorized_client")


def test_grant_not_registered_for_the_client(issuer: Issuer) -> None:
    r = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": "x" * 43},
        auth=("partner-portal", issuer.secrets["partner-portal"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_revoked_client_gets_no_tokens_and_loses_its_tokens(issuer: Issuer) -> None:
    before = issuer.client_credentials("batch-job")
    assert issuer.introspect(before["access_token"])["active"] is True
    revoked = issuer.app.store.revoke_client("batch-job", time.time())
    assert revoked is not None and issuer.verify(before["access_token"]).jti in {j for j, _ in revoked}
    r = issuer.post(
        "token", {"grant_type": "client_credentials"}, auth=("batch-job", issuer.secrets["batch-job"])
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert issuer.introspect(before["access_token"]) == {"active": False}


# -- request hygiene (RFC 6749 §2.3, §3.2) ------------------------------------------------------------


def _raw(
    issuer: Issuer, body: str, content_type: str = "application/x-www-form-urlencoded", **kw: Any
) -> Any:
    return requests.post(
        issuer.endpoint("token"),
        data=body.encode(),
        headers={"Content-Type": content_type},
        auth=("partner-portal", issuer.secrets["partner-portal"]),
        timeout=10,
        **kw,
    )


def test_token_endpoint_request_hygiene(issuer: Issuer) -> None:
    assert _raw(issuer, "grant_type=client_credentials&grant_type=client_credentials").json()["error"] == (
        "invalid_request"
    )
    assert _raw(issuer, '{"grant_type": "client_credentials"}', "application/json").json()["error"] == (
        "invalid_request"
    )
    assert _raw(issuer, "grant_type=client_credentials&client_secret=x").json()["error"] == "invalid_request"
    assert (
        _raw(issuer, "grant_type=password&username=a&password=b").json()["error"] == "unsupported_grant_type"
    )
    assert _raw(issuer, "grant_type=implicit").json()["error"] == "unsupported_grant_type"
    r = requests.post(
        issuer.endpoint("token") + "?client_secret=x", data={"grant_type": "client_credentials"}
    )
    assert r.status_code == 400
    assert requests.get(issuer.endpoint("token"), timeout=10).status_code == 405
    assert _raw(issuer, "a=" + "x" * 70_000).status_code == 413


def test_redirect_uri_is_required_when_several_are_registered(issuer: Issuer) -> None:
    url = issuer.authorize_url(state="st", code_challenge="a" * 43, code_challenge_method="S256")
    r = requests.get(url, allow_redirects=False, timeout=10)  # mobile-app registers two URIs
    assert r.status_code == 400 and "location" not in r.headers


def test_issuer_request_sets_every_field_authlibs_request_has(issuer: Issuer) -> None:
    """IssuerRequest skips OAuth2Request.__init__ (its transport check); it must still set every field."""
    from authlib.oauth2.rfc6749 import OAuth2Request

    from apishield.issuer.server import Headers, IssuerRequest

    reference = OAuth2Request("POST", "https://issuer.example/token", headers={})
    ours = IssuerRequest("POST", "https://issuer.example/token", Headers({}), {}, {})
    assert set(vars(reference)) <= set(vars(ours))
