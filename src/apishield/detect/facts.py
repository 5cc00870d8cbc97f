"""The facts detectors read from an audit event, extracted once per event.

Audit events are nested OCSF dicts (:mod:`apishield.audit.event` for API
Activity, class 6003; :mod:`apishield.issuer.audit` for Authentication,
class 3002). Seven detectors reading the same nested paths would pay for
the same dict walks seven times, so :func:`extract` walks each event once
into a :class:`Facts` object with slots, and detectors read attributes.
What only some detectors need on their rarer paths (the object a request
touched, the peer group, the URL path of an undocumented request, the limit
that refused a 429) is derived there, by :func:`object_of` and its
siblings, not for every event: reading a nested member of an event that is
no longer in the CPU's cache costs more than the rest of a detector.

Identity, in the order that names the principal (:attr:`Facts.principal`):

* ``sub:<subject>``: a token's subject, unless it is the client itself
  (a ``client_credentials`` token, whose subject is its client);
* ``api_key:<id>``: an API key's id (API keys carry no subject);
* ``client:<id>``: the OAuth client;
* ``ip:<address>``: nobody authenticated; the client address. Every request
  the gateway refuses before authentication (an undocumented path, a bad
  token) is anonymous in its event, so it is keyed by address.

:func:`peer_of` groups principals that should behave alike: the client (or
the credential method) and the roles, e.g. ``mobile-app|customer`` and
``mobile-app|support``. Baselines "against its peers" are kept per peer
group, so a support agent is compared with support agents, not with the
customers who share the app.

The fast path indexes the members :func:`apishield.audit.event.build_api_activity`
always writes; an event missing one (written by another producer, or an
older version) takes a tolerant path that reads every member with defaults.
An event of another class, or without ``time``, gives ``None``: the engine
skips it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["API", "AUTH", "Facts", "extract", "limit_of", "object_of", "path_of", "peer_of"]

API = 1  # OCSF API Activity (6003), one per gateway exchange
AUTH = 2  # OCSF Authentication (3002), the issuer's sign-ins and grants

_new = object.__new__
_EMPTY: dict[str, Any] = {}


class Facts:
    """What the detectors need of one event; members absent from the event are ``None``/0."""

    __slots__ = (
        "account",
        "agent",
        "api_key",
        "client",
        "denied",
        "detail",
        "event",
        "grant",
        "ip",
        "kind",
        "length",
        "operation",
        "principal",
        "records",
        "route",
        "service",
        "status",
        "subject",
        "success",
        "time",
        "token",
        "uid",
    )

    time: int
    kind: int
    uid: str
    principal: str
    subject: str | None
    client: str | None
    token: str | None
    api_key: str | None
    ip: str
    agent: str | None
    operation: str | None
    route: str | None
    status: int
    success: bool
    denied: bool
    detail: str | None
    length: int
    records: int
    account: str | None
    grant: str | None
    service: str | None
    event: dict[str, Any]  # the event itself, for what is read on rare paths

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name, None)!r}" for name in self.__slots__ if name != "event"
        )
        return f"Facts({fields})"


def extract(event: dict[str, Any]) -> Facts | None:
    """The facts of one OCSF event (class 6003 or 3002), or ``None`` for any other event."""
    try:
        time = event["time"]
        cls = event["class_uid"]
    except (KeyError, TypeError):
        return None
    if not isinstance(time, int):
        return None
    if cls == 6003:
        try:
            return _api(event, time)
        except (KeyError, TypeError, AttributeError, IndexError):
            return _api(_complete(event), time)
    if cls == 3002:
        return _auth(event, time)
    return None


def _api(event: dict[str, Any], time: int) -> Facts:
    f: Facts = _new(Facts)
    f.time = time
    f.kind = API
    f.event = event
    f.uid = event["metadata"]["uid"]
    actor = event["actor"]
    user = actor.get("user")
    subject = user.get("uid") if user is not None else None
    client = actor.get("app_uid")
    session = actor.get("session")
    ip = event["src_endpoint"]["ip"]
    f.subject = subject
    f.client = client
    f.ip = ip
    if session is not None:
        f.token = session["uid"]
        key_id = None
    else:
        f.token = None
        credential = event["unmapped"].get("credential")
        key_id = credential.get("key_id") if credential is not None else None
    f.api_key = key_id
    if subject is not None and subject != client:
        f.principal = "sub:" + subject
    elif key_id is not None:
        f.principal = "api_key:" + key_id
    elif client is not None:
        f.principal = "client:" + client
    else:
        f.principal = "ip:" + ip
    f.agent = event["http_request"].get("user_agent")
    f.operation = event["api"]["operation"]
    unmapped = event["unmapped"]
    f.route = unmapped.get("route")
    response = event["http_response"]
    status = response["code"]
    f.status = status
    f.length = response.get("length", 0)
    f.success = 200 <= status < 400
    f.denied = status == 404 or status == 403
    f.detail = event.get("status_detail")
    records = unmapped.get("records")
    f.records = records if records is not None else 0
    f.account = f.grant = f.service = None
    return f


def _complete(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of an API Activity event with every member the fast path indexes (defaults for missing)."""

    def member(d: Any, key: str) -> dict[str, Any]:
        value = d.get(key) if isinstance(d, dict) else None
        return value if isinstance(value, dict) else {}

    out = dict(event)
    metadata = member(event, "metadata")
    out["metadata"] = {**metadata, "uid": str(metadata.get("uid", ""))}
    actor = member(event, "actor")
    session = member(actor, "session")
    actor = {k: v for k, v in actor.items() if k != "session" or session.get("uid")}
    if not isinstance(actor.get("user"), dict):
        actor.pop("user", None)
    out["actor"] = actor
    src = member(event, "src_endpoint")
    out["src_endpoint"] = {**src, "ip": str(src.get("ip") or "unknown")}
    out["http_request"] = member(event, "http_request")
    api = member(event, "api")
    out["api"] = {**api, "operation": api.get("operation")}
    response = member(event, "http_response")
    code = response.get("code")
    out["http_response"] = {**response, "code": code if isinstance(code, int) else 0}
    unmapped = member(event, "unmapped")
    if not isinstance(unmapped.get("credential"), dict):
        unmapped = {k: v for k, v in unmapped.items() if k != "credential"}
    out["unmapped"] = unmapped
    resources = event.get("resources")
    if not (isinstance(resources, list) and resources and isinstance(resources[-1], dict)):
        out.pop("resources", None)
    elif "uid" not in resources[-1]:
        out["resources"] = [*resources[:-1], {**resources[-1], "uid": ""}]
    return out


