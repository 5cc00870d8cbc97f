"""The console over real sockets, without a browser: sign-in, cookies, CSRF, headers, escaping.

The module's stack is a gateway with the audit trail, detection and the
admin listener (a token file); requests are plain HTTP, so each check says
exactly which header or field makes the difference.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from apishield.admin.app import AdminApp
from apishield.admin.credential import AdminCredential
from apishield.console import Console
from apishield.console.session import LoginThrottle, Sessions, cookie
from apishield.runtime import load_runtime
from tests.console.support import MARKUP_AGENT, ConsoleStack, cookie_value, set_cookies, stored
from tests.support import ServerThread, eventually, http, write_policy

FORM = "application/x-www-form-urlencoded"


def login_nonce(console: ConsoleStack) -> str:
    page = console.admin("GET", "/console/login")
    assert page.status == 200
    return cookie_value(set_cookies(page)["apishield_console_login"])


def sign_in(console: ConsoleStack, token: str | None = None, **headers: str) -> tuple[int, dict[str, str]]:
    nonce = login_nonce(console)
    body = urlencode({"nonce": nonce, "token": token or console.token, "next": "/console"}).encode()
    answer = console.admin(
        "POST",
        "/console/login",
        body,
        {"Content-Type": FORM, "Cookie": f"apishield_console_login={nonce}", **headers},
    )
    return answer.status, set_cookies(answer)


def session(console: ConsoleStack) -> str:
    status, cookies = sign_in(console)
    assert status == 303
    return cookie_value(cookies["apishield_console"])


def csrf_of(console: ConsoleStack, sid: str) -> str:
    page = console.admin("GET", "/console/alerts", headers={"Cookie": f"apishield_console={sid}"})
    marker = b'name="csrf" value="'
    start = page.body.index(marker) + len(marker)
    return page.body[start : page.body.index(b'"', start)].decode()


def test_pages_need_a_session(console: ConsoleStack) -> None:
    page = console.admin("GET", "/console/events?subject=alice")
    assert page.status == 303
    assert page.headers["location"] == "/console/login?next=%2Fconsole%2Fevents%3Fsubject%3Dalice"
    api = console.admin("GET", "/console/api/alerts")
    assert api.status == 401 and api.json()["error"] == "signed out"
    forged = console.admin("GET", "/console", headers={"Cookie": "apishield_console=not-a-session"})
    assert forged.status == 303
    # the admin API's bearer token is not a console session
    bearer = console.admin("GET", "/console", headers={"Authorization": f"Bearer {console.token}"})
    assert bearer.status == 303
    assert console.admin("GET", "/console/static/console.js").status == 200  # assets are public


def test_a_wrong_token_is_refused(console: ConsoleStack) -> None:
    status, cookies = sign_in(console, token="not-the-admin-token-at-all")
    assert status == 401
    assert "apishield_console" not in cookies


def test_session_cookie_attributes_on_loopback(console: ConsoleStack) -> None:
    status, cookies = sign_in(console)
    assert status == 303
    attributes = [part.strip() for part in cookies["apishield_console"].split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes
    assert "Path=/console" in attributes
    assert "Secure" not in attributes  # the listener is on loopback: plain http must keep working
    assert len(cookie_value(cookies["apishield_console"])) >= 40
    assert cookies["apishield_console_login"].endswith("Max-Age=0")  # the sign-in nonce is spent


def test_secure_cookies_off_loopback() -> None:
    assert cookie("apishield_console", "x", secure=True).endswith(b"; Secure")


def test_sign_in_needs_the_forms_nonce_and_the_same_origin(console: ConsoleStack) -> None:
    body = urlencode({"nonce": "guess", "token": console.token}).encode()
    no_cookie = console.admin("POST", "/console/login", body, {"Content-Type": FORM})
    assert no_cookie.status == 403 and "apishield_console" not in set_cookies(no_cookie)
    status, cookies = sign_in(console, Origin="http://attacker.example")
    assert status == 403 and "apishield_console" not in cookies
    status, cookies = sign_in(console, **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and "apishield_console" not in cookies


def test_state_changing_posts_need_the_csrf_token_and_the_same_origin(console: ConsoleStack) -> None:
    sid = session(console)
    csrf = csrf_of(console, sid)
    jar = {"Cookie": f"apishield_console={sid}", "Content-Type": FORM}
    block = {"key": "sub:victim", "duration": "1h", "reason": "test"}

    without = console.admin("POST", "/console/blocks", urlencode(block).encode(), jar)
    assert without.status == 403
    wrong = console.admin("POST", "/console/blocks", urlencode({**block, "csrf": "x" * 43}).encode(), jar)
    assert wrong.status == 403
    body = urlencode({**block, "csrf": csrf}).encode()
    foreign = console.admin("POST", "/console/blocks", body, {**jar, "Origin": "http://attacker.example"})
    assert foreign.status == 403
    cross = console.admin("POST", "/console/blocks", body, {**jar, "Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    detection = console.gateway_app.observability.detection  # type: ignore[union-attr]
    assert detection is not None and len(detection.blocklist) == 0

    same = f"http://127.0.0.1:{console.admin_port}"
    done = console.admin(
        "POST", "/console/blocks", body, {**jar, "Origin": same, "Sec-Fetch-Site": "same-origin"}
    )
    assert done.status == 303
    assert detection.blocklist.get("subject", "victim", 0) is not None
    assert console.api("victim", "/orders/1").status == 403
    listed = console.admin(
        "GET", "/console/principal?key=sub:victim", headers={"Cookie": f"apishield_console={sid}"}
    )
    assert b"Blocked subject victim" in listed.body  # the flash message after the redirect
    block_id = detection.blocklist.get("subject", "victim", 0).id  # type: ignore[union-attr]
    lift = urlencode({"id": block_id, "csrf": csrf, "back": "/console/principal?key=sub:victim"}).encode()
    assert console.admin("POST", "/console/blocks/remove", lift, jar).status == 303
    assert console.api("victim", "/orders/1").status == 200


def test_security_headers_on_every_page(console: ConsoleStack) -> None:
    sid = session(console)
    for path in ("/console", "/console/alerts", "/console/events", "/console/policy", "/console/login"):
        page = console.admin("GET", path, headers={"Cookie": f"apishield_console={sid}"})
        csp = page.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert b"<script>" not in page.body  # no inline script: only <script type="module" src=...>


def test_markup_from_events_is_escaped(console: ConsoleStack) -> None:
    sid = session(console)
    assert console.api("mallet", "/orders/1", agent=MARKUP_AGENT).status == 200
    eventually(lambda: stored(console, "mallet") >= 1, "the event in the audit store")
    page = console.admin(
        "GET", "/console/events?subject=mallet", headers={"Cookie": f"apishield_console={sid}"}
    )
    assert page.status == 200
    assert b"&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=" in page.body
    assert b"<script>window.__pwned" not in page.body and b"<img src=x" not in page.body


def test_logout_ends_the_session(console: ConsoleStack) -> None:
    sid = session(console)
    csrf = csrf_of(console, sid)
    jar = {"Cookie": f"apishield_console={sid}", "Content-Type": FORM}
    out = console.admin("POST", "/console/logout", urlencode({"csrf": csrf}).encode(), jar)
    assert out.status == 303 and set_cookies(out)["apishield_console"].startswith("apishield_console=;")
    assert console.admin("GET", "/console", headers={"Cookie": f"apishield_console={sid}"}).status == 303


def test_sessions_expire_when_idle_and_absolutely() -> None:
    now = [1000.0]
    sessions = Sessions(AdminCredential("t" * 32), idle=60, absolute=300, clock=lambda: now[0])
    ident, _ = sessions.open()
    for _ in range(5):
        now[0] += 50
        assert sessions.get(ident) is not None  # each request restarts the idle timer
    now[0] += 60
    assert sessions.get(ident) is None  # past the absolute lifetime
    ident, _ = sessions.open()
    now[0] += 61
    assert sessions.get(ident) is None  # idle


def test_failed_sign_ins_are_throttled_per_address_and_in_total() -> None:
    now = [0.0]
    throttle = LoginThrottle(per_address=3, overall=5, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("192.0.2.1") == 0
        throttle.failed("192.0.2.1")
    assert throttle.retry_after("192.0.2.1") > 0
    assert throttle.retry_after("192.0.2.2") == 0
    throttle.failed("192.0.2.2")
    throttle.failed("192.0.2.3")
    assert throttle.retry_after("192.0.2.4") > 0  # five failures in all
    now[0] += 61
    assert throttle.retry_after("192.0.2.1") == 0


def test_sign_in_is_throttled_over_http(tmp_path: Path) -> None:
    app, _ = _admin_app(tmp_path, "a-console-token-of-some-length", LoginThrottle(per_address=2))
    server = ServerThread(app).start()
    try:
        for expected in (401, 401, 429, 429):
            page = http(server.port, "GET", "/console/login")
            nonce = cookie_value(set_cookies(page)["apishield_console_login"])
            body = urlencode({"nonce": nonce, "token": "wrong-token-wrong-token"}).encode()
            headers = {"Content-Type": FORM, "Cookie": f"apishield_console_login={nonce}"}
            answer = http(server.port, "POST", "/console/login", body, headers)
            assert answer.status == expected
        assert int(answer.headers["retry-after"]) > 0
    finally:
        server.stop()


def test_without_an_admin_token_the_console_is_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = _admin_app(tmp_path, None)
    server = ServerThread(app).start()
    try:
        for path in ("/console", "/console/login", "/console/alerts"):
            page = http(server.port, "GET", path)
            assert page.status == 503
            assert b"admin.token_file" in page.body and b"admin.token_env" in page.body
        page = http(
            server.port, "POST", "/console/login", urlencode({"token": ""}).encode(), {"Content-Type": FORM}
        )
        assert page.status == 503
    finally:
        server.stop()
    assert any("admin.token_file or admin.token_env" in r.getMessage() for r in caplog.records)


def _admin_app(
    tmp: Path, token: str | None, throttle: LoginThrottle | None = None
) -> tuple[AdminApp, Console]:
    """The console on a bare admin application (no gateway), for what needs its own settings."""
    policy = write_policy(tmp, Path(__file__).parent / "orders.yaml", 9, audit={"sink": "off"})
    credential = AdminCredential(token)
    console = Console(credential, load_runtime(policy), None, throttle=throttle)
    app = AdminApp(credential, [console.route()])
    return app, console


def test_events_are_paged_by_keyset(console: ConsoleStack) -> None:
    sid = session(console)
    for _ in range(30):
        assert console.api("pager", "/orders/1").status == 200
    eventually(lambda: stored(console, "pager") >= 30, "the events in the audit store")
    jar = {"Cookie": f"apishield_console={sid}"}
    first = console.admin("GET", "/console/events?subject=pager&limit=25", headers=jar)
    older = re.search(rb'rel="next" href="([^"]+)"', first.body)
    assert older is not None
    second = console.admin("GET", html.unescape(older.group(1).decode()), headers=jar)
    assert re.search(rb'rel="next"', second.body) is None  # the last page

    def uids(page: bytes) -> list[bytes]:
        return re.findall(rb'href="/console/events/([0-9a-f]+)\?', page)

    assert len(uids(first.body)) == 25 and len(uids(second.body)) == 5
    assert not set(uids(first.body)) & set(uids(second.body))


def test_an_alert_is_polled_and_acknowledged_with_a_note(console: ConsoleStack) -> None:
    sid = session(console)
    jar = {"Cookie": f"apishield_console={sid}"}
    for order in range(2, 10):
        assert console.api("walker", f"/orders/{order}").status == 404

    def alert_of_walker() -> str | None:
        polled = console.admin("GET", "/console/api/alerts?since=0", headers=jar).json()["alerts"]
        return next((a["id"] for a in polled if a["key"] == "sub:walker"), None)

    eventually(lambda: alert_of_walker() is not None, "the walker's alert")
    alert_id = alert_of_walker()
    form = urlencode({"csrf": csrf_of(console, sid), "note": "<b>seen</b>: a test walk"}).encode()
    done = console.admin("POST", f"/console/alerts/{alert_id}/ack", form, {**jar, "Content-Type": FORM})
    assert done.status == 303 and done.headers["location"] == f"/console/alerts/{alert_id}"
    page = console.admin("GET", f"/console/alerts/{alert_id}", headers=jar)
    assert b"acknowledged" in page.body and b"&lt;b&gt;seen&lt;/b&gt;: a test walk" in page.body
    listed = console.admin("GET", "/console/alerts?status=acknowledged", headers=jar)
    assert alert_id is not None and alert_id.encode() in listed.body


def test_principal_pages_for_every_kind_of_key(console: ConsoleStack) -> None:
    sid = session(console)
    jar = {"Cookie": f"apishield_console={sid}"}
    assert console.api("keyed", "/orders/1").status == 200
    eventually(lambda: stored(console, "keyed") >= 1, "the event in the audit store")
    for key in (
        "sub:keyed",
        "client:orders-app",
        "ip:127.0.0.1",
        "token:0123abcd",
        "api_key:k-1",
        "account:bob",
    ):
        page = console.admin("GET", "/console/principal?" + urlencode({"key": key}), headers=jar)
        assert page.status == 200, key
        assert (b'id="block-form"' in page.body) is (not key.startswith("account:")), key
    unknown = console.admin("GET", "/console/principal?key=alice", headers=jar)
    assert unknown.status == 400 and b"sub:SUBJECT" in unknown.body
