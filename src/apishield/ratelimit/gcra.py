"""GCRA, the generic cell rate algorithm, and the in-process store built on it.

Theory of operation
-------------------
GCRA (ITU-T I.371, the "virtual scheduling" form; the algorithm behind
redis-cell and Envoy's local limiter) keeps **one number per key**: the
*theoretical arrival time* (TAT), the moment at which the key's budget would
be fully restored if nothing more arrived. A limit of ``rate`` with
``burst`` B has an *emission interval* T = period / count (the time one
unit of budget takes to come back) and a *tolerance* τ = B·T (how far ahead
of real time the TAT may run).

For a request of cost c at time ``now``::

    tat      = max(stored TAT, now)          # an idle key has its whole budget
    new_tat  = tat + c·T
    allowed  = new_tat - τ <= now            # would the TAT run more than τ ahead?

An allowed request stores ``new_tat``; a refused one stores nothing, so a
caller hammering a limit does not push its own recovery further out (unless
the limit asks for *backoff*, below). From the same two numbers come the
values the ``RateLimit`` header field reports: the units still available,
``floor((τ - (tat - now)) / T)``, the seconds until the request would fit,
``new_tat - τ - now``, and the seconds until the whole budget is back,
``tat - now``. Memory is O(1) per key and the decision O(1), with no window
edges: B requests may arrive at once, then one every T, and the count of
allowed requests over any interval of length L is at most B + L/T.

Kinds of charge (:data:`CONSUME`, :data:`CHECK`, :data:`RECORD`): a plain
limit *consumes* on the request. An outcome limit (``count_if``, the
credential-stuffing brake) only *checks* on the request (would one more
fit?) and *records* after the answer when the outcome matches, regardless of
the budget (failures happened; they are counted). With ``backoff``, a
refused check records too, extending the block up to ``backoff`` beyond the
tolerance, so a client that keeps hammering stays blocked while one that
waits for ``Retry-After`` gets back in.

All the calls of one request are decided together: if any enforced call is
refused, no consuming call is charged (a request refused by the daily quota
does not use up the per-second budget). Calls in ``report`` mode are
decided and charged when they fit, but never refuse the request.

:class:`MemoryStore` is exact within one process (per worker process: N
workers allow N times the rate; use the Redis store, whose Lua script in
:mod:`.redis_store` implements the same arithmetic, to share a limit). Keys
whose TAT has passed carry no information and are swept; past
``max_keys`` the oldest keys are forgotten (which forgives them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["CHECK", "CONSUME", "RECORD", "LimitCall", "LimitResult", "MemoryStore", "decide_calls"]

CONSUME = 0
CHECK = 1
RECORD = 2


class LimitCall(NamedTuple):
    """One limit applied to one request: what a store needs to decide it (hashable, for effects)."""

    key: str  # storage key, naming the limit and the key value
    interval: float  # T, seconds per unit
    tolerance: float  # τ = burst · T, seconds
    cost: int
    mode: int = CONSUME  # CONSUME | CHECK | RECORD
    enforce: bool = True  # False: report mode, never refuses
    backoff: float = 0.0  # seconds; 0: refused attempts are not counted


class LimitResult(NamedTuple):
    allowed: bool
    remaining: int  # units available after this request
    retry_after: float  # seconds until the request would fit (0 when allowed)
    reset_after: float  # seconds until the whole budget is back


def decide_calls(
    calls: Sequence[LimitCall],
    now: float,
    get: Callable[[str], float | None],
    put: Callable[[str, float], None],
) -> list[LimitResult]:
    """The GCRA decision of one request's calls over any key-value state (the reference semantics)."""
    tats: list[float] = []
    news: list[float] = []
    fits: list[bool] = []
    refused = False
    for call in calls:
        stored = get(call.key)
        tat = now if stored is None or stored < now else stored
        new = tat + call.cost * call.interval
        ok = new - call.tolerance <= now
        tats.append(tat)
        news.append(new)
        fits.append(ok)
        if not ok and call.enforce and call.mode != RECORD:
            refused = True
    results: list[LimitResult] = []
    for call, tat, new, ok in zip(calls, tats, news, fits, strict=True):
        after = tat
        if call.mode == RECORD:
            if call.backoff > 0:
                new = min(new, now + call.tolerance + call.backoff)
            put(call.key, new)
            after = new
            ok = True
        elif call.mode == CONSUME:
            if ok and not refused:
                put(call.key, new)
                after = new
        elif not ok and call.backoff > 0:  # a refused check, with backoff: the attempt counts
            new = min(new, now + call.tolerance + call.backoff)
            if new > tat:
                put(call.key, new)
                after = new
        results.append(_result(call, now, after, ok))
    return results


def _result(call: LimitCall, now: float, after: float, ok: bool) -> LimitResult:
    ahead = after - now
    remaining = math.floor((call.tolerance - ahead) / call.interval + 1e-9)
    retry = 0.0 if ok else max(0.0, after + call.cost * call.interval - call.tolerance - now)
    return LimitResult(ok, remaining if remaining > 0 else 0, retry, ahead if ahead > 0 else 0.0)


class MemoryStore:
    """GCRA state of this process: one float per key in a dict."""

    def __init__(self, max_keys: int = 1_000_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self.tats: dict[str, float] = {}
        self._sweep_at = min(max_keys, 65_536)

    def decide(self, calls: Sequence[LimitCall], now: float | None = None) -> list[LimitResult]:
        if now is None:
            now = self.clock()
        tats = self.tats
        if len(calls) == 1:  # the common case, without the general bookkeeping
            call = calls[0]
            if call.mode == CONSUME:
                stored = tats.get(call.key)
                tat = now if stored is None or stored < now else stored
                new = tat + call.cost * call.interval
                if new - call.tolerance <= now:
                    tats[call.key] = new
                    if len(tats) > self._sweep_at:
                        self.sweep(now)
                    ahead = new - now
                    remaining = math.floor((call.tolerance - ahead) / call.interval + 1e-9)
                    return [LimitResult(True, remaining if remaining > 0 else 0, 0.0, ahead)]
                return [_result(call, now, tat, False)]
        results = decide_calls(calls, now, tats.get, tats.__setitem__)
        if len(tats) > self._sweep_at:
            self.sweep(now)
        return results

    def sweep(self, now: float) -> None:
        """Forget keys whose budget is whole again; past ``max_keys``, forget the oldest."""
        tats = self.tats
        for key in [k for k, tat in tats.items() if tat <= now]:
            del tats[key]
        if len(tats) > self.max_keys:  # drop the oldest tenth, so that the next sweep is far
            for key in list(tats)[: len(tats) - self.max_keys * 9 // 10]:
                del tats[key]
        self._sweep_at = min(self.max_keys, max(65_536, 2 * len(tats)))
