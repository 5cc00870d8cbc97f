"""The demo's OAuth 2.0 client: what the mobile app and the partner portal do.

Standard-library HTTP only. ``partner_token`` runs the client-credentials
grant (RFC 6749 §4.4); ``mobile_token`` runs the authorization-code grant
with PKCE S256 (RFC 7636) through the issuer's sign-in form, as a browser
would, and captures the code from the redirect without following it.
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["mobile_token", "partner_token", "revoke"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, form: dict[str, str], auth: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if auth is not None:
        pair = f"{urllib.parse.quote(auth[0], safe='')}:{urllib.parse.quote(auth[1], safe='')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else {}


def partner_token(issuer: str, client_id: str, secret: str, scope: str) -> str:
    status, doc = _post(
        f"{issuer}/token", {"grant_type": "client_credentials", "scope": scope}, (client_id, secret)
    )
    if status != 200:
        raise RuntimeError(f"client_credentials grant failed: {status} {doc.get('error')}")
    return str(doc["access_token"])


def mobile_token(issuer: str, username: str, password: str, redirect_uri: str, scope: str) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "mobile-app",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
    with opener.open(f"{issuer}/authorize?{query}", timeout=15) as resp:
        page = resp.read().decode()
    action = re.search(r'<form method="post" action="([^"]+)"', page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if action is None or csrf is None:
        raise RuntimeError("the sign-in page has no form")
    target = urllib.parse.urljoin(f"{issuer}/authorize", action.group(1).replace("&amp;", "&"))
    form = urllib.parse.urlencode(
        {
            "csrf_token": csrf.group(1),
            "username": username,
            "password": password,
            "decision": "allow",
        }
    ).encode()
    request = urllib.request.Request(target, data=form, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        opener.open(request, timeout=15)
        raise RuntimeError("the sign-in did not redirect")
    except urllib.error.HTTPError as err:
        if err.code not in (302, 303):
            raise RuntimeError(f"the sign-in failed: {err.code}") from None
        location = err.headers["Location"]
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if params.get("state") != [state]:
        raise RuntimeError("state mismatch")
    status, doc = _post(
        f"{issuer}/token",
        {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": redirect_uri,
            "client_id": "mobile-app",
            "code_verifier": verifier,
        },
    )
    if status != 200:
        raise RuntimeError(f"the code exchange failed: {status} {doc.get('error')}")
    return doc


def revoke(issuer: str, token: str, client_id: str) -> int:
    status, _ = _post(f"{issuer}/revoke", {"token": token, "client_id": client_id})
    return status
