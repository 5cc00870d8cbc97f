"""The PostgreSQL sink on the shared server, each test in a schema of its own (dropped afterwards)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.audit.support import DAY_MS, api_event, event_stream, uids
from tests.services import require_postgres
from tests.support import free_port

from apishield.audit.chain import Chain
from apishield.audit.journal import Journal
from apishield.audit.record import encode
from apishield.audit.sinks import SinkError
from apishield.audit.sinks.postgres import PostgresSink, redact_dsn, split_dsn
from apishield.audit.writer import AuditWriter
from apishield.config.audit import AuditPolicy
from apishield.core.stages.audit import AuditQueue

pytestmark = pytest.mark.postgres


async def query(dsn: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    base, _ = split_dsn(dsn)
    conn = await asyncpg.connect(base)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """(dsn with ?schema=, schema)."""
    base = require_postgres()
    schema = f"apishield_audit_{os.urandom(4).hex()}"
    yield f"{base}?schema={schema}", schema
    asyncio.run(query(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def batch(events: list[dict], chained: bool = False) -> tuple[list[dict], list[bytes], list[Any] | None]:
    encoded = [encode(e)[1] for e in events]
    if not chained:
        return events, encoded, None
    chain = Chain()
    return events, encoded, [chain.link("gw-test", b[:-1]) for b in encoded]


def test_batches_land_in_daily_partitions_and_a_replay_counts_once(pg: tuple[str, str]) -> None:
    dsn, schema = pg
    day = 20_000  # 2024-10-04
    events = [api_event(i, time_ms=(day + i % 3) * DAY_MS + i) for i in range(300)]

    async def scenario() -> None:
        sink = PostgresSink(dsn)
        await sink.open()
        events_, encoded, links = batch(events, chained=True)
        await sink.write(events_, encoded, links)
        await sink.write(events_[:100], encoded[:100], links[:100] if links else None)  # replayed
        await sink.close()

    asyncio.run(scenario())
    rows = asyncio.run(query(dsn, f'SELECT COUNT(*), COUNT(DISTINCT uid) FROM "{schema}".audit_events'))
    assert tuple(rows[0]) == (300, 300)
    parts = asyncio.run(
        query(
            dsn,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
            schema,
        )
    )
    assert [r[0] for r in parts] == [
        "audit_events_20241004",
        "audit_events_20241005",
        "audit_events_20241006",
    ]
    stored = asyncio.run(
        query(
            dsn,
            f'SELECT event, seq, hash, object_ids FROM "{schema}".audit_events WHERE uid = $1',
            events[5]["metadata"]["uid"],
        )
    )[0]
    assert stored["event"].encode() == encode(events[5])[1][:-1]  # the exact text
    assert stored["seq"] is not None and len(stored["hash"]) == 64
    assert stored["object_ids"] == [events[5]["resources"][0]["uid"]]


def test_retention_drops_whole_past_days(pg: tuple[str, str]) -> None:
    dsn, schema = pg
    day = 20_000
    events = [api_event(i, time_ms=(day + i % 4) * DAY_MS + 1000) for i in range(40)]

    async def scenario() -> int:
        sink = PostgresSink(dsn)
        await sink.open()
        await sink.write(*batch(events))
        dropped = await sink.expire((day + 2) * DAY_MS + 5)  # days 0 and 1 ended before the bound
        await sink.write(*batch([api_event(99, time_ms=day * DAY_MS + 7)]))  # a late event recreates the day
        await sink.close()
        return dropped

    assert asyncio.run(scenario()) == 2
    rows = asyncio.run(
        query(
            dsn,
            f'SELECT time_ms / {DAY_MS} AS d, COUNT(*) FROM "{schema}".audit_events GROUP BY 1 ORDER BY 1',
        )
    )
    assert [tuple(r) for r in rows] == [(day, 1), (day + 2, 10), (day + 3, 10)]


def test_the_writer_under_load_stores_each_event_once(pg: tuple[str, str], tmp_path: Path) -> None:
    dsn, schema = pg
    events = list(event_stream(15_000))

    async def scenario() -> AuditWriter:
        queue = AuditQueue(max_pending=3_000)
        writer = AuditWriter.from_policy(
            queue,
            AuditPolicy(
                sink="postgresql", dsn=dsn, flush_interval=0.01, batch_size=500, tamper_evidence=True
            ),
            tmp_path,
            "gw-test",
        )
        assert writer is not None
        await writer.start()
        for i, event in enumerate(events):
            queue.emit(event)
            if i % 100 == 0:
                await asyncio.sleep(0)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    stored = asyncio.run(query(dsn, f'SELECT uid FROM "{schema}".audit_events'))
    assert len(stored) == 15_000 and {r[0] for r in stored} == uids(events)
    assert writer.stats.written == 15_000 and writer.stats.dropped == 0


def test_an_unreachable_server_at_start_is_one_clear_line_and_events_wait_in_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/audit?schema=nowhere"
    events = list(event_stream(200))

    async def scenario() -> AuditWriter:
        queue = AuditQueue()
        writer = AuditWriter(
            queue, PostgresSink(dsn, connect_timeout=1), Journal(tmp_path / "journal"), flush_interval=0.01
        )
        await writer.start()
        for event in events:
            queue.emit(event)
        await writer.stop()
        return writer

    with caplog.at_level(logging.ERROR, logger="apishield.audit"):
        writer = asyncio.run(scenario())
    assert writer.stats.written == 0 and writer.stats.spilled == 200 and not writer.stats.sink_up
    lines = sum(len(p.read_bytes().splitlines()) for p in (tmp_path / "journal").glob("*.jsonl"))
    assert lines == 200
    messages = [r.getMessage() for r in caplog.records if "unavailable at start" in r.getMessage()]
    assert len(messages) == 1 and "audit.dsn" in messages[0] and "cannot connect to PostgreSQL" in messages[0]


def test_dsn_checks_and_redaction() -> None:
    assert split_dsn("postgresql://u:p@h:5/db?schema=audit&sslmode=disable") == (
        "postgresql://u:p@h:5/db?sslmode=disable",
        "audit",
    )
    assert split_dsn("postgresql://h/db")[1] == "public"
    for bad in ("postgresql://h/db?schema=a;drop", "postgresql://h/db?schema=Audit", "mysql://h/db"):
        with pytest.raises(ValueError):
            split_dsn(bad)
    assert redact_dsn("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert "secret" not in PostgresSink("postgresql://u:secret@h/db").describe()


def test_a_write_to_a_closed_server_is_a_sink_error(tmp_path: Path) -> None:
    sink = PostgresSink(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=1)
    with pytest.raises(SinkError, match="cannot connect"):
        asyncio.run(sink.write(*batch([api_event(1)])))
