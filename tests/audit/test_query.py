"""The query layer on SQLite, JSON lines and PostgreSQL holding the same events: same answers everywhere.

Expected answers are computed in the test from the events themselves (their
columns), then compared with what each store returns: every filter, the
pagination (all events, once each, newest first) and the counts.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.audit.support import api_event, auth_event
from tests.services import POSTGRES_DSN, _reachable

from apishield.audit.chain import verify
from apishield.audit.columns import COLUMNS, columns
from apishield.audit.journal import Journal
from apishield.audit.query import Cursor, EventQuery, chain_rows, search, stats
from apishield.audit.sinks import Sink
from apishield.audit.sinks.jsonl import JSONLSink
from apishield.audit.sinks.postgres import PostgresSink
from apishield.audit.sinks.sqlite import SQLiteSink
from apishield.audit.stores import EventStore, JSONLStore, PostgresStore, SQLiteStore
from apishield.audit.writer import AuditWriter
from apishield.core.stages.audit import AuditQueue

START = 1_730_000_000_000  # 2024-10-27T03:33:20Z
KINDS = ["sqlite", "jsonl", "postgresql"]


def make_events() -> list[dict]:
    events = [api_event(i, time_ms=START + i * 20_000) for i in range(700)]  # ~3.9 hours
    events += [auth_event(i, success=i % 3 != 0, time_ms=START + i * 77_000 + 5) for i in range(60)]
    # two events in the same millisecond: the uid breaks the tie
    events += [api_event(10_000 + i, time_ms=START + 999) for i in range(2)]
    return events


def row(event: dict) -> dict[str, Any]:
    return dict(zip(COLUMNS, columns(event), strict=True))


def write(sink: Sink, events: list[dict], folder: Path) -> None:
    async def go() -> None:
        queue = AuditQueue()
        writer = AuditWriter(
            queue, sink, Journal(folder), flush_interval=0.01, batch_size=100, tamper_evidence=True
        )
        await writer.start()
        for event in events:
            queue.emit(event)
        await writer.stop()
        assert writer.stats.written == len(events)

    asyncio.run(go())


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return make_events()


@pytest.fixture(scope="module")
def stores(
    events: list[dict], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Callable[[], EventStore]]]:
    tmp = tmp_path_factory.mktemp("query")
    write(SQLiteSink(tmp / "audit.db"), events, tmp / "j1")
    write(JSONLSink(tmp / "audit.jsonl"), events, tmp / "j2")
    made: dict[str, Callable[[], EventStore]] = {
        "sqlite": lambda: SQLiteStore(tmp / "audit.db"),
        "jsonl": lambda: JSONLStore(tmp / "audit.jsonl"),
    }
    schema = f"apishield_query_{os.urandom(4).hex()}"
    if _reachable("127.0.0.1", 5432):
        dsn = f"{POSTGRES_DSN}?schema={schema}"
        write(PostgresSink(dsn), events, tmp / "j3")
        made["postgresql"] = lambda: PostgresStore(dsn)
    yield made
    if "postgresql" in made:
        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(POSTGRES_DSN)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()

        asyncio.run(drop())


def store_of(stores: dict[str, Callable[[], EventStore]], kind: str) -> EventStore:
    if kind not in stores:
        from tests.services import require_postgres

        require_postgres()
    return stores[kind]()


def all_pages(store: EventStore, query: EventQuery, limit: int) -> list[str]:
    async def go() -> list[str]:
        out: list[str] = []
        cursor: Cursor | None = None
        try:
            while True:
                page = await search(store, query, limit, cursor)
                out += [e.uid for e in page.events]
                assert len(page.events) <= limit
                if page.next is None:
                    return out
                cursor = page.next
        finally:
            await store.close()

    return asyncio.run(go())


def newest_first(events: list[dict], test: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[str]:
    rows = [row(e) for e in events]
    chosen = sorted((r for r in rows if test(r)), key=lambda r: (r["time_ms"], r["uid"]), reverse=True)
    return [r["uid"] for r in chosen]


@pytest.mark.parametrize("kind", KINDS)
def test_pages_give_every_event_once_newest_first(kind: str, stores: Any, events: list[dict]) -> None:
    assert all_pages(store_of(stores, kind), EventQuery(), 47) == newest_first(events)


FILTERS: list[tuple[EventQuery, Callable[[dict[str, Any]], bool]]] = [
    (EventQuery(subject="user-3"), lambda r: r["subject"] == "user-3"),
    (EventQuery(client_id="partner-sync"), lambda r: r["client_id"] == "partner-sync"),
    (EventQuery(src_ip="198.51.100.4"), lambda r: r["src_ip"] == "198.51.100.4"),
    (EventQuery(operation="deleteCustomer"), lambda r: r["operation"] == "deleteCustomer"),
    (EventQuery(decision="denied"), lambda r: r["action"] in ("denied", "failure")),
    (EventQuery(decision="allowed"), lambda r: r["action"] in ("allowed", "success")),
    (EventQuery(status=403), lambda r: r["status"] == 403),
    (EventQuery(status="4xx"), lambda r: r["status"] is not None and 400 <= r["status"] < 500),
    (EventQuery(status="5xx"), lambda r: r["status"] is not None and r["status"] >= 500),
    (EventQuery(object_id="17"), lambda r: "17" in r["object_ids"]),
    (EventQuery(class_uid=3002), lambda r: r["class_uid"] == 3002),
    (
        EventQuery(since_ms=START + 3_600_000, until_ms=START + 7_200_000),
        lambda r: START + 3_600_000 <= r["time_ms"] < START + 7_200_000,
    ),
    (
        EventQuery(decision="denied", client_id="mobile-app", since_ms=START + 1_800_000),
        lambda r: (
            r["action"] == "denied" and r["client_id"] == "mobile-app" and r["time_ms"] >= START + 1_800_000
        ),
    ),
    (EventQuery(subject="nobody"), lambda r: False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("number", range(len(FILTERS)))
def test_filters(kind: str, number: int, stores: Any, events: list[dict]) -> None:
    query, test = FILTERS[number]
    expected = newest_first(events, test)
    assert all_pages(store_of(stores, kind), query, 500) == expected
    assert expected or query.subject == "nobody"


@pytest.mark.parametrize("kind", KINDS)
def test_counts(kind: str, stores: Any, events: list[dict]) -> None:
    rows = [row(e) for e in events]

    async def go() -> Any:
        store = store_of(stores, kind)
        try:
            return await stats(store, EventQuery(), top=3)
        finally:
            await store.close()

    result = asyncio.run(go())
    denied = [r for r in rows if r["action"] in ("denied", "failure")]
    assert (result.total.count, result.total.denied) == (len(rows), len(denied))
    assert result.total.errors == sum(1 for r in rows if (r["status"] or 0) >= 500)
    assert (result.first_ms, result.last_ms) == (
        min(r["time_ms"] for r in rows),
        max(r["time_ms"] for r in rows),
    )
    by_client = Counter(r["client_id"] for r in denied)
    assert [b.denied for b in result.by["client"]] == sorted(by_client.values(), reverse=True)[:3]
    assert {b.key: b.count for b in result.by["status"]} == dict(
        Counter(r["status"] for r in rows).most_common(3)
    )
    hours = Counter(r["time_ms"] // 3_600_000 * 3_600_000 for r in rows)
    assert [(b.key, b.count) for b in result.by["hour"]] == sorted(hours.items())
    errors = Counter(r["operation"] for r in rows if (r["status"] or 0) >= 500)
    assert result.by["operation"][0].errors == max(errors.values())


@pytest.mark.parametrize("kind", KINDS)
def test_the_chain_verifies_on_every_store(kind: str, stores: Any, events: list[dict]) -> None:
    async def go() -> Any:
        store = store_of(stores, kind)
        try:
            return verify([r async for r in chain_rows(store)])
        finally:
            await store.close()

    result = asyncio.run(go())
    assert result.ok and result.checked == len(events)
    assert set(result.instances) == {"gw-test", "issuer-test"}


def test_bad_filters_are_refused() -> None:
    with pytest.raises(ValueError):
        EventQuery(status="4x")
    with pytest.raises(ValueError):
        EventQuery(decision="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Cursor.parse("yesterday")
    assert Cursor.parse(str(Cursor(12, "ab"))) == Cursor(12, "ab")
