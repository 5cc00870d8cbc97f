"""The audit writer with real sinks and a real journal: load, spill, replay, stop, overflow, taps.

Counts are exact: every event emitted is in the sink once, however it got
there. A sink is made unavailable the honest way: its folder is a file, so
SQLite cannot create the database; removing the file brings it back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.audit.support import api_event, auth_event, event_stream, uids, until

from apishield.audit.chain import verify
from apishield.audit.journal import Journal
from apishield.audit.query import chain_rows
from apishield.audit.record import parse_line
from apishield.audit.sinks.jsonl import JSONLSink
from apishield.audit.sinks.sqlite import SQLiteSink
from apishield.audit.stores import JSONLStore
from apishield.audit.writer import AuditSetupError, AuditUnavailable, AuditWriter
from apishield.config.audit import AuditPolicy
from apishield.core.stages.audit import AuditQueue


def stored_uids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT uid FROM audit_events")]


def journal_uids(folder: Path) -> list[str]:
    out = []
    for segment in sorted(folder.glob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            text, _ = parse_line(line)
            out.append(orjson.loads(text)["metadata"]["uid"])
    return out


def writer_for(tmp: Path, queue: AuditQueue, db: Path | None = None, **options: Any) -> AuditWriter:
    options.setdefault("flush_interval", 0.01)
    options.setdefault("batch_size", 250)
    options.setdefault("retry_initial", 0.02)
    options.setdefault("retry_max", 0.05)
    return AuditWriter(queue, SQLiteSink(db or tmp / "audit.db"), Journal(tmp / "journal"), **options)


async def emit(queue: AuditQueue, events: list[dict], yield_every: int = 100) -> None:
    for i, event in enumerate(events):
        queue.emit(event)
        if i % yield_every == 0:
            await asyncio.sleep(0)


def test_events_under_load_reach_sqlite_exactly_once(tmp_path: Path) -> None:
    events = list(event_stream(20_000))

    async def scenario() -> AuditWriter:
        queue = AuditQueue(max_pending=5_000)
        writer = writer_for(tmp_path, queue)
        await writer.start()
        await emit(queue, events)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    stored = stored_uids(tmp_path / "audit.db")
    assert len(stored) == 20_000 and set(stored) == uids(events)
    stats = writer.stats
    assert stats.written == 20_000 and stats.dropped == 0 and stats.queue_depth == 0
    assert stats.batches >= 20_000 // 250
    assert list((tmp_path / "journal").glob("*")) == []


def test_a_sink_down_at_start_spills_then_replays_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "down"
    blocker.write_text("a file where the database folder should be")
    db = blocker / "audit.db"
    first, second = list(event_stream(3_000)), list(event_stream(1_000))

    async def scenario() -> AuditWriter:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, db, batch_size=100)
        await writer.start()
        assert not writer.stats.sink_up
        await emit(queue, first)
        await until(lambda: writer.stats.spilled == 3_000, "every event is in the journal")
        assert writer.stats.written == 0
        assert len(journal_uids(tmp_path / "journal")) == 3_000
        blocker.unlink()
        await until(lambda: writer.stats.written == 3_000, "the journal is replayed")
        await emit(queue, second)
        await writer.stop()
        return writer

    with caplog.at_level(logging.ERROR, logger="apishield.audit"):
        writer = asyncio.run(scenario())
    stored = stored_uids(db)
    assert len(stored) == 4_000 and set(stored) == uids(first) | uids(second)
    stats = writer.stats
    assert (stats.written, stats.spilled, stats.replayed, stats.dropped) == (4_000, 3_000, 3_000, 0)
    starts = [r.getMessage() for r in caplog.records if "unavailable at start" in r.getMessage()]
    assert len(starts) == 1 and "audit.path" in starts[0] and str(db) in starts[0]


def test_a_stop_writes_everything_queued(tmp_path: Path) -> None:
    events = list(event_stream(5_000))

    async def scenario() -> None:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, flush_interval=3600)  # only the stop writes
        await writer.start()
        await emit(queue, events)
        assert writer.stats.written == 0
        await writer.stop()

    asyncio.run(scenario())
    assert sorted(stored_uids(tmp_path / "audit.db")) == sorted(uids(events))


def test_a_stop_with_the_sink_down_keeps_everything_for_the_next_start(tmp_path: Path) -> None:
    blocker = tmp_path / "down"
    blocker.write_text("")
    db = blocker / "audit.db"
    events = list(event_stream(2_000))

    async def first_run() -> None:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, db, flush_interval=3600)
        await writer.start()
        await emit(queue, events)
        await writer.stop()

    async def second_run() -> AuditWriter:
        writer = writer_for(tmp_path, AuditQueue(), db)
        await writer.start()
        await until(lambda: writer.stats.written == 2_000, "the previous run's journal is replayed")
        await writer.stop()
        return writer

    asyncio.run(first_run())
    assert sorted(journal_uids(tmp_path / "journal")) == sorted(uids(events))
    blocker.unlink()
    writer = asyncio.run(second_run())
    assert sorted(stored_uids(db)) == sorted(uids(events))
    assert writer.stats.replayed == 2_000
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_a_full_queue_spills_instead_of_dropping(tmp_path: Path) -> None:
    events = list(event_stream(5_000))

    async def scenario() -> tuple[AuditQueue, AuditWriter]:
        queue = AuditQueue(max_pending=100)
        writer = writer_for(tmp_path, queue, flush_interval=3600, batch_size=50)
        await writer.start()
        await emit(queue, events, yield_every=37)
        await writer.stop()
        return queue, writer

    queue, writer = asyncio.run(scenario())
    assert queue.dropped == 0
    assert sorted(stored_uids(tmp_path / "audit.db")) == sorted(uids(events))
    assert writer.stats.written == 5_000 and writer.stats.dropped == 0


def test_taps_see_every_batch_and_a_failing_tap_stops_nothing(tmp_path: Path) -> None:
    events = list(event_stream(3_000))
    seen: list[int] = []

    def counting(batch: list[dict]) -> None:
        seen.append(len(batch))

    def failing(batch: list[dict]) -> None:
        raise RuntimeError("a detector bug")

    async def scenario() -> AuditWriter:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, batch_size=400)
        writer.taps += [failing, counting]
        await writer.start()
        await emit(queue, events)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    assert sum(seen) == 3_000 and max(seen) <= 400
    assert writer.stats.tap_errors == len(seen)
    assert len(stored_uids(tmp_path / "audit.db")) == 3_000


def test_authentication_events_go_through_the_same_writer(tmp_path: Path) -> None:
    events = [auth_event(i, success=i % 4 != 0) for i in range(40)] + [api_event(i) for i in range(40)]

    async def scenario() -> None:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue)
        await writer.start()
        await emit(queue, events)
        await writer.stop()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        rows = dict(
            conn.execute("SELECT class_uid, COUNT(*) FROM audit_events GROUP BY class_uid").fetchall()
        )
        failures = conn.execute("SELECT COUNT(*) FROM audit_events WHERE action = 'failure'").fetchone()[0]
    assert rows == {3002: 40, 6003: 40} and failures == 10


def test_events_without_uid_or_time_get_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue)
        await writer.start()
        queue.emit({"class_uid": 6003, "message": "hand-made"})
        queue.emit({"class_uid": 6003, "metadata": {"version": "1.8.0"}})
        await writer.stop()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        rows = conn.execute("SELECT uid, time_ms FROM audit_events").fetchall()
    assert len(rows) == 2 and all(len(uid) == 32 and t > 0 for uid, t in rows)


def test_the_jsonl_sink_with_tamper_evidence_writes_a_verifiable_chain(tmp_path: Path) -> None:
    events = list(event_stream(1_500, instance="gw-a")) + list(event_stream(500, instance="gw-b"))
    path = tmp_path / "audit.jsonl"

    async def scenario() -> None:
        queue = AuditQueue()
        writer = AuditWriter(
            queue,
            JSONLSink(path),
            Journal(tmp_path / "journal"),
            flush_interval=0.01,
            batch_size=300,
            tamper_evidence=True,
            instance="gw-a",
        )
        await writer.start()
        await emit(queue, events)
        await writer.stop()

    async def check() -> Any:
        return verify([row async for row in chain_rows(JSONLStore(path))])

    asyncio.run(scenario())
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2_000 and all(line.startswith(b'{"seq":') for line in lines)
    result = asyncio.run(check())
    assert result.ok and result.checked == 2_000 and set(result.instances) == {"gw-a", "gw-b"}


def test_acknowledged_events_are_in_the_synced_journal_when_durable_returns(tmp_path: Path) -> None:
    blocker = tmp_path / "down"
    blocker.write_text("")  # the sink is down: acknowledged events can only be in the journal

    async def request(queue: AuditQueue, writer: AuditWriter, i: int) -> str:
        event = api_event(i)
        queue.emit(event)
        await writer.durable()
        return str(event["metadata"]["uid"])

    async def scenario() -> tuple[list[str], AuditWriter]:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, blocker / "audit.db", durability="acknowledged")
        await writer.start()
        acked = await asyncio.gather(*(request(queue, writer, i) for i in range(500)))
        on_disk = journal_uids(tmp_path / "journal")
        assert sorted(on_disk) == sorted(acked)
        await writer.stop()
        return acked, writer

    acked, writer = asyncio.run(scenario())
    assert writer.stats.acknowledged == 500 and writer.stats.spilled == 0
    assert writer.stats.written == 0 and sorted(journal_uids(tmp_path / "journal")) == sorted(acked)


def test_acknowledged_durability_with_the_sink_up(tmp_path: Path) -> None:
    async def request(queue: AuditQueue, writer: AuditWriter, i: int) -> str:
        event = api_event(i)
        queue.emit(event)
        await writer.durable()
        return str(event["metadata"]["uid"])

    async def scenario() -> list[str]:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, durability="acknowledged")
        await writer.start()
        acked: list[str] = []
        for wave in range(10):
            acked += await asyncio.gather(*(request(queue, writer, wave * 100 + i) for i in range(100)))
        await writer.stop()
        assert writer.stats.acknowledged == 1_000 and writer.stats.written == 1_000
        return acked

    acked = asyncio.run(scenario())
    assert sorted(stored_uids(tmp_path / "audit.db")) == sorted(acked)
    assert list((tmp_path / "journal").glob("*.jsonl")) == []


def test_durable_raises_when_the_journal_cannot_take_the_events(tmp_path: Path) -> None:
    blocker = tmp_path / "down"
    blocker.write_text("")

    async def scenario() -> AuditWriter:
        queue = AuditQueue()
        writer = AuditWriter(
            queue,
            SQLiteSink(blocker / "audit.db"),
            Journal(tmp_path / "journal", max_bytes=20_000),
            durability="acknowledged",
            flush_interval=3600,
        )
        await writer.start()
        queue.emit(api_event(1))
        await writer.durable()  # fits
        for i in range(40):
            queue.emit(api_event(i))
        with pytest.raises(AuditUnavailable):
            await writer.durable()
        queue.emit(api_event(99))
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    assert writer.stats.acknowledged == 2 and writer.stats.dropped == 40  # the last one at stop


def test_from_policy_resolves_paths_against_the_policy_folder(tmp_path: Path) -> None:
    queue = AuditQueue()
    off = AuditWriter.from_policy(queue, AuditPolicy(sink="off"), tmp_path, "gw")
    assert off is None
    writer = AuditWriter.from_policy(queue, AuditPolicy(path="data/audit.db"), tmp_path, "gw")
    assert writer is not None and writer.journal is not None
    assert isinstance(writer.sink, SQLiteSink) and writer.sink.path == tmp_path / "data" / "audit.db"
    assert writer.journal.directory == tmp_path / "data" / "audit.db.journal"
    jsonl = AuditWriter.from_policy(
        queue, AuditPolicy(sink="jsonl", path="-", journal="spill"), tmp_path, "gw"
    )
    assert jsonl is not None and jsonl.journal is not None and jsonl.journal.directory == tmp_path / "spill"
    with pytest.raises(AuditSetupError, match=r"audit\.dsn: schema='Bad-Name'"):
        AuditWriter.from_policy(
            queue,
            AuditPolicy(sink="postgresql", dsn="postgresql://127.0.0.1/x?schema=Bad-Name"),
            tmp_path,
            "gw",
        )


def test_acknowledged_durability_refuses_to_start_without_a_usable_journal(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    policy = AuditPolicy(durability="acknowledged", journal="file/journal")
    writer = AuditWriter.from_policy(AuditQueue(), policy, tmp_path, "gw")
    assert writer is not None
    with pytest.raises(AuditSetupError, match=r"audit\.journal: cannot use the audit journal folder"):
        asyncio.run(writer.start())


def test_cancelled_requests_do_not_cancel_the_commit(tmp_path: Path) -> None:
    """A client that goes away while its request awaits durable() must not cost anyone's event."""
    events = [api_event(i) for i in range(300)]

    async def request(queue: AuditQueue, writer: AuditWriter, event: dict) -> None:
        queue.emit(event)
        await writer.durable()

    async def scenario() -> AuditWriter:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, durability="acknowledged")
        await writer.start()
        tasks = [asyncio.create_task(request(queue, writer, e)) for e in events]
        await asyncio.sleep(0)  # every request has emitted and is waiting for the commit
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    assert sorted(stored_uids(tmp_path / "audit.db")) == sorted(uids(events))
    assert writer.stats.acknowledged == 300


def test_durable_fails_closed_when_the_writer_is_not_running(tmp_path: Path) -> None:
    async def scenario() -> None:
        queue = AuditQueue()
        writer = writer_for(tmp_path, queue, durability="acknowledged")
        with pytest.raises(AuditUnavailable, match="not running"):
            await writer.durable()
        await writer.start()
        queue.emit(api_event(1))
        queue.drain()  # someone else took the event: nothing left to wait for
        await writer.durable()
        await writer.stop()
        with pytest.raises(AuditUnavailable):
            await writer.durable()
        buffered = writer_for(tmp_path / "b", AuditQueue())
        await buffered.durable()  # buffered durability: nothing to wait for, running or not

    asyncio.run(scenario())
