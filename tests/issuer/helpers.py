"""Helpers for the issuer tests: a running issuer, a browser-like sign-in, the project's verifier."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import requests
from authlib.integrations.requests_client import OAuth2Session
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apishield.auth.rfc9068 import AccessTokenPolicy, VerifiedToken, verify_access_token
from apishield.issuer import IssuerApp
from apishield.issuer.demo import DemoIssuer
from apishield.jose import import_jwks, parse_compact_jws
from apishield.jose.rfc7638 import jwk_thumbprint
from tests.support import ServerThread

PASSWORD = "correct horse battery staple"
MOBILE_REDIRECT = "http://127.0.0.1:8765/callback"
WEB_REDIRECT = "https://portal.example/callback"


class Clock:
    """Real time plus an offset that a test may move forward (and must put back)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64(hashlib.sha256(verifier.encode()).digest())


@dataclass
class Issuer:
    """An issuer app served on a loopback port, with its demo clients and some more."""

    app: IssuerApp
    server: ServerThread
    demo: DemoIssuer
    clock: Clock
    tmp: Path
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.demo.settings.issuer

    def endpoint(self, name: str) -> str:
        return self.demo.settings.endpoint(name)

    def client(self, client_id: str, **kw: Any) -> OAuth2Session:
        """Authlib's OAuth 2.0 client for one of the registered clients."""
        return OAuth2Session(client_id, self.secrets.get(client_id), **kw)

    def client_credentials(self, client_id: str = "partner-portal", **kw: Any) -> dict[str, Any]:
        token: dict[str, Any] = self.client(client_id).fetch_token(
            self.endpoint("token"), grant_type="client_credentials", **kw
        )
        return token

    def post(self, name: str, data: dict[str, str], auth: tuple[str, str] | None = None, **kw: Any) -> Any:
        return requests.post(self.endpoint(name), data=data, auth=auth, timeout=10, **kw)

    def introspect(self, token: str, auth: tuple[str, str] | None = None) -> dict[str, Any]:
        auth = auth or ("resource-server", self.secrets["resource-server"])
        r = self.post("introspect", {"token": token}, auth=auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def jwks(self) -> dict[str, Any]:
        doc: dict[str, Any] = requests.get(self.endpoint("jwks.json"), timeout=10).json()
        return doc

    def verify(self, token: str) -> VerifiedToken:
        """Verify an access token with the project's own resource-server verifier."""
        jwks = self.jwks()
        algs = frozenset(k["alg"] for k in jwks["keys"])
        policy = AccessTokenPolicy(issuer=self.url, audience="customer-api", algorithms=algs, leeway=0)
        return verify_access_token(
            parse_compact_jws(token), policy, import_jwks(jwks, allowed_algs=algs), time.time()
        )

    def authorize_url(self, client_id: str = "mobile-app", **params: str) -> str:
        query = {"response_type": "code", "client_id": client_id, **params}
        return self.endpoint("authorize") + "?" + urlencode(query)


def form_of(html: str) -> tuple[str, str]:
    """(action, csrf_token) of the sign-in page."""
    action = re.search(r'<form method="post" action="([^"]+)"', html)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert action and csrf, html
    return unescape(action.group(1)), unescape(csrf.group(1))


def sign_in(
    issuer: Issuer,
    url: str,
    username: str = "alice",
    password: str = PASSWORD,
    decision: str = "allow",
    browser: requests.Session | None = None,
) -> requests.Response:
    """Do what a person does in a browser: open the page, fill the form, submit; no redirect followed."""
    browser = browser or requests.Session()
    page = browser.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    action, csrf = form_of(page.text)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(issuer.url))
    data = {"csrf_token": csrf, "username": username, "password": password, "decision": decision}
    return browser.post(origin + action, data=data, allow_redirects=False, timeout=10)


def redirect_params(response: requests.Response) -> dict[str, str]:
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_flow(
    issuer: Issuer, scope: str = "customers:read orders:read", username: str = "alice"
) -> tuple[OAuth2Session, dict[str, Any]]:
    """authorization_code + PKCE S256 for mobile-app, driven by Authlib's client."""
    client = issuer.client(
        "mobile-app", redirect_uri=MOBILE_REDIRECT, scope=scope, code_challenge_method="S256"
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(issuer.endpoint("authorize"), code_verifier=verifier)
    answer = sign_in(issuer, url, username=username)
    assert answer.status_code == 303, answer.text
    token = client.fetch_token(
        issuer.endpoint("token"), authorization_response=answer.headers["location"], code_verifier=verifier
    )
    return client, token


class DPoPKey:
    """A client's DPoP key pair (ES256) that signs proofs by hand (RFC 9449 §4.2)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        self.thumbprint = jwk_thumbprint(self.jwk)

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}".encode()
        r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{signing_input.decode()}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def proof(self, htu: str, htm: str = "POST", header: dict[str, Any] | None = None, **claims: Any) -> str:
        hdr = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk, **(header or {})}
        body = {"jti": secrets.token_urlsafe(16), "htm": htm, "htu": htu, "iat": int(time.time()), **claims}
        return self.sign(hdr, {k: v for k, v in body.items() if v is not None})
