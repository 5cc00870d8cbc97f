"""Cheap baselines for streaming detectors: EWMA, log-binned quantiles, bounded keyed state.

Everything here is updated when a window closes, not per event: detectors
count with integers per event and fold the finished window into a baseline
once per window, so a baseline's cost is amortised over the events of the
window.

* :class:`Ewma`: exponentially weighted mean and variance of a series
  (``mean += a*d``, ``var = (1-a)*(var + a*d*d)``; West 1979, Finch 2009),
  which forgets after about ``1/a`` observations. The variance starts at the
  first value, as for a Poisson count, so early thresholds are not degenerate.
* :class:`Quantiles`: a histogram whose bins grow by a factor of 2^(1/4)
  (about 19 %), so any quantile of counts is known to within a bin with 96
  floats of memory, whatever the range. Bins are halved every ``half_life``
  observations so the distribution follows the traffic. The requested
  quantile is recomputed every ``refresh`` observations (every 16 while the
  histogram is young) and cached, so an observation costs a table lookup
  and an increment.
  Returning a bin's upper edge errs on the high side, which for a threshold
  means fewer false alerts.
* :class:`KeyedStates`: per-key state in a plain dict, bounded twice: keys not
  seen for ``idle_ms`` are dropped by :meth:`KeyedStates.sweep` (the engine
  calls it a few times per idle period, so the sweep's cost is amortised over
  the events in between), and beyond ``max_keys`` the oldest keys are
  evicted with a second chance (a key seen recently is moved to the back
  instead, up to eight tries): an approximation of LRU that does not reorder
  the dict on every hit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["Ewma", "KeyedStates", "Quantiles", "Seen"]

_BINS = 96  # 2^(95/4): counts up to ~14 billion


class Ewma:
    """Exponentially weighted mean and variance of a series, with the number of observations."""

    __slots__ = ("alpha", "mean", "n", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def add(self, x: float) -> None:
        if self.n == 0:
            self.mean = float(x)
            self.var = float(x)
        else:
            a = self.alpha
            d = x - self.mean
            self.mean += a * d
            self.var = (1.0 - a) * (self.var + a * d * d)
        self.n += 1

    def decay(self, steps: int) -> None:
        """Fold ``steps`` observations of zero (idle periods of a series that is always on)."""
        if self.n == 0 or steps <= 0:
            self.n += max(steps, 0)
            return
        for _ in range(min(steps, 400)):
            self.add(0.0)
        self.n += max(steps - 400, 0)

    def high(self, sigmas: float) -> float:
        """``mean + sigmas * sd``; the standard deviation is at least that of a Poisson count."""
        return self.mean + sigmas * math.sqrt(max(self.var, self.mean))


def _bin(x: float) -> int:
    if x <= 0:
        return 0
    return min(_BINS - 1, int(math.log2(x) * 4.0) + 1)


_SMALL = [_bin(i) for i in range(1024)]  # the bins of small integer counts, without a log2


def _edge(i: int) -> float:
    return 0.0 if i == 0 else 2.0 ** (i / 4.0)


class Quantiles:
    """One quantile of a stream of non-negative counts, from a log-binned, slowly decaying histogram."""

    __slots__ = ("_since", "bins", "half_life", "q", "refresh", "seen", "value", "weight")

    def __init__(self, q: float = 0.99, refresh: int = 256, half_life: int = 20_000) -> None:
        self.q = q
        self.refresh = refresh
        self.half_life = half_life
        self.bins = [0.0] * _BINS
        self.weight = 0.0
        self.seen = 0  # observations ever, for warm-up (not decayed)
        self.value = 0.0
        self._since = 0

    def add(self, x: int) -> None:
        self.bins[_SMALL[x] if 0 <= x < 1024 else _bin(x)] += 1.0
        self.weight += 1.0
        self.seen += 1
        self._since += 1
        if self._since >= self.refresh or (self._since >= 16 and self.seen <= 4 * self.refresh):
            # every `refresh` observations; more often while the histogram is young
            self._since = 0
            if self.weight >= self.half_life * 2:
                self.bins = [b / 2.0 for b in self.bins]
                self.weight /= 2.0
            self.value = self.quantile(self.q)

    def quantile(self, q: float) -> float:
        """The upper edge of the bin holding quantile ``q`` (0 with no data)."""
        if self.weight <= 0:
            return 0.0
        target = q * self.weight
        acc = 0.0
        for i, count in enumerate(self.bins):
            acc += count
            if acc >= target and count > 0:
                return _edge(i)
        return _edge(_BINS - 1)


class Seen(Protocol):
    seen: int


S = TypeVar("S", bound=Seen)
K = TypeVar("K")


class KeyedStates(Generic[K, S]):
    """Per-key state bounded by idleness and by count (approximate LRU with a second chance)."""

    __slots__ = ("_grace", "data", "evicted", "max_keys")

    def __init__(self, max_keys: int, idle_ms: int) -> None:
        self.data: dict[K, S] = {}
        self.max_keys = max_keys
        self.evicted = 0
        self._grace = max(idle_ms // 8, 1)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[K]:
        return iter(self.data)

    def admit(self, key: K, state: S) -> S:
        """Store a new key's state, evicting if the bound is reached; returns ``state``."""
        data = self.data
        if len(data) >= self.max_keys:
            self._evict(state.seen)
        data[key] = state
        return state

    def _evict(self, now: int) -> None:
        data = self.data
        for _ in range(8):
            key = next(iter(data))
            state = data.pop(key)
            if now - state.seen >= self._grace:
                self.evicted += 1
                return
            data[key] = state  # second chance: to the back
        key = next(iter(data))
        del data[key]
        self.evicted += 1

    def sweep(self, cutoff: int, also: Callable[[K], None] | None = None) -> int:
        """Drop every key last seen before ``cutoff``; returns how many."""
        data = self.data
        stale = [k for k, s in data.items() if s.seen < cutoff]
        for k in stale:
            del data[k]
            if also is not None:
                also(k)
        self.evicted += len(stale)
        return len(stale)
