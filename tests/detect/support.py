"""Scripted audit events for the detector tests, in the exact layout the gateway and the issuer write.

Events are built by the simulator's emitter (:mod:`apishield.detect.simulate.events`),
whose layout ``tests/detect/test_event_shape.py`` checks against the real
builders, so a scripted test and a simulated day feed the engine the same
shape. Times are seconds from :data:`T0` (a Monday, 00:00 UTC).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from apishield.config.detectors import DetectorsPolicy
from apishield.detect.engine import DetectionEngine
from apishield.detect.signal import Signal
from apishield.detect.simulate.events import Call, Emitter, SignIn

T0 = 1_772_409_600_000
CUSTOMER = "/v1/customers/{customerId}"
ORDERS = "/v1/customers/{customerId}/orders"
APP = "CustomerApp/4.3.1 (iOS 17.5; iPhone15,3)"
SCRIPT = "python-requests/2.31.0"
PARTNER_AGENT = "acme-sync/2.3 python-httpx/0.27.0"


def ms(seconds: float) -> int:
    return T0 + int(seconds * 1000)


class Script:
    """Builds events; each call returns the event and keeps it in :attr:`events`."""

    def __init__(self, seed: int = 1, limits: bool = False) -> None:
        self.emitter = Emitter(random.Random(seed), limits=limits)
        self.events: list[dict[str, Any]] = []

    def api(
        self,
        at: float,
        *,
        sub: str | None = "user000001",
        client: str | None = "mobile-app",
        roles: tuple[str, ...] = ("customer",),
        token: str | None = "a" * 32,
        ip: str = "10.0.0.1",
        agent: str = APP,
        method: str = "GET",
        op: str = "getCustomer",
        route: str | None = CUSTOMER,
        object_id: str | None = "1",
        status: int = 200,
        detail: str | None = None,
        records: int | None = 1,
        length: int = 560,
        stage: str | None = None,
    ) -> dict[str, Any]:
        param = "orderId" if route == "/v1/orders/{orderId}" else "customerId"
        if route is not None and object_id is not None:
            path = route.replace("{" + param + "}", object_id)
            params: tuple[tuple[str, str], ...] = ((param, object_id),)
        else:
            path = route or "/v1/undocumented"
            params = ()
        if status == 404 and detail is None:
            detail = "not-found"
        if status == 429 and detail is None:
            detail = "quota-exceeded"
        call = Call(
            ms(at),
            sub=sub,
            client=client,
            roles=roles,
            scopes=("customers:read",),
            token=token,
            ip=ip,
            agent=agent,
            method=method,
            operation=op,
            route=route,
            path=path,
            params=params,
            status=status,
            detail=detail,
            stage=stage or ("object_access" if status == 404 else "authorization"),
            records=records if status < 300 else None,
            length=length,
        )
        event = self.emitter.api(call)
        self.events.append(event)
        return event

    def undocumented(
        self, at: float, path: str, ip: str = "203.0.113.9", agent: str = SCRIPT
    ) -> dict[str, Any]:
        call = Call(
            ms(at),
            sub=None,
            client=None,
            roles=(),
            scopes=(),
            token=None,
            ip=ip,
            agent=agent,
            method="GET",
            operation="undocumented",
            route=None,
            path=path,
            status=404,
            detail="not-found",
            stage="route",
            length=160,
        )
        event = self.emitter.api(call)
        self.events.append(event)
        return event

    def sign_in(
        self,
        at: float,
        account: str,
        ip: str,
        *,
        ok: bool = False,
        detail: str | None = None,
        endpoint: str = "authorize",
        grant: str | None = None,
        user_uid: str | None = None,
        severity: int | None = None,
        client: str = "mobile-app",
    ) -> dict[str, Any]:
        sign = SignIn(
            ms(at),
            endpoint=endpoint,
            client=client,
            ip=ip,
            success=ok,
            grant=grant,
            user_name=account if endpoint == "authorize" else None,
            user_uid=user_uid,
            detail=detail if detail is not None else (None if ok else "login_failed"),
            severity=severity,
        )
        event = self.emitter.auth(sign)
        self.events.append(event)
        return event


def run(events: Iterable[dict[str, Any]], policy: DetectorsPolicy | None = None) -> list[Signal]:
    """The signals of ``events`` (sorted by time) through a new engine."""
    ordered = sorted(events, key=lambda e: e["time"])
    return DetectionEngine(policy).observe(ordered)


def of(signals: Iterable[Signal], detector: str, key: str | None = None) -> list[Signal]:
    return [s for s in signals if s.detector == detector and (key is None or s.key == key)]