def _auth(event: dict[str, Any], time: int) -> Facts:
    f: Facts = _new(Facts)
    f.time = time
    f.kind = AUTH
    f.event = event
    meta = event.get("metadata")
    f.uid = meta.get("uid", "") if meta else ""
    user = event.get("user") or _EMPTY
    uid = user.get("uid")
    name = user.get("name")
    actor = event.get("actor")
    client = actor.get("app_uid") if actor else None
    f.subject = uid
    f.client = client
    f.account = name if name is not None and name != "unknown" else uid
    src = event.get("src_endpoint")
    ip = (src.get("ip") if src else None) or "unknown"
    f.ip = ip
    if uid is not None and uid != client:
        f.principal = "sub:" + uid
    elif client is not None:
        f.principal = "client:" + client
    else:
        f.principal = "ip:" + ip
    f.token = None
    f.api_key = None
    http = event.get("http_request")
    f.agent = http.get("user_agent") if http else None
    unmapped = event.get("unmapped") or _EMPTY
    f.operation = unmapped.get("endpoint")
    f.grant = unmapped.get("grant_type")
    f.route = None
    service = event.get("service")
    f.service = service.get("name") if service else None
    success = event.get("status_id") == 1
    f.success = success
    f.status = 200 if success else 401
    f.denied = False
    f.detail = event.get("status_detail")
    f.length = 0
    f.records = 0
    return f


def peer_of(f: Facts) -> str:
    """The peer group: the client (or credential method) and the roles, e.g. ``mobile-app|customer``."""
    event = f.event
    actor = event.get("actor") or _EMPTY
    user = actor.get("user") or _EMPTY
    groups: Any = user.get("groups") or ()
    if len(groups) == 1 and isinstance(groups[0], dict):
        roles = str(groups[0].get("name", ""))
    else:
        roles = "+".join(sorted(str(g.get("name", "")) for g in groups if isinstance(g, dict)))
    if f.client is not None:
        return f.client + "|" + roles
    unmapped = event.get("unmapped") or _EMPTY
    credential = unmapped.get("credential") or _EMPTY
    if credential:
        return str(credential.get("method", "")) + "|" + roles
    return "anonymous|"


def object_of(f: Facts) -> str | None:
    """The object the request touched: the last path parameter (``resources``), e.g. a customer id."""
    resources = f.event.get("resources")
    if not resources or not isinstance(resources, list):
        return None
    last = resources[-1]
    uid = last.get("uid") if isinstance(last, dict) else None
    return str(uid) if uid is not None else None


def path_of(f: Facts) -> str:
    """The URL path of the request (without the query, which events never record)."""
    http = f.event.get("http_request") or _EMPTY
    url = http.get("url") or _EMPTY
    return str(url.get("path") or "")


def limit_of(f: Facts) -> str | None:
    """The id of the first rate limit that refused the request (``unmapped.rate_limits``)."""
    unmapped = f.event.get("unmapped") or _EMPTY
    for limit in unmapped.get("rate_limits") or ():
        if isinstance(limit, dict) and not limit.get("allowed", True):
            return str(limit.get("id"))
    return None
