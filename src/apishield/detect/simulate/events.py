"""Requests of the simulated traffic, and the audit events the gateway and the issuer would write for them.

A :class:`Call` is one request to the gateway, a :class:`SignIn` one
request to the issuer, each already carrying the outcome the demo's policy
decides from who asks for what (a customer reading another customer's
record gets the object-level rule's 404, a partner's write without the
scope a 403, an undocumented path the router's 404...). :class:`Emitter`
turns them, in time order, into events with the field layout of
:func:`apishield.audit.event.build_api_activity` (OCSF API Activity 6003)
and :func:`apishield.issuer.audit.authentication_event` (OCSF Authentication
3002), adding what only the order of events decides: the example policy's
per-client rate limit (50/s, burst 100, GCRA) and the issuer's sign-in
throttle (5 failures per account, 20 per address, per 15 minutes).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from apishield import __version__

__all__ = ["Call", "Emitter", "SignIn"]

OCSF_VERSION = "1.8.0"
_PRODUCT = {"name": "apishield", "vendor_name": "apishield", "version": __version__}
_ACTIVITY = {"POST": 1, "GET": 2, "HEAD": 2, "PUT": 3, "PATCH": 3, "DELETE": 4}
ALLOWED, BLOCKED, UNAUTHORIZED = 1, 2, 26
HOST = "api.example.com"
SERVICE = "customer-api"
ISSUER = "https://login.example.com"

# the example policy's per-client limit: 50/s, burst 100
_RATE_INTERVAL_MS = 20.0
_BURST = 100
_THROTTLE_WINDOW_MS = 900_000
_THROTTLE_ACCOUNT = 5
_THROTTLE_IP = 20


class Call:
    """One request to the gateway and the answer the policy gives it (before rate limiting)."""

    __slots__ = (
        "agent",
        "client",
        "detail",
        "ip",
        "label",
        "length",
        "method",
        "operation",
        "params",
        "path",
        "records",
        "roles",
        "route",
        "rule",
        "scopes",
        "seq",
        "stage",
        "status",
        "sub",
        "t",
        "token",
    )

    def __init__(
        self,
        t: int,
        *,
        sub: str | None,
        client: str | None,
        roles: tuple[str, ...],
        scopes: tuple[str, ...],
        token: str | None,
        ip: str,
        agent: str,
        method: str,
        operation: str,
        route: str | None,
        path: str,
        params: tuple[tuple[str, str], ...] = (),
        status: int = 200,
        detail: str | None = None,
        stage: str | None = None,
        rule: str | None = None,
        records: int | None = None,
        length: int = 0,
        label: str | None = None,
    ) -> None:
        self.t = t
        self.seq = 0
        self.sub = sub
        self.client = client
        self.roles = roles
        self.scopes = scopes
        self.token = token
        self.ip = ip
        self.agent = agent
        self.method = method
        self.operation = operation
        self.route = route
        self.path = path
        self.params = params
        self.status = status
        self.detail = detail
        self.stage = stage
        self.rule = rule
        self.records = records
        self.length = length
        self.label = label


class SignIn:
    """One request to the issuer: a sign-in at the authorization endpoint or a token grant."""

    __slots__ = (
        "client",
        "detail",
        "endpoint",
        "grant",
        "ip",
        "label",
        "seq",
        "severity",
        "success",
        "t",
        "user_name",
        "user_uid",
    )

    def __init__(
        self,
        t: int,
        *,
        endpoint: str,
        client: str | None,
        ip: str,
        success: bool,
        grant: str | None = None,
        user_name: str | None = None,
        user_uid: str | None = None,
        detail: str | None = None,
        severity: int | None = None,
        label: str | None = None,
    ) -> None:
        self.t = t
        self.seq = 0
        self.endpoint = endpoint
        self.client = client
        self.ip = ip
        self.success = success
        self.grant = grant
        self.user_name = user_name
        self.user_uid = user_uid
        self.detail = detail
        self.severity = severity
        self.label = label


class Emitter:
    """Builds the events of calls and sign-ins in time order, with the rate limit and the sign-in throttle."""

    def __init__(self, rng: random.Random, instance: str = "gw-1", limits: bool = True) -> None:
        self.rng = rng
        self.instance = instance
        self.limits = limits  # apply the per-client rate limit (scripted tests may leave it off)
        self.tat: dict[str, float] = {}  # GCRA theoretical arrival time per client
        self.daily: dict[str, int] = {}
        self.throttle_accounts: dict[str, deque[int]] = {}
        self.throttle_ips: dict[str, deque[int]] = {}

    def _hex(self, bits: int = 128) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    # -- the gateway ------------------------------------------------------------------------------
    def _limit(self, call: Call) -> tuple[bool, int] | None:
        """The per-client GCRA: (allowed, remaining), or None when the limit does not apply."""
        key = call.client
        if key is None:
            return None
        now = float(call.t)
        tat = max(self.tat.get(key, now), now)
        allow_at = tat - _BURST * _RATE_INTERVAL_MS
        if now < allow_at:
            return False, 0
        self.tat[key] = tat + _RATE_INTERVAL_MS
        remaining = int((now - allow_at) / _RATE_INTERVAL_MS)
        return True, max(min(remaining, _BURST), 0)

    def api(self, call: Call) -> dict[str, Any]:
        rng = self.rng
        request_id = self._hex(64)
        status = call.status
        detail = call.detail
        records = call.records
        length = call.length
        # the router and authentication run before anything learns who asks: an undocumented
        # path or a refused token leaves the event anonymous, and no per-client limit applies
        known = status != 401 and call.operation != "undocumented"
        limited = self._limit(call) if known and self.limits else None
        rate_limits = None
        decisions: list[dict[str, Any]] = []
        if call.operation != "undocumented":
            decisions.append(
                {
                    "stage": "route",
                    "outcome": "allow",
                    "reason": "documented operation",
                    "rule": call.operation,
                }
            )
        if call.token is not None and known:
            decisions.append(
                {
                    "stage": "authentication",
                    "outcome": "allow",
                    "reason": "authenticated by jwt",
                    "rule": ISSUER,
                }
            )
        if limited is not None:
            allowed, remaining = limited
            rate_limits = [{"id": "per-client", "allowed": allowed, "remaining": remaining}]
            if not allowed:
                status, detail, records = 429, "quota-exceeded", None
                length = 231
                decisions.append(
                    {
                        "stage": "rate_limit",
                        "outcome": "deny",
                        "reason": "over the limit per-client",
                        "rule": "per-client",
                    }
                )
        if status < 400 or status == 429:
            pass
        else:
            decisions.append(
                {
                    "stage": call.stage or "object_access",
                    "outcome": "deny",
                    "reason": _REASONS.get(detail or "", "refused"),
                    **({"rule": call.rule} if call.rule else {}),
                }
            )
        made_here = status >= 400
        if status == 401:
            action, disposition, severity = 2, UNAUTHORIZED, 3
        elif made_here:
            action, disposition, severity = 2, BLOCKED, 3
        else:
            action, disposition, severity = 1, ALLOWED, 1
        activity = _ACTIVITY.get(call.method, 99)
        latency = round(rng.uniform(2.0, 40.0) if status < 400 else rng.uniform(0.3, 3.0), 3)
        actor: dict[str, Any] = {}
        if known:
            if call.sub is not None:
                actor["user"] = {"uid": call.sub}
            if call.client is not None:
                actor["app_uid"] = call.client
            if call.token is not None:
                actor["session"] = {"uid": call.token, "issuer": ISSUER}
        if not actor:
            actor["app_name"] = "anonymous"
        if call.roles and known:
            actor.setdefault("user", {})["groups"] = [{"name": r} for r in call.roles]
        end = call.t
        port = 1024 + rng.randrange(60000)
        http_request: dict[str, Any] = {
            "http_method": call.method,
            "url": {"path": call.path, "scheme": "https", "hostname": HOST},
            "version": "HTTP/1.1",
            "uid": request_id,
            "user_agent": call.agent,
        }
        if call.method in ("POST", "PUT", "PATCH"):
            http_request["length"] = 180 + rng.randrange(400)
        event: dict[str, Any] = {
            "class_uid": 6003,
            "category_uid": 6,
            "activity_id": activity,
            "type_uid": 600300 + activity,
            "severity_id": severity,
            "time": end,
            "start_time": end - int(latency),
            "duration": int(latency),
            "status_id": 1 if action == 1 else 2,
            "status": "Success" if action == 1 else "Failure",
            "status_code": str(status),
            "action_id": action,
            "disposition_id": disposition,
            "metadata": {
                "version": OCSF_VERSION,
                "product": _PRODUCT,
                "uid": self._hex(),
                "correlation_uid": request_id,
                "profiles": ["security_control"],
                "log_name": "api_activity",
            },
            "actor": actor,
            "api": {
                "operation": call.operation,
                "request": {"uid": request_id},
                "response": {"code": status},
            },
            "src_endpoint": {"ip": call.ip, "port": port},
            "http_request": http_request,
            "http_response": {"code": status, "latency": latency, "length": length},
        }
        if activity == 99:
            event["activity_name"] = "Other"
        if made_here and detail is not None:
            event["status_detail"] = detail
            event["api"]["response"]["error"] = detail
        if call.params and call.operation != "undocumented":
            event["resources"] = [{"type": name, "uid": value} for name, value in call.params]
        event["dst_endpoint"] = {"ip": "10.255.0.10", "port": 8443}
        unmapped: dict[str, Any] = {"instance": self.instance}
        if call.route is not None:
            unmapped["route"] = call.route
        if decisions:
            unmapped["decisions"] = decisions
            denial = next((d for d in decisions if d["outcome"] == "deny"), None)
            if denial is not None:
                event["policy"] = {"name": denial.get("rule") or denial["stage"], "desc": denial["reason"]}
        if call.token is not None and known:
            unmapped["credential"] = {"method": "jwt", "scopes": sorted(call.scopes)}
        if status < 400 or (status == 404 and call.stage == "object_access"):
            unmapped["upstream_status"] = 200 if status < 400 else 404
        if records is not None and status < 300:
            unmapped["records"] = records
        if rate_limits is not None:
            unmapped["rate_limits"] = rate_limits
        event["unmapped"] = unmapped
        return event

    # -- the issuer -------------------------------------------------------------------------------
    def _throttled(self, sign: SignIn) -> bool:
        now = sign.t
        for table, key, limit in (
            (self.throttle_accounts, sign.user_name or "", _THROTTLE_ACCOUNT),
            (self.throttle_ips, sign.ip, _THROTTLE_IP),
        ):
            times = table.get(key)
            if times is None:
                continue
            while times and times[0] <= now - _THROTTLE_WINDOW_MS:
                times.popleft()
            if len(times) >= limit:
                return True
        return False

    def _failed(self, sign: SignIn) -> None:
        for table, key, limit in (
            (self.throttle_accounts, sign.user_name or "", _THROTTLE_ACCOUNT),
            (self.throttle_ips, sign.ip, _THROTTLE_IP),
        ):
            times = table.get(key)
            if times is None:
                if len(table) > 200_000:
                    table.clear()
                times = table[key] = deque(maxlen=limit)
            times.append(sign.t)

    def auth(self, sign: SignIn) -> dict[str, Any]:
        success = sign.success
        detail = sign.detail
        severity = sign.severity
        if sign.endpoint == "authorize" and sign.user_name is not None:
            if self._throttled(sign):
                success, detail = False, "throttled"
            elif not success:
                self._failed(sign)
            elif sign.user_name in self.throttle_accounts:
                del self.throttle_accounts[sign.user_name]
        if severity is None:
            severity = 1 if success else 3
        user: dict[str, Any] = {}
        if sign.user_uid:
            user["uid"] = sign.user_uid
        if sign.user_name is not None:
            user["name"] = sign.user_name[:200]
        if not user:
            user["name"] = "unknown"
        event: dict[str, Any] = {
            "class_uid": 3002,
            "category_uid": 3,
            "activity_id": 1,
            "type_uid": 300201,
            "severity_id": severity,
            "time": sign.t,
            "status_id": 1 if success else 2,
            "status": "Success" if success else "Failure",
            "metadata": {
                "version": OCSF_VERSION,
                "product": _PRODUCT,
                "uid": self._hex(),
                "log_name": "authentication",
                "profiles": [],
            },
            "user": user,
            "auth_protocol_id": 6,
            "auth_protocol": "OAUTH 2.0",
            "logon_type_id": 3,
            "logon_type": "Network",
            "is_remote": True,
            "service": {"name": SERVICE},
            "src_endpoint": {"ip": sign.ip},
            "unmapped": {"instance": "issuer-1", "endpoint": sign.endpoint},
        }
        if sign.client:
            event["actor"] = {"app_uid": sign.client}
        if detail:
            event["status_detail"] = detail
        if sign.grant and sign.endpoint == "token":
            event["unmapped"]["grant_type"] = sign.grant
        return event


_REASONS = {
    "not-found": "rule denied the answer",
    "forbidden": "rule denied the request",
    "insufficient-scope": "the token lacks a required scope",
    "invalid-token": "the token has expired",
    "unauthorized": "no credentials",
    "validation-failed": "the request does not match the operation's schema",
}
