"""The issuer's OCSF Authentication events (class 3002): grants, sign-ins, revocations, reuse.

Over real sockets against the shared test issuer; the events are read from
its audit queue (``app.audit.recent``), where a writer would take them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.issuer.conftest import start_issuer
from tests.issuer.helpers import MOBILE_REDIRECT, PASSWORD, Issuer, code_flow, sign_in


def events_since(issuer: Issuer, mark: int) -> list[dict[str, Any]]:
    return list(issuer.app.audit.recent)[mark:]


def mark(issuer: Issuer) -> int:
    return len(issuer.app.audit.recent)


def assert_authentication(event: dict[str, Any]) -> None:
    assert event["class_uid"] == 3002 and event["category_uid"] == 3
    assert event["type_uid"] == 300200 + event["activity_id"]
    assert event["metadata"]["version"] == "1.8.0" and len(event["metadata"]["uid"]) == 32
    assert event["auth_protocol_id"] == 6 and event["service"]["name"] == "customer-api"
    assert event["user"] and event["src_endpoint"]["ip"] == "127.0.0.1"


def test_client_credentials_grant_is_a_logon(issuer: Issuer) -> None:
    start = mark(issuer)
    token = issuer.client_credentials("partner-portal")
    (event,) = events_since(issuer, start)
    assert_authentication(event)
    assert event["activity_id"] == 1 and event["status_id"] == 1 and event["severity_id"] == 1
    assert event["actor"]["app_uid"] == "partner-portal"
    assert event["user"]["uid"] == "partner-portal"
    assert event["unmapped"]["grant_type"] == "client_credentials"
    line = orjson.dumps(event)
    assert token["access_token"].encode() not in line
    assert issuer.secrets["partner-portal"].encode() not in line


def test_wrong_client_secret_is_a_failed_logon(issuer: Issuer) -> None:
    start = mark(issuer)
    r = issuer.post("token", {"grant_type": "client_credentials"}, auth=("partner-portal", "not-the-secret"))
    assert r.status_code == 401
    (event,) = events_since(issuer, start)
    assert_authentication(event)
    assert event["status_id"] == 2 and event["status_detail"] == "invalid_client"
    assert event["actor"]["app_uid"] == "partner-portal"  # from Basic, without the secret
    assert b"not-the-secret" not in orjson.dumps(event)


def test_sign_in_success_and_failure_name_the_account_not_the_password(issuer: Issuer) -> None:
    start = mark(issuer)
    url = issuer.authorize_url(
        redirect_uri=MOBILE_REDIRECT, code_challenge="x" * 43, code_challenge_method="S256"
    )
    failed = sign_in(issuer, url, username="bob", password="a-wrong-password-123")
    assert failed.status_code == 200  # the page again, with the error
    events = events_since(issuer, start)
    failures = [e for e in events if e.get("status_detail") == "login_failed"]
    assert len(failures) == 1
    assert failures[0]["user"]["name"] == "bob" and failures[0]["status_id"] == 2
    assert failures[0]["actor"]["app_uid"] == "mobile-app"
    assert b"a-wrong-password-123" not in orjson.dumps(events)
    start = mark(issuer)
    _, token = code_flow(issuer, username="carol")
    events = events_since(issuer, start)
    signed_in = [e for e in events if e["unmapped"]["endpoint"] == "authorize"]
    granted = [e for e in events if e["unmapped"]["endpoint"] == "token"]
    assert signed_in[0]["user"] == {"uid": "carol", "name": "carol"} and signed_in[0]["status_id"] == 1
    assert (
        granted[0]["user"]["uid"] == "carol" and granted[0]["unmapped"]["grant_type"] == "authorization_code"
    )
    line = orjson.dumps(events)
    for secret in (PASSWORD, token["access_token"], token["refresh_token"]):
        assert secret.encode() not in line


def test_refresh_token_reuse_is_critical(issuer: Issuer) -> None:
    client, first = code_flow(issuer)
    client.refresh_token(issuer.endpoint("token"), refresh_token=first["refresh_token"])
    start = mark(issuer)
    replay = issuer.post(
        "token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "mobile-app"},
    )
    assert replay.status_code == 400
    (event,) = events_since(issuer, start)
    assert_authentication(event)
    assert event["severity_id"] == 5 and event["status_detail"] == "refresh_token_reuse"
    assert first["refresh_token"].encode() not in orjson.dumps(event)


def test_revocation_is_a_logoff(issuer: Issuer) -> None:
    _, token = code_flow(issuer)
    start = mark(issuer)
    r = issuer.post("revoke", {"token": token["refresh_token"], "client_id": "mobile-app"})
    assert r.status_code == 200
    (event,) = events_since(issuer, start)
    assert event["activity_id"] == 2 and event["type_uid"] == 300202 and event["status_id"] == 1


def test_issuer_with_an_audit_section_writes_its_events(tmp_path: Path) -> None:
    import sqlite3

    from apishield.config.audit import AuditPolicy
    from tests.support import eventually

    db = tmp_path / "issuer-audit.db"
    iss = start_issuer(tmp_path, audit=AuditPolicy(sink="sqlite", path=str(db)))
    try:
        iss.client_credentials("partner-portal")

        def stored() -> int:
            if not db.exists():
                return 0
            with sqlite3.connect(db) as conn:
                return int(
                    conn.execute("SELECT count(*) FROM audit_events WHERE class_uid = 3002").fetchone()[0]
                )

        eventually(lambda: stored() >= 1, "the grant's event in the issuer's audit database")
    finally:
        iss.server.stop()
