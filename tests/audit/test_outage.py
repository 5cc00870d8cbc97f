"""PostgreSQL goes away under load and comes back: every event is stored exactly once.

The server is a private cluster (``tests/audit/conftest.py``), so stopping it
touches nobody else. ``pg_ctl stop -m immediate`` cuts every connection in
the middle of whatever it was doing, including a batch's transaction, and
refuses new ones until it is started again. Events keep coming the whole
time; the writer spills them to its journal while the server is away,
reconnects with backoff, and replays. The count at the end is exact.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from tests.audit.support import PrivateCluster, event_stream, uids, until

from apishield.audit.journal import Journal
from apishield.audit.sinks.postgres import PostgresSink
from apishield.audit.writer import AuditWriter
from apishield.core.stages.audit import AuditQueue

pytestmark = pytest.mark.postgres


async def fetch(dsn: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def test_an_outage_under_load_loses_and_duplicates_nothing(
    private_postgres: PrivateCluster, tmp_path: Path
) -> None:
    cluster = private_postgres
    schema = f"outage_{os.urandom(4).hex()}"
    events = list(event_stream(12_000))
    emitted: list[dict] = []

    async def produce(queue: AuditQueue, chunk: list[dict]) -> None:
        for i, event in enumerate(chunk):
            queue.emit(event)
            emitted.append(event)
            if i % 50 == 0:
                await asyncio.sleep(0.001)

    async def scenario() -> AuditWriter:
        queue = AuditQueue(max_pending=2_000)
        sink = PostgresSink(f"{cluster.dsn}?schema={schema}", connect_timeout=2, command_timeout=10)
        writer = AuditWriter(
            queue,
            sink,
            Journal(tmp_path / "journal"),
            flush_interval=0.01,
            batch_size=200,
            tamper_evidence=True,
            retry_initial=0.05,
            retry_max=0.2,
        )
        await writer.start()
        assert writer.stats.sink_up
        await produce(queue, events[:3_000])
        # the server goes away while events keep coming
        load = asyncio.create_task(produce(queue, events[3_000:6_000]))
        await asyncio.to_thread(cluster.stop)
        await load
        load = asyncio.create_task(produce(queue, events[6_000:9_000]))  # these cannot be written
        await until(lambda: not writer.stats.sink_up, "the writer noticed the outage")
        await load
        await until(lambda: writer.stats.spilled > 0 and writer.stats.queue_depth == 0, "events spilled")
        during = writer.stats
        # and comes back, still under load
        load = asyncio.create_task(produce(queue, events[9_000:]))
        await asyncio.to_thread(cluster.start)
        await load

        def caught_up() -> bool:
            stats = writer.stats
            return stats.sink_up and stats.journal_bytes == 0 and stats.queue_depth == 0

        await until(caught_up, "the journal is replayed")
        await writer.stop()
        assert not during.sink_up and during.spilled >= 3_000
        return writer

    writer = asyncio.run(scenario())
    assert len(emitted) == 12_000
    rows = asyncio.run(fetch(cluster.dsn, f'SELECT uid FROM "{schema}".audit_events'))
    stored = [r[0] for r in rows]
    assert len(stored) == 12_000, f"{len(stored)} rows for 12000 events"
    assert set(stored) == uids(events)
    stats = writer.stats
    assert stats.dropped == 0 and stats.replayed == stats.spilled and stats.replayed >= 3_000
    # the chain survives the outage too: no link is missing
    from apishield.audit.chain import verify
    from apishield.audit.query import chain_rows
    from apishield.audit.stores import PostgresStore

    async def check() -> Any:
        store = PostgresStore(f"{cluster.dsn}?schema={schema}")
        try:
            return verify([row async for row in chain_rows(store)])
        finally:
            await store.close()

    result = asyncio.run(check())
    assert result.ok and result.checked == 12_000 and result.runs == 1
    asyncio.run(fetch(cluster.dsn, f'DROP SCHEMA "{schema}" CASCADE'))
