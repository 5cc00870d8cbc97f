"""Object enumeration and BOLA probing (OWASP API1:2023): many objects of one route refused to one caller.

**What it watches.** Requests whose route template has a path parameter
(the event's ``resources``: the object identifier the request touched), per
principal (subject, API key, client or address) and route template, in a
sliding window (``window``, 10 minutes) that opens at the principal's first
refusal on the route and closes after a window without one: a principal
that is not being refused costs one attribute check per event.

**The signal.** A caller probing for objects that are not theirs is refused
on most of them: the gateway's object-level rules answer 404 (or 403) for
another customer's record, exactly as for one that does not exist. So the
detector counts the *distinct* objects refused to the caller on the route,
and the share of its requests to the route (since the window opened) that
were refused. It signals when at least ``min_denied_objects`` distinct
objects were refused and they are at least ``min_denied_share`` of its
requests. Distinct objects, not requests: a client retrying one missing
order is not enumerating. The share: a partner job that reads thousands of
its own customers and meets a few deleted ones has many refusals but a
tiny share.

**Sequential walks.** Numeric identifiers tried in steps of one or two
(``41, 42, 44, 45...``) are how enumeration scripts work: ``walk_length``
refused ids in such steps are signalled at once, below
``min_denied_objects``. Walks of successes are not signalled here: a
partner reading its own contiguous block of customers walks too. Reading
far more objects than usual, refused or not, is the scraping detector's
business.

**Baseline and warm-up.** The absolute bar is the floor. Per route, the
distribution of refused objects per principal and window is also learnt (a
log-binned 99th percentile over the closed windows of the principals that
were refused there; windows that were signalled are left out, so an attack
does not teach the baseline to accept the next one). Once ``warmup``
windows were seen, the bar is at least ``peer_factor`` times that p99, so a
route where refusals are normal (an availability check that mostly answers
404) does not alert everyone. Until then only the floor judges.

**Why these defaults.** 20 distinct refused objects at 50 % in ten minutes:
in the reference traffic a customer meets a 404 or two a day (a stale link,
a deleted order, a relative's shared link), a support agent a mistyped id
now and then, a partner's job a deleted customer in a few hundred reads; no
legitimate principal comes near. An attacker is caught after 20 refused
objects whatever its pace, or after 8 when it walks the ids, in seconds at
machine speed. Cloudflare's BOLA labelling counts "unique data points" per
session and endpoint the same way, but on successes and against an
endpoint baseline that needs 10,000 sessions; counting refusals lets a
gateway that already enforces object-level rules flag the probe itself,
from the first window (ecosystem research §2.1, §2.2).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from apishield.config.detectors import EnumerationPolicy
from apishield.detect.baseline import Quantiles
from apishield.detect.detector import Detector, new_ids, sample
from apishield.detect.facts import Facts, object_of
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["EnumerationDetector", "RouteState"]

_MAX_OBJECTS = 512  # distinct refused objects remembered per key and window
_MAX_ROUTES = 64  # routes with refusals tracked per principal


class RouteState:
    __slots__ = (
        "bar",
        "denied",
        "flagged",
        "ids",
        "last_num",
        "prev_denied",
        "prev_requests",
        "requests",
        "run",
        "start",
    )

    def __init__(self, time: int, bar: int) -> None:
        self.start = time
        self.requests = 0
        self.denied: dict[str, None] = {}
        self.prev_denied = 0
        self.prev_requests = 0
        self.last_num = -10
        self.run = 0  # refused numeric ids in a walk (steps of 1 or 2)
        self.bar = bar
        self.flagged = False  # signalled: kept out of the route's baseline
        self.ids: deque[str] = new_ids()


class EnumerationDetector(Detector):
    name = "enumeration"

    def __init__(self, policy: EnumerationPolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)
        self.routes: dict[str, Quantiles] = {}

    def _bar(self, route: str) -> int:
        q = self.routes.get(route)
        if q is None or q.seen < self.p.warmup:
            return self.p.min_denied_objects
        return max(self.p.min_denied_objects, int(self.p.peer_factor * q.value + 0.999))

    def _roll(self, s: RouteState, route: str, time: int) -> None:
        elapsed = time - s.start
        denied = len(s.denied)
        q = self.routes.get(route)
        if q is None:
            if len(self.routes) >= 4096:
                self.routes.clear()
            q = self.routes[route] = Quantiles()
        if s.flagged:
            s.flagged = False
        else:
            q.add(denied)
        if elapsed < 2 * self.window:
            s.prev_denied = denied
            s.prev_requests = s.requests
            s.start = time - elapsed % self.window
        else:
            s.prev_denied = s.prev_requests = 0
            s.start = time
        s.requests = 0
        s.denied = {}
        s.bar = self._bar(route)

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> None:
        """A request with an object id: refused, or of a principal refused on some route before."""
        route = f.route
        if route is None:
            return
        oid = object_of(f)
        if oid is None:
            return
        time = f.time
        routes = p.routes
        s = routes.get(route) if routes is not None else None
        denied = f.denied
        if s is None:
            if not denied:
                return
            if routes is None:
                routes = p.routes = {}
            elif len(routes) >= _MAX_ROUTES:
                routes.clear()
            s = routes[route] = RouteState(time, self._bar(route))
        elif time - s.start >= self.window:
            self._roll(s, route, time)
            if not denied and not s.prev_denied and routes is not None:
                # a window without refusals: the route is no longer watched for this principal
                del routes[route]
                if not routes:
                    p.routes = None
                return
        s.requests += 1
        if not denied:
            return
        if len(s.denied) < _MAX_OBJECTS:
            s.denied[oid] = None
        s.ids.append(f.uid)
        # a walk: refused numeric ids in steps of 1 or 2 (a repeated id neither extends nor breaks it)
        if oid.isdigit() and len(oid) < 19:
            n = int(oid)
            step = n - s.last_num
            if step != 0:
                s.run = s.run + 1 if -2 <= step <= 2 else 1
                s.last_num = n
        pol = self.p
        walking = s.run >= pol.walk_length
        remaining = self.window - (time - s.start)
        count = len(s.denied)
        if s.prev_denied and remaining > 0:
            count += s.prev_denied * remaining // self.window
        if count < s.bar and not walking:
            return
        requests = s.requests
        if s.prev_requests and remaining > 0:
            requests += s.prev_requests * remaining // self.window
        share = count / requests if requests else 1.0
        if share < pol.min_denied_share:
            return
        s.flagged = True
        self._signal(f, s, route, count, requests, share, walking, out)

    def _signal(
        self,
        f: Facts,
        s: RouteState,
        route: str,
        count: int,
        requests: int,
        share: float,
        walking: bool,
        out: list[Signal],
    ) -> None:
        pol = self.p
        severity = pol.severity
        if count >= 5 * s.bar and severity < 5:
            severity += 1
        repeat = self.may_signal(f.principal, f.time, severity)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "route": route,
            "denied_objects": count,
            "requests": requests,
            "denied_share": round(share, 3),
            "threshold": s.bar,
            "window_s": self.window // 1000,
            "sequential_walk": s.run if walking else 0,
            "sample_object_ids": sample(s.denied),
            "ip": f.ip,
            "user_agent": f.agent,
        }
        how = f", walking consecutive ids ({s.run} in a row)" if walking else ""
        summary = (
            f"{f.principal} was refused {count} distinct objects of {route} in "
            f"{self.window // 60000} min ({share:.0%} of its requests there){how}"
        )
        self.emit(out, f.principal, f.time, severity, summary, evidence, s.ids, repeat, scope=route)
