"""Time for the console: the ranges a page offers, times typed into filters, and counts per bucket.

A chart over one hour needs buckets of minutes; the query layer counts per
hour (``stats(by=["hour"])``). :func:`counts` therefore asks for one total
per bucket when the buckets are shorter than an hour (at most
:data:`MAX_BUCKETS` small indexed counts) and uses the hourly breakdown
otherwise. A principal whose events the query layer cannot filter (a token
fingerprint, an API key id) is counted in Python over a bounded scan
(:func:`counts_of`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apishield.audit.query import HOUR_MS, EventQuery, stats
from apishield.audit.stores import EventStore, StoredEvent
from apishield.config.duration import parse_when

__all__ = [
    "MAX_BUCKETS",
    "RANGES",
    "Range",
    "Series",
    "counts",
    "counts_of",
    "iso",
    "parse_when",
    "pick_range",
]

MAX_BUCKETS = 60
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Range:
    name: str  # what the page's selector shows and sends
    span_ms: int
    step_ms: int


RANGES: tuple[Range, ...] = (
    Range("15m", 15 * MINUTE_MS, 30_000),
    Range("1h", HOUR_MS, 2 * MINUTE_MS),
    Range("6h", 6 * HOUR_MS, 10 * MINUTE_MS),
    Range("24h", 24 * HOUR_MS, HOUR_MS),
    Range("7d", 7 * 24 * HOUR_MS, HOUR_MS),
)


def pick_range(name: str | None, default: str = "1h") -> Range:
    for candidate in RANGES:
        if candidate.name == name:
            return candidate
    return next(r for r in RANGES if r.name == default)


@dataclass
class Series:
    """Counts per bucket: ``times`` are bucket starts in epoch seconds (what uPlot plots).

    ``refused`` counts answers with a 4xx status (a 404 from the upstream
    included: what an enumeration meets); ``denied`` those the gateway denied.
    """

    times: list[int]
    total: list[int]
    refused: list[int]
    denied: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"times": self.times, "total": self.total, "refused": self.refused, "denied": self.denied}


def iso(ms: int | float | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _grid(start_ms: int, end_ms: int, step_ms: int) -> list[int]:
    first = start_ms - start_ms % step_ms
    count = min(MAX_BUCKETS * 3, max(1, -(-(end_ms - first) // step_ms)))
    return [first + i * step_ms for i in range(count)]


async def counts(store: EventStore, query: EventQuery, start_ms: int, end_ms: int, step_ms: int) -> Series:
    """Events matching ``query`` (its own time bounds replaced) per bucket of ``step_ms`` in the range."""
    grid = _grid(start_ms, end_ms, step_ms)
    hourly = step_ms >= HOUR_MS and step_ms % HOUR_MS == 0
    if not hourly:
        grid = grid[-MAX_BUCKETS:]
    total, refused, denied = [0] * len(grid), [0] * len(grid), [0] * len(grid)
    if hourly:
        index = {t: i for i, t in enumerate(grid)}
        for status, counted in ((None, total), ("4xx", refused)):
            bounded = dataclasses.replace(query, since_ms=grid[0], until_ms=grid[-1] + step_ms)
            if status is not None:
                bounded = dataclasses.replace(bounded, status=status)
            found = await stats(store, bounded, ("hour",), top=len(grid) * (step_ms // HOUR_MS))
            for bucket in found.by.get("hour", []):
                i = index.get(int(bucket.key) - int(bucket.key) % step_ms)
                if i is not None:
                    counted[i] += bucket.count
                    if status is None:
                        denied[i] += bucket.denied
    else:
        for i, t in enumerate(grid):
            bounded = dataclasses.replace(query, since_ms=t, until_ms=t + step_ms)
            found = await stats(store, bounded, (), top=1)
            total[i], denied[i] = found.total.count, found.total.denied
            if found.total.count:
                refused[i] = (await stats(store, dataclasses.replace(bounded, status="4xx"), ())).total.count
    return Series([t // 1000 for t in grid], total, refused, denied)


def counts_of(events: Iterable[StoredEvent], start_ms: int, end_ms: int, step_ms: int) -> Series:
    """The same series from events already read (a Python-filtered principal)."""
    grid = _grid(start_ms, end_ms, step_ms)[-MAX_BUCKETS * 3 :]
    total, refused, denied = [0] * len(grid), [0] * len(grid), [0] * len(grid)
    first = grid[0]
    for e in events:
        i = (e.time_ms - first) // step_ms
        if 0 <= i < len(grid):
            total[i] += 1
            refused[i] += e.status is not None and 400 <= e.status < 500
            denied[i] += e.action in ("denied", "failure")
    return Series([t // 1000 for t in grid], total, refused, denied)
