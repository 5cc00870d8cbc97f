"""The indexed columns of an audit event: what the stores filter, sort and count on.

Every sink keeps the exact encoded event and, beside it, a few columns
extracted here, so that ``apishield events`` (and the console) can filter by
subject, client, address, operation and outcome without parsing JSON. The
paths follow OCSF 1.8.0: API Activity (class 6003) and Authentication
(class 3002), which the issuer emits through the same writer. Any other class
gets the columns it has; nothing here assumes a shape, every step is a
``.get`` and every value is coerced to the column's type, so a malformed
event still yields a valid row (``None`` where a value is missing or unusable).

Text columns never carry NUL characters (PostgreSQL refuses them in ``text``):
they become U+FFFD.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMNS", "columns"]

# In the order of the tuple that :func:`columns` returns.
COLUMNS: tuple[str, ...] = (
    "uid",
    "time_ms",
    "class_uid",
    "instance",
    "subject",
    "client_id",
    "token",
    "api_key_id",
    "src_ip",
    "operation",
    "route",
    "method",
    "action",
    "status",
    "status_detail",
    "object_ids",
    "latency_ms",
    "bytes_out",
    "severity_id",
)

_INT64 = (1 << 63) - 1
_MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the column stays a valid date
_AUTHENTICATION = 3002
# OCSF action_id (security_control profile); 3002 uses status_id (1 Success, 2 Failure)
_ACTIONS = {1: "allowed", 2: "denied", 3: "observed", 4: "modified"}
_STATUSES = {1: "success", 2: "failure"}


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text: str
    if type(value) is str:
        text = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if type(value) is not int:
        try:
            value = int(value)  # "200", 12.0
        except (TypeError, ValueError, OverflowError):
            return None
    return value if -_INT64 <= value <= _INT64 else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _action(event: dict[str, Any], class_uid: int | None) -> str | None:
    if class_uid == _AUTHENTICATION:
        return _STATUSES.get(_int(event.get("status_id")) or 0)
    action = _ACTIONS.get(_int(event.get("action_id")) or 0)
    if action is None and event.get("action_id") is None:  # no security_control profile
        return _STATUSES.get(_int(event.get("status_id")) or 0)
    return action


def _subject(event: dict[str, Any], class_uid: int | None) -> str | None:
    subject = _text(_get(event, "actor", "user", "uid"))
    if subject is None and class_uid == _AUTHENTICATION:
        subject = _text(_get(event, "user", "uid")) or _text(_get(event, "user", "name"))
    return subject


def _object_ids(event: dict[str, Any]) -> tuple[str, ...]:
    resources = event.get("resources")
    if not isinstance(resources, list):
        return ()
    out = []
    for resource in resources:
        uid = _text(resource.get("uid")) if isinstance(resource, dict) else None
        if uid is not None:
            out.append(uid)
    return tuple(out)


def columns(event: dict[str, Any]) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``event``; ``object_ids`` is a tuple of strings."""
    if event.get("class_uid") == 6003 and type(event.get("metadata")) is dict:
        try:
            return _api_activity(event)
        except (KeyError, TypeError, AttributeError):
            pass  # not the gateway's own layout: the careful path below
    return _columns(event)


def _api_activity(event: dict[str, Any]) -> tuple[Any, ...]:
    """The fast path for the API Activity events the gateway builds (:mod:`apishield.audit.event`).

    Every value is read where the builder puts it and checked for its type; anything else raises
    and the event takes the careful path, so both paths give the same row for the same event.
    """
    actor = event["actor"]
    user = actor.get("user")
    session = actor.get("session")
    unmapped = event["unmapped"]
    credential = unmapped.get("credential")
    response = event["http_response"]
    resources = event.get("resources")
    time_ms = event["time"]
    values = (
        event["metadata"]["uid"],
        time_ms,
        6003,
        unmapped.get("instance"),
        user.get("uid") if user is not None else None,
        actor.get("app_uid"),
        session.get("uid") if session is not None else None,
        credential.get("key_id") if credential is not None else None,
        event["src_endpoint"]["ip"],
        event["api"]["operation"],
        unmapped.get("route"),
        event["http_request"]["http_method"],
        _ACTIONS[event["action_id"]],
        response["code"],
        event.get("status_detail"),
        tuple(r["uid"] for r in resources) if resources else (),
        float(response["latency"]),
        response["length"],
        event["severity_id"],
    )
    for index in _TEXT_FIELDS:
        value = values[index]
        if value is not None and (type(value) is not str or "\x00" in value):
            raise TypeError("not a plain text value")
    for index in _INT_FIELDS:
        value = values[index]
        if type(value) is not int or not 0 <= value <= _MAX_TIME_MS:
            raise TypeError("not a plain integer")
    for uid in values[15]:
        if type(uid) is not str or "\x00" in uid:
            raise TypeError("not a plain object id")
    return values


# positions in the tuple of the text and integer columns the fast path checks
_TEXT_FIELDS = (0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14)
_INT_FIELDS = (1, 13, 17, 18)


def _columns(event: dict[str, Any]) -> tuple[Any, ...]:
    class_uid = _int(event.get("class_uid"))
    response = event.get("http_response")
    if not isinstance(response, dict):
        response = {}
    latency = _float(response.get("latency"))
    if latency is None:
        latency = _float(event.get("duration"))
    time_ms = _int(event.get("time"))
    return (
        _text(_get(event, "metadata", "uid")),
        min(max(time_ms, 0), _MAX_TIME_MS) if time_ms is not None else 0,
        class_uid,
        _text(_get(event, "unmapped", "instance")),
        _subject(event, class_uid),
        _text(_get(event, "actor", "app_uid")),
        _text(_get(event, "actor", "session", "uid")),
        _text(_get(event, "unmapped", "credential", "key_id")),
        _text(_get(event, "src_endpoint", "ip")),
        _text(_get(event, "api", "operation")),
        _text(_get(event, "unmapped", "route")),
        _text(_get(event, "http_request", "http_method")),
        _action(event, class_uid),
        _int(response.get("code")),
        _text(event.get("status_detail")),
        _object_ids(event),
        latency,
        _int(response.get("length")),
        _int(event.get("severity_id")),
    )
