"""Repeated rate-limit pressure: a principal that keeps pushing into its limits.

**What it watches.** Answers 429 (``quota-exceeded`` / ``too-many-requests``;
the limit that refused is in ``unmapped.rate_limits``), per principal, in a
window (``window``, 5 minutes) that opens at its first refusal; from then
on its other requests are counted too, for the refused share. A principal
that was never refused costs one attribute check per event.

**The signal.** ``min_refusals`` refusals that are at least ``min_share`` of
the principal's requests since its first refusal of the window. A rate
limit is a brake, not a verdict: a well-behaved client that meets it backs
off (``Retry-After``) and is refused a handful of times. A client that keeps
sending at full speed into the limit is broken or hostile: a retry loop, a
scraper probing the limit, or a distributed attack sharing one client id.
The limiter already refuses the excess; the signal says it is systematic,
and lets a ``throttle`` or ``block`` response take it off the limiter's hot
path.

**Baseline.** None: the rate limits are the policy's statement of normal,
so repeated refusals are abnormal by definition. No warm-up.

**Why these defaults.** Ten refusals in five minutes at 20 % of the
requests: a job that backs off when refused is refused a handful of times
and then a small share of its requests; a client hammering at three times
its limit is refused two requests in three once its burst is spent, and
crosses the bar a few seconds later. With the example policy's burst of a
hundred, the first refusal comes after a hundred-odd requests, so the
volume detector, which judges the rate itself, usually speaks first.
"""

from __future__ import annotations

from typing import Any

from apishield.config.detectors import RateLimitPressurePolicy
from apishield.detect.detector import Detector, ending_with
from apishield.detect.facts import Facts, limit_of
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["PressureState", "RateLimitPressureDetector"]


class PressureState:
    __slots__ = ("limits", "refused", "requests", "start")

    def __init__(self, time: int) -> None:
        self.start = time
        self.requests = 0
        self.refused = 0
        self.limits: dict[str, int] = {}


class RateLimitPressureDetector(Detector):
    name = "rate_limit_pressure"

    def __init__(self, policy: RateLimitPressurePolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> None:
        """A request of a principal refused by a rate limit now, or earlier in its window."""
        time = f.time
        s = p.pressure
        refused = f.status == 429
        if s is None:
            if not refused:
                return
            s = p.pressure = PressureState(time)
        elif time - s.start >= self.window:
            if not refused:
                p.pressure = None
                return
            s.start = time
            s.requests = s.refused = 0
            s.limits = {}
        s.requests += 1
        if not refused:
            return
        s.refused += 1
        limit = limit_of(f) or f.detail or "?"
        if len(s.limits) < 16 or limit in s.limits:
            s.limits[limit] = s.limits.get(limit, 0) + 1
        pol = self.p
        if s.refused < pol.min_refusals:
            return
        share = s.refused / s.requests
        if share < pol.min_share:
            return
        key = f.principal
        repeat = self.may_signal(key, time, pol.severity)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "refusals": s.refused,
            "requests": s.requests,
            "refused_share": round(share, 3),
            "window_s": self.window // 1000,
            "limits": dict(sorted(s.limits.items())),
            "ip": f.ip,
        }
        limits = ", ".join(sorted(s.limits))
        summary = (
            f"{key} was refused {s.refused} times by rate limits ({limits}) in "
            f"{(time - s.start) // 1000 + 1} s, {share:.0%} of its requests"
        )
        self.emit(
            out,
            key,
            time,
            pol.severity,
            summary,
            evidence,
            ending_with(p.recent(), f.uid),
            repeat,
            scope=f.operation,
        )
