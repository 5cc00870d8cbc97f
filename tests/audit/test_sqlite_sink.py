"""The SQLite sink on a real file: WAL, a replayed batch stored once, retention."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from tests.audit.support import DAY_MS, api_event

from apishield.audit.journal import Journal
from apishield.audit.record import encode
from apishield.audit.sinks import SinkError
from apishield.audit.sinks.sqlite import SQLiteSink
from apishield.audit.writer import AuditWriter
from apishield.core.stages.audit import AuditQueue


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0])


def test_a_replayed_batch_is_stored_once_in_a_wal_database(tmp_path: Path) -> None:
    events = [api_event(i) for i in range(100)]
    encoded = [encode(e)[1] for e in events]

    async def scenario() -> None:
        sink = SQLiteSink(tmp_path / "deep" / "audit.db")
        await sink.open()
        await sink.write(events, encoded)
        await sink.write(events[40:], encoded[40:])
        await sink.close()

    asyncio.run(scenario())
    db = tmp_path / "deep" / "audit.db"
    assert count(db) == 100
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        text, objects = conn.execute(
            "SELECT event, object_ids FROM audit_events WHERE uid = ?", (events[7]["metadata"]["uid"],)
        ).fetchone()
    assert text.encode() == encoded[7][:-1]
    assert objects == f'["{events[7]["resources"][0]["uid"]}"]'


def test_an_unusable_path_is_a_sink_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    sink = SQLiteSink(tmp_path / "file" / "audit.db")
    with pytest.raises(SinkError, match=r"cannot open the SQLite database .*file/audit\.db"):
        asyncio.run(sink.open())


def test_retention_deletes_old_events(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    old = [api_event(i, time_ms=now - 10 * DAY_MS - i) for i in range(25_000)]
    recent = [api_event(i, time_ms=now - DAY_MS // 2) for i in range(30)]

    async def scenario() -> None:
        sink = SQLiteSink(tmp_path / "audit.db")
        await sink.open()
        await sink.write(old + recent, [encode(e)[1] for e in old + recent])
        await sink.close()
        writer = AuditWriter(
            AuditQueue(), SQLiteSink(tmp_path / "audit.db"), Journal(tmp_path / "j"), retention=86_400
        )
        await writer.start()
        await writer.flush()
        await writer.stop()

    asyncio.run(scenario())
    assert count(tmp_path / "audit.db") == 30
