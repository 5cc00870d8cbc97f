"""The authorization endpoint's sign-in and consent page: headers, CSRF, enumeration, throttling."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from apishield.issuer.settings import LoginThrottleSettings
from tests.issuer.conftest import start_issuer
from tests.issuer.helpers import (
    MOBILE_REDIRECT,
    PASSWORD,
    Issuer,
    code_flow,
    form_of,
    redirect_params,
    s256,
    sign_in,
)


def _url(issuer: Issuer, state: str = "st-1") -> str:
    return issuer.authorize_url(
        redirect_uri=MOBILE_REDIRECT,
        scope="customers:read",
        state=state,
        code_challenge=s256("p" * 43),
        code_challenge_method="S256",
    )


def test_page_is_locked_down(issuer: Issuer) -> None:
    r = requests.get(_url(issuer), timeout=10)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:8765" in csp
    nonce = re.search(r"style-src 'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


def test_page_is_accessible_and_self_contained(issuer: Issuer) -> None:
    html = requests.get(_url(issuer), timeout=10).text
    assert '<html lang="en">' in html
    assert '<label for="username">' in html and 'id="username"' in html
    assert '<label for="password">' in html and 'type="password"' in html
    assert 'autocomplete="current-password"' in html
    assert "Customer mobile app" in html and "<code>customers:read</code>" in html
    assert "<script" not in html
    assert not re.search(r'(src|href)="https?:', html)  # no external assets
    assert html.count("<button") == 2  # allow and deny, both reachable by keyboard


def _post(issuer: Issuer, url: str, browser: requests.Session, **data: str) -> requests.Response:
    origin = issuer.url
    action, _ = form_of(browser.get(url, timeout=10).text)
    form = {"username": "alice", "password": PASSWORD, "decision": "allow", **data}
    return browser.post(origin + action, data=form, allow_redirects=False, timeout=10)


def test_csrf_token_is_required(issuer: Issuer) -> None:
    url = _url(issuer)
    browser = requests.Session()
    r = _post(issuer, url, browser, csrf_token="")
    assert r.status_code == 403 and "location" not in r.headers
    r = _post(issuer, url, browser, csrf_token="A" * 43)
    assert r.status_code == 403


def test_csrf_token_without_the_cookie_is_refused(issuer: Issuer) -> None:
    url = _url(issuer)
    page = requests.get(url, timeout=10)  # another browser got the token...
    action, csrf = form_of(page.text)
    form = {"csrf_token": csrf, "username": "alice", "password": PASSWORD, "decision": "allow"}
    r = requests.post(issuer.url + action, data=form, allow_redirects=False, timeout=10)  # ...no cookie here
    assert r.status_code == 403


def test_csrf_token_is_bound_to_its_authorization_request(issuer: Issuer) -> None:
    browser = requests.Session()
    _, csrf = form_of(browser.get(_url(issuer, "one"), timeout=10).text)
    other_action, _ = form_of(browser.get(_url(issuer, "two"), timeout=10).text)
    form = {"csrf_token": csrf, "username": "alice", "password": PASSWORD, "decision": "allow"}
    r = browser.post(issuer.url + other_action, data=form, allow_redirects=False, timeout=10)
    assert r.status_code == 403


def test_no_user_enumeration(issuer: Issuer) -> None:
    url = _url(issuer)
    wrong = sign_in(issuer, url, username="bob", password="wrong password!")
    unknown = sign_in(issuer, url, username="nobody-here", password="wrong password!")
    assert wrong.status_code == unknown.status_code == 200
    message = "The username or password is incorrect."

    def alert(text: str) -> str:
        m = re.search(r'role="alert">([^<]+)<', text)
        assert m, text
        return m.group(1)

    assert alert(wrong.text) == alert(unknown.text) == message
    assert 'aria-invalid="true"' in wrong.text and 'value="bob"' in wrong.text
    assert "location" not in wrong.headers


def test_deny_returns_access_denied_with_state(issuer: Issuer) -> None:
    r = sign_in(issuer, _url(issuer, "deny-state"), decision="deny", password="")
    assert r.status_code == 303
    params = redirect_params(r)
    assert params == {
        "error": "access_denied",
        "error_description": params["error_description"],
        "state": "deny-state",
        "iss": issuer.url,
    }


def test_disabled_user_cannot_sign_in_and_loses_tokens(tmp_path: Path) -> None:
    iss = start_issuer(tmp_path)
    try:
        _, token = code_flow(iss, username="erin")
        revoked = iss.app.store.disable_user("erin", time.time())
        assert revoked
        assert iss.introspect(token["access_token"]) == {"active": False}
        r = sign_in(iss, _url(iss), username="erin")
        assert r.status_code == 200 and "The username or password is incorrect." in r.text
        refresh = iss.post(
            "token",
            {
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": "mobile-app",
            },
        )
        assert refresh.json()["error"] == "invalid_grant"
    finally:
        iss.server.stop()


@pytest.fixture()
def strict(tmp_path: Path) -> Iterator[Issuer]:
    throttle = LoginThrottleSettings(window=60, max_failures_per_account=2, max_failures_per_ip=5)
    iss = start_issuer(tmp_path, login_throttle=throttle)
    try:
        yield iss
    finally:
        iss.server.stop()


def test_throttled_per_account_known_or_not(strict: Issuer) -> None:
    url = _url(strict)
    for username in ("bob", "ghost"):
        for _ in range(2):
            assert sign_in(strict, url, username=username, password="bad password").status_code == 200
    ok = sign_in(strict, url, username="bob")  # even the right password waits
    ghost = sign_in(strict, url, username="ghost")
    assert ok.status_code == ghost.status_code == 429
    assert "Too many failed sign-ins" in ok.text
    assert int(ok.headers["retry-after"]) > 0
    assert sign_in(strict, url, username="alice").status_code == 303  # other accounts are fine
    strict.clock.offset = 61
    assert sign_in(strict, url, username="bob").status_code == 303


def test_throttled_per_address(strict: Issuer) -> None:
    url = _url(strict)
    for username in ("u1", "u2", "u3", "u4", "u5"):
        sign_in(strict, url, username=username, password="bad password")
    assert sign_in(strict, url, username="alice").status_code == 429
