"""The lifecycle of one issuer's JSON Web Key Set, as data (RFC 7517 §5, RFC 9111).

Theory of operation
-------------------
The gateway must verify tokens with the issuer's current keys, survive key
rotation and an issuer outage, and never be turned into a fetch amplifier.
:class:`KeySetState` holds the keys and the clock facts; the adapter does
the fetching and reports back (:meth:`fetched`, :meth:`failed`). Rules:

1. *Freshness.* A fetched set is fresh for its ``Cache-Control: max-age``
   clamped to ``[min_ttl, max_ttl]`` (``default_ttl`` without one). A
   background task refetches it when it goes stale (:meth:`refresh_due`).
2. *Rotation.* A token whose ``kid`` is unknown may trigger one refetch, at
   most once per ``refresh_cooldown`` however many unknown kids arrive
   (:meth:`begin_unknown_kid_fetch`); requests arriving while that fetch is
   in flight wait for it instead of starting another.
3. *Outage.* When fetching fails, the last good set keeps serving for
   ``stale_if_error`` past its freshness (RFC 5861 §4), then tokens are
   refused (fail closed). Failed fetches back off exponentially.
4. *Vetting.* A set that fails import (weak keys, private members,
   duplicate kids...) counts as a failed fetch: the previous set stays.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["KeySetState", "max_age"]

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?([0-9]+)\"?", re.IGNORECASE)


def max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    if re.search(r"(?:^|,)\s*no-(?:store|cache)\b", cache_control, re.IGNORECASE):
        return 0.0
    m = _MAX_AGE.search(cache_control)
    return float(m.group(1)) if m else None


@dataclass
class KeySetState:
    issuer: str
    min_ttl: float
    max_ttl: float
    default_ttl: float
    cooldown: float
    stale_if_error: float
    keys: Any = None  # apishield.jose KeySet
    fresh_until: float = -math.inf
    next_attempt: float = -math.inf
    unknown_kid_fetch_at: float = -math.inf
    in_flight: bool = False
    failures: int = 0  # consecutive, reset by a good fetch (drives the backoff)
    fetches: int = 0  # every fetch reported, good or failed
    fetch_failures: int = 0  # every failed fetch since start (for metrics)
    last_error: str | None = None

    def usable(self, now: float) -> Any:
        """The key set if it may still be used (fresh, or stale within ``stale_if_error``)."""
        if self.keys is not None and now <= self.fresh_until + self.stale_if_error:
            return self.keys
        return None

    def refresh_due(self, now: float) -> bool:
        return not self.in_flight and now >= self.next_attempt and now >= self.fresh_until

    def begin_unknown_kid_fetch(self, now: float) -> bool:
        """May an unknown ``kid`` trigger a fetch now? Marks the cooldown when it may."""
        if self.in_flight:
            return True  # join the fetch in flight
        if now - self.unknown_kid_fetch_at < self.cooldown:
            return False
        self.unknown_kid_fetch_at = now
        return True

    def fetched(self, keys: Any, cache_control: str | None, now: float) -> None:
        age = max_age(cache_control)
        ttl = self.default_ttl if age is None else min(max(age, self.min_ttl), self.max_ttl)
        self.keys = keys
        self.fresh_until = now + ttl
        self.next_attempt = now + ttl
        self.failures = 0
        self.fetches += 1
        self.last_error = None

    def failed(self, reason: str, now: float) -> None:
        self.failures += 1
        self.fetches += 1
        self.fetch_failures += 1
        self.last_error = reason
        backoff = min(self.min_ttl, 2.0 ** min(self.failures, 6))
        self.next_attempt = now + backoff
