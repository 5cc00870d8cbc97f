"""``apishield events``: listing with filters and pages, counts, and the chain check, through click.

The store is written by the real writer; tampering is done with plain SQL
(or by editing the JSON-lines file) the way someone with access to the store
would, and ``events verify`` must name the row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from tests.audit.support import api_event, event_stream

from apishield.audit.journal import Journal
from apishield.audit.sinks import Sink
from apishield.audit.sinks.jsonl import JSONLSink
from apishield.audit.sinks.sqlite import SQLiteSink
from apishield.audit.writer import AuditWriter
from apishield.cli.events import events as events_command
from apishield.core.stages.audit import AuditQueue


def write(sink: Sink, events: list[dict], folder: Path, chained: bool = True) -> None:
    async def go() -> None:
        queue = AuditQueue()
        writer = AuditWriter(queue, sink, Journal(folder), flush_interval=0.01, tamper_evidence=chained)
        await writer.start()
        for event in events:
            queue.emit(event)
        await writer.stop()

    asyncio.run(go())


def run(*args: str) -> Result:
    return CliRunner().invoke(events_command, list(args), catch_exceptions=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write(SQLiteSink(path), list(event_stream(400)), tmp_path / "journal")
    return path


def lines(result: Result) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_json_pages_cover_every_event_once_newest_first(db: Path) -> None:
    seen: list[dict[str, Any]] = []
    args = ["--db", str(db), "--json", "--limit", "75"]
    before: list[str] = []
    while True:
        result = run(*args, *before)
        assert result.exit_code == 0
        page = lines(result)
        assert 0 < len(page) <= 75
        seen += page
        if "more: --before" not in result.stderr:
            break
        before = ["--before", result.stderr.split("--before", 1)[1].strip()]
    assert len(seen) == 400 and len({e["metadata"]["uid"] for e in seen}) == 400
    keys = [(e["time"], e["metadata"]["uid"]) for e in seen]
    assert keys == sorted(keys, reverse=True)


def test_the_json_lines_are_the_stored_text(db: Path) -> None:
    result = run("--db", str(db), "--json", "--limit", "5")
    with sqlite3.connect(db) as conn:
        stored = [
            t
            for (t,) in conn.execute("SELECT event FROM audit_events ORDER BY time_ms DESC, uid DESC LIMIT 5")
        ]
    assert result.stdout.splitlines() == stored


def test_filters(db: Path) -> None:
    result = run(
        "--db", str(db), "--json", "--limit", "1000", "--decision", "denied", "--client", "mobile-app"
    )
    found = lines(result)
    assert found and all(e["action_id"] == 2 and e["actor"]["app_uid"] == "mobile-app" for e in found)
    result = run(
        "--db", str(db), "--json", "--limit", "1000", "--status", "4xx", "--operation", "getCustomer"
    )
    found = lines(result)
    assert found and all(400 <= e["http_response"]["code"] < 500 for e in found)
    assert all(e["api"]["operation"] == "getCustomer" for e in found)
    newest = lines(run("--db", str(db), "--json", "--limit", "1", "--operation", "getCustomer"))[0]
    obj = newest["resources"][0]["uid"]
    found = lines(run("--db", str(db), "--json", "--object", obj))
    assert found and all(any(r["uid"] == obj for r in e["resources"]) for e in found)
    assert len(lines(run("--db", str(db), "--json", "--limit", "1000", "--since", "1h"))) == 400
    assert lines(run("--db", str(db), "--json", "--until", "1h")) == []
    assert lines(run("--db", str(db), "--json", "--since", "2999-01-01T00:00:00Z")) == []
    subject = lines(run("--db", str(db), "--json", "--limit", "1"))[0]["actor"]["user"]["uid"]
    found = lines(
        run("--db", str(db), "--json", "--limit", "1000", "--subject", subject, "--ip", "198.51.100.3")
    )
    assert all(
        e["actor"]["user"]["uid"] == subject and e["src_endpoint"]["ip"] == "198.51.100.3" for e in found
    )


def test_the_table(db: Path) -> None:
    result = run("--db", str(db), "--limit", "10")
    rows = result.stdout.splitlines()
    assert rows[0].split() == [
        "TIME",
        "DECISION",
        "STATUS",
        "METHOD",
        "OPERATION",
        "SUBJECT",
        "CLIENT",
        "IP",
        "DETAIL",
        "MS",
    ]
    assert len(rows) == 11 and result.stderr.startswith("more: --before ")


def test_the_policy_names_the_store(db: Path, tmp_path: Path) -> None:
    policy = tmp_path / "apishield.yaml"
    policy.write_text(
        "openapi: openapi.yaml\nupstream: http://127.0.0.1:9000\n"
        "audit:\n  path: audit.db\n  tamper_evidence: true\n"
    )
    assert len(lines(run("-c", str(policy), "--json", "--limit", "3"))) == 3
    assert run("-c", str(policy), "verify").exit_code == 0
    result = run("-c", str(policy), "stats", "--json")
    assert orjson.loads(result.stdout)["total"] == 400


def test_stats(db: Path) -> None:
    result = run("--db", str(db), "stats", "--json", "--top", "2")
    data = orjson.loads(result.stdout)
    assert data["total"] == 400 and data["denied"] > 0
    assert set(data["by"]) == {"client", "subject", "ip", "operation", "status", "decision", "hour"}
    assert len(data["by"]["client"]) == 2
    denials = [b["denied"] for b in data["by"]["client"]]
    assert denials == sorted(denials, reverse=True)
    only = orjson.loads(run("--db", str(db), "stats", "--json", "--by", "status").stdout)
    assert set(only["by"]) == {"status"}
    assert sum(b["count"] for b in only["by"]["status"]) <= 400
    table = run(
        "--db", str(db), "--decision", "denied", "stats", "--by", "client"
    )  # a filter before the subcommand
    assert table.exit_code == 0
    denied = data["denied"]
    assert table.stdout.splitlines()[0].startswith(f"{denied} events, {denied} denied, ")
    assert "# clients by denials" in table.stdout
    denied_total = orjson.loads(run("--db", str(db), "--decision", "denied", "stats", "--json").stdout)[
        "total"
    ]
    assert denied_total == data["denied"]


def test_verify_passes_on_an_intact_store(db: Path) -> None:
    result = run("--db", str(db), "verify")
    assert result.exit_code == 0 and result.stdout.startswith(
        "OK: 400 chained events, 1 instance(s), 1 run(s)"
    )


def chain(db: Path) -> list[tuple[int, str, str, int]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT rowid, uid, event, seq FROM audit_events ORDER BY seq"))


def test_verify_names_an_edited_row(db: Path) -> None:
    rowid, uid, text, seq = chain(db)[123]
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE audit_events SET event = ? WHERE rowid = ?", (text.replace('"code":', '"code": '), rowid)
        )
    result = run("--db", str(db), "verify")
    assert result.exit_code == 1
    assert f"seq {seq} (event {uid}" in result.stderr and "hash mismatch" in result.stderr


def test_verify_names_the_row_after_a_deleted_one(db: Path) -> None:
    rows = chain(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit_events WHERE rowid = ?", (rows[200][0],))
    result = run("--db", str(db), "verify")
    assert result.exit_code == 1
    assert f"seq {rows[201][3]} (event {rows[201][1]}" in result.stderr and "missing" in result.stderr


def test_verify_notices_reordered_events(db: Path) -> None:
    rows = chain(db)
    (a, _, text_a, seq_a), (b, _, text_b, _) = rows[50], rows[51]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_events SET event = ? WHERE rowid = ?", (text_b, a))
        conn.execute("UPDATE audit_events SET event = ? WHERE rowid = ?", (text_a, b))
    result = run("--db", str(db), "verify")
    assert result.exit_code == 1 and f"seq {seq_a} " in result.stderr


def test_verify_notices_an_inserted_row(db: Path) -> None:
    rows = chain(db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO audit_events (uid, time_ms, instance, seq, hash, event) "
            "SELECT 'forged', time_ms, instance, seq, hash, replace(event, 'user-', 'root-') "
            "FROM audit_events WHERE rowid = ?",
            (rows[10][0],),
        )
    result = run("--db", str(db), "verify")
    assert result.exit_code == 1 and "appears twice" in result.stderr


def test_verify_a_json_lines_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write(JSONLSink(path), [api_event(i) for i in range(50)], tmp_path / "journal")
    assert run("--jsonl", str(path), "verify").exit_code == 0
    data = path.read_bytes().splitlines(keepends=True)
    data[20] = (
        data[20].replace(b'"GET"', b'"PUT"').replace(b'"DELETE"', b'"PUT"').replace(b'"PUT"', b'"HEAD"')
    )
    path.write_bytes(b"".join(data))
    result = run("--jsonl", str(path), "verify")
    assert result.exit_code == 1 and "hash mismatch" in result.stderr
    assert len(lines(run("--jsonl", str(path), "--json", "--limit", "100"))) == 50


def test_verify_without_a_chain_says_so(tmp_path: Path) -> None:
    write(
        SQLiteSink(tmp_path / "plain.db"),
        [api_event(i) for i in range(5)],
        tmp_path / "journal",
        chained=False,
    )
    result = run("--db", str(tmp_path / "plain.db"), "verify")
    assert result.exit_code == 1 and "nothing to verify" in result.stderr


def test_clear_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(events_command, [])
    assert result.exit_code == 2 and "name the store" in result.stderr
    result = run("--db", str(tmp_path / "missing.db"))
    assert result.exit_code == 1 and "no audit database at" in result.stderr
    result = run("--db", "x.db", "--jsonl", "y.jsonl")
    assert result.exit_code == 2
    result = run("--dsn", "postgresql://127.0.0.1/x?schema=Not-Valid")
    assert result.exit_code == 1 and "schema='Not-Valid'" in result.stderr
    (tmp_path / "a.db").write_text("")
    result = run("--db", str(tmp_path / "a.db"), "--since", "last tuesday")
    assert result.exit_code == 2 and "--since" in result.stderr
    policy = tmp_path / "p.yaml"
    policy.write_text("openapi: o.yaml\nupstream: http://127.0.0.1:1\naudit:\n  sink: off\n")
    result = run("-c", str(policy))
    assert result.exit_code == 1 and "audit.sink: off" in result.stderr
    policy.write_text("openapi: o.yaml\nupstream: http://127.0.0.1:1\naudit:\n  sinks: sqlite\n")
    result = run("-c", str(policy))
    assert result.exit_code == 2 and "sinks" in result.stderr
