"""DPoP-bound issuance at the token endpoint (RFC 9449 §4.3, §5, §6.1)."""

from __future__ import annotations

import base64
import http.client
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import pytest
import requests

from tests.issuer.helpers import (
    MOBILE_REDIRECT,
    DPoPKey,
    Issuer,
    b64,
    code_flow,
    redirect_params,
    s256,
    sign_in,
)


def _token(issuer: Issuer, proof: str | None, **form: str) -> requests.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    data = {"grant_type": "client_credentials", **form}
    return requests.post(
        issuer.endpoint("token"),
        data=data,
        headers=headers,
        auth=("partner-portal", issuer.secrets["partner-portal"]),
        timeout=10,
    )


def test_dpop_bound_token(issuer: Issuer) -> None:
    key = DPoPKey()
    r = _token(issuer, key.proof(issuer.endpoint("token")))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP"
    claims = issuer.verify(body["access_token"]).claims
    assert claims["cnf"] == {"jkt": key.thumbprint}
    introspection = issuer.introspect(body["access_token"])
    assert introspection["token_type"] == "DPoP" and introspection["cnf"] == {"jkt": key.thumbprint}


def test_htu_is_compared_after_normalisation(issuer: Issuer) -> None:
    key = DPoPKey()
    parts = urlsplit(issuer.endpoint("token"))
    htu = f"HTTP://{parts.netloc.upper()}{parts.path}?ignored=1#frag"
    assert _token(issuer, key.proof(htu)).status_code == 200


def _bad(issuer: Issuer, proof: str) -> dict[str, Any]:
    r = _token(issuer, proof)
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == "invalid_dpop_proof"
    return body


@pytest.mark.parametrize(
    "change",
    [
        {"htm": "GET"},
        {"htu": "http://127.0.0.1:1/token"},
        {"iat": int(time.time()) - 3600},
        {"iat": int(time.time()) + 3600},
        {"iat": "now"},
        {"jti": None},
        {"jti": "short"},
        {"htu": None},
    ],
    ids=["htm", "htu", "old-iat", "future-iat", "string-iat", "no-jti", "short-jti", "no-htu"],
)
def test_proof_claims_are_checked(issuer: Issuer, change: dict[str, Any]) -> None:
    key = DPoPKey()
    claims = {"htu": issuer.endpoint("token"), **change}
    _bad(issuer, key.proof(**claims))


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {"typ": "at+jwt"},
        {"typ": None},
        {"alg": "ES384"},
        {"jwk": None},
        {"jku": "https://x.example"},
    ],
    ids=["typ-jwt", "typ-at", "no-typ", "alg-mismatch", "no-jwk", "jku"],
)
def test_proof_header_is_checked(issuer: Issuer, header: dict[str, Any]) -> None:
    key = DPoPKey()
    hdr = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk, **header}
    claims = {"jti": "j" * 22, "htm": "POST", "htu": issuer.endpoint("token"), "iat": int(time.time())}
    _bad(issuer, key.sign({k: v for k, v in hdr.items() if v is not None}, claims))


def test_proof_signed_by_another_key_than_its_jwk(issuer: Issuer) -> None:
    key, other = DPoPKey(), DPoPKey()
    claims = {"jti": "j" * 22, "htm": "POST", "htu": issuer.endpoint("token"), "iat": int(time.time())}
    _bad(issuer, other.sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk}, claims))


def test_proof_with_a_private_key_is_refused(issuer: Issuer) -> None:
    key = DPoPKey()
    private_number = key.private.private_numbers().private_value
    jwk = {**key.jwk, "d": b64(private_number.to_bytes(32, "big"))}
    claims = {"jti": "j" * 22, "htm": "POST", "htu": issuer.endpoint("token"), "iat": int(time.time())}
    _bad(issuer, key.sign({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, claims))


def test_proof_with_alg_none_or_hmac_is_refused(issuer: Issuer) -> None:
    key = DPoPKey()
    proof = key.proof(issuer.endpoint("token"))
    payload = proof.split(".")[1]

    none_header = b64(orjson.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}))
    _bad(issuer, f"{none_header}.{payload}.")
    hs_header = b64(orjson.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "a" * 43}}))
    _bad(issuer, f"{hs_header}.{payload}.{'A' * 43}")


def test_replayed_proof_is_refused(issuer: Issuer) -> None:
    key = DPoPKey()
    proof = key.proof(issuer.endpoint("token"))
    assert _token(issuer, proof).status_code == 200
    body = _bad(issuer, proof)
    assert "already used" in body["error_description"]


def test_two_dpop_headers_are_refused(issuer: Issuer) -> None:
    key = DPoPKey()
    parts = urlsplit(issuer.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("POST", "/token")
        body = urlencode({"grant_type": "client_credentials"}).encode()
        basic = base64.b64encode(f"partner-portal:{issuer.secrets['partner-portal']}".encode()).decode()
        conn.putheader("Authorization", f"Basic {basic}")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("DPoP", key.proof(issuer.endpoint("token")))
        conn.putheader("DPoP", key.proof(issuer.endpoint("token")))
        conn.endheaders(body)
        resp = conn.getresponse()
        assert resp.status == 400
        assert b"invalid_dpop_proof" in resp.read()
    finally:
        conn.close()


def test_public_clients_refresh_token_is_bound_to_its_dpop_key(issuer: Issuer) -> None:
    key = DPoPKey()
    verifier = "d" * 50
    url = issuer.authorize_url(
        redirect_uri=MOBILE_REDIRECT,
        scope="orders:read",
        code_challenge=s256(verifier),
        code_challenge_method="S256",
    )
    code = redirect_params(sign_in(issuer, url, username="erin"))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": MOBILE_REDIRECT,
        "client_id": "mobile-app",
        "code_verifier": verifier,
    }
    r = requests.post(
        issuer.endpoint("token"), data=form, headers={"DPoP": key.proof(issuer.endpoint("token"))}, timeout=10
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["token_type"] == "DPoP"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": "mobile-app",
    }
    # without a proof, or with another key: refused (RFC 9449 §5)
    assert (
        requests.post(issuer.endpoint("token"), data=refresh, timeout=10).json()["error"]
        == "invalid_dpop_proof"
    )
    other = DPoPKey().proof(issuer.endpoint("token"))
    r = requests.post(issuer.endpoint("token"), data=refresh, headers={"DPoP": other}, timeout=10)
    assert r.json()["error"] == "invalid_dpop_proof"
    # with the same key: a new bound pair
    r = requests.post(
        issuer.endpoint("token"),
        data=refresh,
        headers={"DPoP": key.proof(issuer.endpoint("token"))},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert issuer.verify(r.json()["access_token"]).claims["cnf"] == {"jkt": key.thumbprint}


def test_bearer_issuance_without_a_proof_is_unchanged(issuer: Issuer) -> None:
    _, token = code_flow(issuer)
    assert token["token_type"] == "Bearer"
    assert "cnf" not in issuer.verify(token["access_token"]).claims
