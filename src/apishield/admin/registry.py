"""Metric families with bounded label sets: counters, gauges and histograms.

A small registry instead of ``prometheus_client``, chosen by measurement
(``bench/metrics_bench.py``): the request metrics are updated from batches
of audit events, one lock per batch rather than one per observation, and
a histogram observation is a ``bisect`` and two list increments. The
registry only keeps numbers; :mod:`apishield.admin.exposition` renders them.

Label sets are tuples of strings in the order of the family's label names.
Cardinality is bounded per family: once ``max_series`` distinct label sets
exist, further new ones are counted in a single *overflow* series whose
every label is ``_overflow``, and the family's :attr:`Family.overflowed`
says how many observations went there (exported as
``apishield_metrics_overflow_total``). A dashboard thus loses detail under
a label explosion, never memory.

Histograms keep their observations in a *native unit* (microseconds for the
stage timings, milliseconds for the request latency, as the events carry
them); bucket bounds are declared in seconds and the sum is scaled to
seconds when rendered, so the exposition follows the Prometheus base-unit
convention without a division per observation.

Thread safety: every family shares its registry's lock. Writers take it
once per batch (:meth:`Registry.locked`); a scrape takes it while it copies
the numbers, so it never sees a histogram's buckets and sum from two
different moments.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

__all__ = ["OVERFLOW", "Counter", "Family", "Gauge", "Histogram", "Registry"]

OVERFLOW = "_overflow"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Labels = tuple[str, ...]


class Family:
    """One metric name with its help text, label names and series."""

    kind: ClassVar[str] = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), max_series: int = 1000) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} for {name}")
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.max_series = max_series if labels else 1
        self.overflowed = 0
        self.line_heads: dict[Labels, Any] = {}  # the exposition's formatted label sets, per series
        self._overflow_key: Labels = tuple(OVERFLOW for _ in labels)

    def snapshot(self) -> list[tuple[Labels, Any]]:
        """A copy of every series (label set and value), taken under the registry's lock."""
        return []

    def _admit(self, key: Labels, size: int) -> Labels:
        """The key to store under: ``key`` itself while there is room, else the overflow key."""
        if size < self.max_series or key == self._overflow_key:
            return key
        self.overflowed += 1
        return self._overflow_key


class Counter(Family):
    """A monotonically increasing count; rendered as ``<name>_total``.

    :meth:`inc` is for counts the registry owns; :meth:`set_total` mirrors
    a counter kept elsewhere (a cache's ``hits``), read at scrape time.
    """

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), max_series: int = 1000) -> None:
        super().__init__(name.removesuffix("_total"), help, labels, max_series)
        self.values: dict[Labels, float] = {} if labels else {(): 0}  # an unlabelled count starts at 0

    def inc(self, key: Labels = (), amount: float = 1) -> None:
        values = self.values
        if key in values:
            values[key] += amount
        else:
            key = self._admit(key, len(values))
            values[key] = values.get(key, 0) + amount

    def set_total(self, key: Labels, total: float) -> None:
        values = self.values
        if key not in values:
            key = self._admit(key, len(values))
        values[key] = total

    def snapshot(self) -> list[tuple[Labels, float]]:
        return list(self.values.items())


class Gauge(Family):
    """A value that goes up and down, set at scrape time or by its owner."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), max_series: int = 1000) -> None:
        super().__init__(name, help, labels, max_series)
        self.values: dict[Labels, float] = {}

    def set(self, key: Labels, value: float) -> None:
        values = self.values
        if key not in values:
            key = self._admit(key, len(values))
        values[key] = value

    def clear(self) -> None:
        self.values.clear()

    def snapshot(self) -> list[tuple[Labels, float]]:
        return list(self.values.items())


class Histogram(Family):
    """Observations counted into fixed buckets, with their sum.

    ``buckets`` are upper bounds in seconds (``+Inf`` is implicit);
    ``per_second`` is how many native units make a second (1e6 when
    observations are microseconds). A series is a list: index 0 holds the
    sum in native units, index ``i + 1`` the observations that fell in
    bucket ``i`` only (not cumulative; the exposition accumulates).
    """

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        per_second: float = 1.0,
        max_series: int = 1000,
    ) -> None:
        super().__init__(name, help, labels, max_series)
        bounds = list(buckets)
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be increasing and distinct")
        self.buckets = tuple(float(b) for b in bounds)
        self.per_second = per_second
        self.bounds = [round(b * per_second, 9) for b in self.buckets]
        self.series: dict[Labels, list[float]] = {}

    def observe(self, key: Labels, value: float) -> None:
        """Count one observation, in native units."""
        series = self.series.get(key)
        if series is None:
            series = self.series_for(key)
        series[bisect_left(self.bounds, value) + 1] += 1
        series[0] += value

    def series_for(self, key: Labels) -> list[float]:
        """The series of ``key`` (created, or the overflow series); callers may keep it and update it."""
        series = self.series.get(key)
        if series is not None:
            return series
        key = self._admit(key, len(self.series))
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [0] * (len(self.bounds) + 2)
        return series

    def snapshot(self) -> list[tuple[Labels, list[float]]]:
        return [(key, list(series)) for key, series in self.series.items()]


class Registry:
    """The families exposed on ``/metrics``, the collectors refreshing them, and the lock they share."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}
        self.collectors: list[Callable[[], None]] = []
        self.lock = threading.Lock()

    def add(self, family: Family) -> Family:
        if family.name in self.families:
            raise ValueError(f"metric {family.name} registered twice")
        self.families[family.name] = family
        return family

    def counter(self, name: str, help: str, labels: Sequence[str] = (), max_series: int = 1000) -> Counter:
        family = Counter(name, help, labels, max_series)
        self.add(family)
        return family

    def gauge(self, name: str, help: str, labels: Sequence[str] = (), max_series: int = 1000) -> Gauge:
        family = Gauge(name, help, labels, max_series)
        self.add(family)
        return family

    def histogram(
        self,
        name: str,
        help: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        per_second: float = 1.0,
        max_series: int = 1000,
    ) -> Histogram:
        family = Histogram(name, help, labels, buckets, per_second, max_series)
        self.add(family)
        return family

    def collector(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` (under the lock) before every scrape, to copy values kept elsewhere."""
        self.collectors.append(refresh)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock:
            yield
