"""The audit guard (tests/audit_guard.py) catches what it is there to catch.

The guard scans every event of the run at the end of the session; these
tests check its detector on planted leaks, so a guard that could not fail
would fail here.
"""

from __future__ import annotations

import secrets

from tests.audit_guard import Guard

from apishield.auth.apikeys import generate_key


def event(**fields: object) -> dict[str, object]:
    return {"metadata": {"uid": "e1"}, "http_request": fields}


def test_a_registered_secret_inside_a_string_is_found() -> None:
    guard = Guard()
    secret = secrets.token_urlsafe(32)
    guard.secret(secret, "a refresh token")
    guard.event(event(user_agent=f"client/1.0 (token={secret})"))
    assert guard.findings() == [f"a refresh token (…{secret[-4:]}) in event e1"]


def test_jwt_and_api_key_shapes_are_found_without_registration() -> None:
    guard = Guard()
    key, _, _ = generate_key()
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
    guard.event(event(url={"path": f"/v1/{jwt}"}))
    guard.event(event(user_agent=key))
    assert sorted(guard.findings()) == ["a JWT in event e1", "an API key in event e1"]


def test_clean_events_and_fingerprints_are_not_findings() -> None:
    guard = Guard()
    secret = secrets.token_urlsafe(32)
    guard.secret(secret, "a refresh token")
    guard.event(
        {"metadata": {"uid": "e2"}, "actor": {"session": {"uid": "a" * 32}, "user": {"uid": "alice"}}}
    )
    assert guard.findings() == []
