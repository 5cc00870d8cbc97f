"""The issuer's audit events: OCSF Authentication (class 3002) for sign-ins, grants and revocations.

OCSF 1.8.0, Authentication (category 3, class 3002), with ``auth_protocol_id``
6 (OAuth 2.0) and ``service.name`` = the audience the tokens are for:

* a token grant (RFC 6749 §3.2): activity 1 *Logon*; ``user.uid`` = the
  subject the token was issued to (the client itself for
  ``client_credentials``), ``actor.app_uid`` = the client; a refusal is a
  failure whose ``status_detail`` is the OAuth error code
  (``invalid_client``, ``invalid_grant``, ...);
* a reused authorization code or refresh token (RFC 9700 §4.14.2: the
  whole grant family is revoked): failure with severity 5 (Critical) and
  ``status_detail`` ``refresh_token_reuse`` / ``authorization_code_reuse``;
* a sign-in at the authorization endpoint: activity 1 with the username
  tried in ``user.name`` (``login_failed``, ``throttled`` on failure);
* a revocation (RFC 7009): activity 2 *Logoff*.

Never recorded: passwords, client secrets, codes, tokens (a token is
identified by a fingerprint of its ``jti`` only), and the query or body of
the request. Usernames typed into the form are cut to 200 characters and,
like every string, escaped by the JSON encoder.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import orjson

from apishield.audit.event import _PRODUCT, OCSF_VERSION, event_uid

__all__ = ["LOGOFF", "LOGON", "authentication_event", "basic_client_id", "error_code"]

_PROFILES: list[str] = []
LOGON, LOGOFF = 1, 2


def authentication_event(
    *,
    activity: int,
    success: bool,
    service: str,
    instance: str,
    src_ip: str | None,
    user_uid: str | None = None,
    user_name: str | None = None,
    client_id: str | None = None,
    detail: str | None = None,
    severity: int | None = None,
    endpoint: str,
    grant_type: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    now = int(time.time() * 1000)
    if severity is None:
        severity = 1 if success else 3
    user: dict[str, Any] = {}
    if user_uid:
        user["uid"] = user_uid
    if user_name is not None:
        user["name"] = user_name[:200]
    if not user:
        user["name"] = "unknown"
    event: dict[str, Any] = {
        "class_uid": 3002,
        "category_uid": 3,
        "activity_id": activity,
        "type_uid": 300200 + activity,
        "severity_id": severity,
        "time": now,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "metadata": {
            "version": OCSF_VERSION,
            "product": _PRODUCT,
            "uid": event_uid(now),
            "log_name": "authentication",
            "profiles": _PROFILES,
        },
        "user": user,
        "auth_protocol_id": 6,
        "auth_protocol": "OAUTH 2.0",
        "logon_type_id": 3,
        "logon_type": "Network",
        "is_remote": True,
        "service": {"name": service},
        "src_endpoint": {"ip": src_ip or "unknown"},
        "unmapped": {"instance": instance, "endpoint": endpoint},
    }
    if request_id is not None:
        event["metadata"]["correlation_uid"] = request_id
    if client_id:
        event["actor"] = {"app_uid": client_id}
    if detail:
        event["status_detail"] = detail
    if grant_type:
        event["unmapped"]["grant_type"] = grant_type[:64]
    return event


def basic_client_id(headers: Mapping[str, str]) -> str | None:
    """The client id of HTTP Basic client authentication (RFC 6749 §2.3.1), never the secret."""
    value = headers.get("authorization") or ""
    if value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, _ = decoded.partition(":")
    return unquote(name)[:200] if sep else None


def error_code(body: bytes) -> str:
    """The OAuth ``error`` of a refusal body (RFC 6749 §5.2), or ``error``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "error"
    code = doc.get("error") if isinstance(doc, dict) else None
    return code[:64] if isinstance(code, str) else "error"
