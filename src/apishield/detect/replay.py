"""``apishield detect replay``: stored audit events through the detectors (backfill, tuning, forensics).

The engine judges in event time (:mod:`apishield.detect.engine`), so
replaying a store gives the signals the live stream gave, or would have
given with other settings: tune a threshold, replay last week, compare.

Events are read in time order from the stores of :mod:`apishield.audit.stores`:
a SQLite or PostgreSQL ``audit_events`` table (the ``event`` column, pages
of a few thousand rows by ``(time_ms, uid)``, so memory stays flat), or a
JSON-lines file (in file order, which is the writer's order; a record
repeated by a replayed batch is read once). ``since_ms``/``until_ms`` bound
the events by time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import orjson

from apishield.audit.stores import EventStore, JSONLStore, SQLStore
from apishield.detect.engine import DetectionEngine
from apishield.detect.signal import Signal

__all__ = ["replay", "stored_events"]

PAGE = 5000


async def stored_events(
    store: EventStore, since_ms: int | None = None, until_ms: int | None = None, page: int = PAGE
) -> AsyncIterator[dict[str, Any]]:
    """The store's events in time order (``since_ms`` inclusive, ``until_ms`` exclusive)."""
    if isinstance(store, JSONLStore):
        for stored in store.events():
            if since_ms is not None and stored.time_ms < since_ms:
                continue
            if until_ms is not None and stored.time_ms >= until_ms:
                continue
            yield stored.event()
        return
    async for event in _sql_events(store, since_ms, until_ms, page):
        yield event


async def _sql_events(
    store: SQLStore, since_ms: int | None, until_ms: int | None, page: int
) -> AsyncIterator[dict[str, Any]]:
    def ph(n: int) -> str:
        return "?" if store.dialect == "sqlite" else f"${n}"

    last_time = (since_ms - 1) if since_ms is not None else -(2**62)
    last_uid = ""
    until = until_ms if until_ms is not None else 2**62
    while True:
        sql = (
            f"SELECT time_ms, uid, event FROM {store.table} "
            f"WHERE (time_ms > {ph(1)} OR (time_ms = {ph(2)} AND uid > {ph(3)})) AND time_ms < {ph(4)} "
            f"ORDER BY time_ms, uid LIMIT {int(page)}"
        )
        rows = await store.fetch(sql, [last_time, last_time, last_uid, until])
        for time_ms, uid, text in rows:
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield event
            last_time, last_uid = time_ms, uid
        if len(rows) < page:
            return


def _batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def replay(
    events: Iterable[dict[str, Any]], engine: DetectionEngine | None = None, batch: int = 1000
) -> Iterator[Signal]:
    """Run ``events`` (in time order) through ``engine`` (a new default one if None); yields signals."""
    engine = engine if engine is not None else DetectionEngine()
    for chunk in _batches(events, batch):
        yield from engine.observe(chunk)
