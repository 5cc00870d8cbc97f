"""Alerts: aggregation of signals, the SQLite and PostgreSQL stores for real, and ``apishield alerts``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from apishield.cli.alerts import alerts as alerts_group
from apishield.config.detection import AlertsPolicy, DetectionPolicy
from apishield.detect.alerts import (
    MAX_EVENT_IDS,
    MAX_EVIDENCE_BYTES,
    MAX_LIST_ITEMS,
    AlertQuery,
    AlertStore,
    merge,
    merge_evidence,
    new_alert,
    open_alert_store,
    sample_ids,
)
from apishield.detect.alerts_postgres import PostgresAlertStore
from apishield.detect.alerts_sqlite import SQLiteAlertStore
from apishield.detect.signal import Signal
from tests.services import require_postgres
from tests.support import DATA

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000


def signal(
    detector: str = "enumeration",
    key: str = "sub:mallory",
    severity: int = 3,
    at: int = T0,
    evidence: dict[str, Any] | None = None,
    ids: tuple[str, ...] = ("e1",),
    summary: str = "refused objects",
    response: str | None = None,
) -> Signal:
    return Signal(detector, key, severity, at, summary, evidence or {}, ids, response, "/customers/{id}")


# -- aggregation ------------------------------------------------------------------------------------------


def test_merge_widens_times_counts_and_keeps_the_highest_severity() -> None:
    first = new_alert(signal(severity=4, at=T0 + 5000, ids=("e1", "e2")))
    later = merge(first, signal(severity=2, at=T0 + 9000, ids=("e2", "e3"), summary="more refusals"))
    earlier = merge(later, signal(severity=3, at=T0, ids=("e0",), summary="out of order"))
    assert (earlier.first_seen, earlier.last_seen) == (T0, T0 + 9000)
    assert earlier.count == 3
    assert earlier.severity == 4
    assert earlier.summary == "more refusals"  # the latest by event time, not by arrival
    assert earlier.event_ids == ("e1", "e2", "e3", "e0")
    assert earlier.status == "open" and earlier.id == first.id


def test_evidence_merges_numbers_by_max_lists_by_bounded_union_and_objects_by_member() -> None:
    old = {"denied": 25, "objects": ["1", "2"], "by_status": {"403": 10, "404": 15}, "note": "a"}
    new = {"denied": 21, "objects": ["2", "3"], "by_status": {"404": 30, "400": 1}, "note": "b", "flag": True}
    merged = merge_evidence(old, new)
    assert merged == {
        "denied": 25,
        "objects": ["1", "2", "3"],
        "by_status": {"403": 10, "404": 30, "400": 1},
        "note": "b",
        "flag": True,
    }
    many = merge_evidence(
        {"objects": [str(i) for i in range(15)]}, {"objects": [str(i) for i in range(10, 40)]}
    )
    assert many["objects"] == [str(i) for i in range(MAX_LIST_ITEMS)]


def test_evidence_stays_bounded_however_big_the_signals() -> None:
    huge = {"blob": "x" * 600, "parts": {f"k{i}": "y" * 900 for i in range(40)}}
    merged = merge_evidence({}, huge)
    assert len(orjson.dumps(merged)) <= MAX_EVIDENCE_BYTES
    assert merged == {"truncated": True}
    old = {f"k{i}": "z" * 900 for i in range(15)}
    merged = merge_evidence(old, {f"n{i}": "w" * 900 for i in range(10)})
    assert merged["truncated"] is True and "n0" in merged and "k0" not in merged
    assert len(orjson.dumps(merged)) <= MAX_EVIDENCE_BYTES


def test_event_id_sample_keeps_the_start_and_the_latest() -> None:
    ids: tuple[str, ...] = ()
    for batch in range(30):
        ids = sample_ids(ids, [f"e{batch}-{i}" for i in range(10)])
    assert len(ids) == MAX_EVENT_IDS
    assert ids[0] == "e0-0" and ids[MAX_EVENT_IDS // 2 - 1] == "e4-9"
    assert ids[-1] == "e29-9" and ids[MAX_EVENT_IDS // 2] == "e25-0"


# -- the stores, for real -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "sqlite":
        yield SQLiteAlertStore(tmp_path / "alerts.db")
        return
    dsn = require_postgres()
    schema = "t_alerts_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in dsn else "?"
    yield PostgresAlertStore(f"{dsn}{sep}schema={schema}")
    asyncio.run(_drop_schema(dsn, schema))


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def test_store_deduplicates_within_the_window_and_opens_anew_after_it(store: AlertStore) -> None:
    async def go() -> None:
        try:
            a = await store.record(signal(at=T0, evidence={"denied": 20, "objects": ["1", "2"]}), HOUR_MS)
            b = await store.record(
                signal(at=T0 + 60_000, severity=4, evidence={"denied": 31, "objects": ["3"]}, ids=("e2",)),
                HOUR_MS,
            )
            c = await store.record(signal(at=T0 + 120_000, severity=2, ids=("e3",)), HOUR_MS)
            other_key = await store.record(signal(key="sub:eve", at=T0 + 1000), HOUR_MS)
            other_detector = await store.record(signal(detector="scraping", at=T0 + 1000), HOUR_MS)
            assert a.created and not b.created and not c.created
            assert b.escalated and not c.escalated
            assert a.alert.id == b.alert.id == c.alert.id
            assert other_key.created and other_detector.created
            stored = await store.get(a.alert.id)
            assert stored is not None
            assert stored.count == 3 and stored.severity == 4
            assert (stored.first_seen, stored.last_seen) == (T0, T0 + 120_000)
            assert stored.evidence == {"denied": 31, "objects": ["1", "2", "3"]}
            assert stored.event_ids == ("e1", "e2", "e3")
            assert stored.scope == "/customers/{id}"
            # quiet for longer than the window: a new alert
            late = await store.record(signal(at=T0 + 120_000 + HOUR_MS + 1), HOUR_MS)
            assert late.created and late.alert.id != a.alert.id
        finally:
            await store.close()

    asyncio.run(go())


def test_store_concurrent_recorders_make_one_alert(store: AlertStore) -> None:
    async def go() -> None:
        try:
            results = await asyncio.gather(
                *(store.record(signal(at=T0 + i, ids=(f"e{i}",)), HOUR_MS) for i in range(12))
            )
            assert sum(r.created for r in results) == 1
            assert len({r.alert.id for r in results}) == 1
            stored = await store.get(results[0].alert.id)
            assert stored is not None and stored.count == 12 and len(stored.event_ids) == 12
        finally:
            await store.close()

    asyncio.run(go())


def test_store_ack_query_and_response(store: AlertStore) -> None:
    async def go() -> None:
        try:
            a = (await store.record(signal(severity=5, at=T0), HOUR_MS)).alert
            b = (await store.record(signal(key="ip:192.0.2.7", severity=2, at=T0 + 10), HOUR_MS)).alert
            c = (await store.record(signal(detector="scraping", severity=3, at=T0 + 20), HOUR_MS)).alert
            await store.set_response(a.id, "block bl-0123456789")
            acked = await store.ack(a.id, "oncall", "looked at it", T0 + 99)
            assert acked is not None and acked.status == "acknowledged"
            assert (acked.acked_by, acked.acked_at, acked.note) == ("oncall", T0 + 99, "looked at it")
            assert acked.response == "block bl-0123456789"
            assert await store.ack("al-nothing", "oncall", None, T0) is None

            async def ids(**filters: Any) -> list[str]:
                return [x.id for x in await store.query(AlertQuery(**filters))]

            assert await ids() == [c.id, b.id, a.id]  # newest first
            assert await ids(status="open") == [c.id, b.id]
            assert await ids(status="acknowledged") == [a.id]
            assert await ids(detector="scraping") == [c.id]
            assert await ids(key="ip:192.0.2.7") == [b.id]
            assert await ids(min_severity=3) == [c.id, a.id]
            assert await ids(since=T0 + 10) == [c.id, b.id]
            assert await ids(limit=1) == [c.id]
            # an acknowledged alert takes no more signals: the next one opens a new alert
            again = await store.record(signal(at=T0 + 30), HOUR_MS)
            assert again.created and again.alert.id != a.id
        finally:
            await store.close()

    asyncio.run(go())


def test_sqlite_store_defaults_beside_the_audit_database(tmp_path: Path) -> None:
    from apishield.config.audit import AuditPolicy

    audit = AuditPolicy(path="audit/trail.db")
    store = open_alert_store(AlertsPolicy(), tmp_path, audit)
    assert isinstance(store, SQLiteAlertStore)
    assert store.path == tmp_path / "audit" / "apishield-alerts.db"
    assert (store.path.stat().st_mode & 0o777) == 0o600


def test_policy_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="store: postgresql needs dsn"):
        AlertsPolicy(store="postgresql")
    with pytest.raises(ValueError, match="postgresql:// URL"):
        AlertsPolicy(store="postgresql", dsn="mysql://db/x")
    with pytest.raises(ValueError, match="lower-case SQL identifier"):
        AlertsPolicy(store="postgresql", dsn="postgresql://db/x?schema=Bad-Name")
    with pytest.raises(ValueError, match="redis://"):
        DetectionPolicy.model_validate({"blocks": {"store": "memcached://x"}})
    with pytest.raises(ValueError, match="a severity is 1-6"):
        DetectionPolicy.model_validate(
            {"alerts": {"webhooks": [{"url": "http://h/x", "min_severity": "huge"}]}}
        )
    with pytest.raises(ValueError, match="user information"):
        DetectionPolicy.model_validate({"alerts": {"webhooks": [{"url": "https://u:p@h/x"}]}})
    with pytest.raises(ValueError, match="COUNT/PERIOD"):
        DetectionPolicy.model_validate({"blocks": {"throttle_rate": "fast"}})
    parsed = DetectionPolicy.model_validate(
        {"alerts": {"webhooks": [{"url": "https://h/x?a=1", "min_severity": "high", "timeout": "2s"}]}}
    )
    assert parsed.alerts.webhooks[0].min_severity == 4 and parsed.alerts.webhooks[0].timeout == 2.0


# -- apishield alerts -------------------------------------------------------------------------------------


@click.group()
def cli() -> None:
    """The group as the command line registers it."""


cli.add_command(alerts_group)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_lists_shows_and_acknowledges(tmp_path: Path) -> None:
    policy = tmp_path / "apishield.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "openapi": str(DATA / "shop31.yaml"),
                "upstream": "http://127.0.0.1:9",
                "detection": {"alerts": {"path": "state/alerts.db"}},
            }
        )
    )
    store = SQLiteAlertStore(tmp_path / "state" / "alerts.db")
    first = asyncio.run(
        store.record(signal(severity=4, evidence={"objects": ["41", "42"]}, ids=("ev-1", "ev-2")), HOUR_MS)
    ).alert
    second = asyncio.run(
        store.record(signal(key="ip:198.51.100.4", detector="shadow_api", severity=2), HOUR_MS)
    ).alert

    listed = run("alerts", "list", "-c", str(policy))
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].startswith("ID") and len(lines) == 3
    assert first.id in listed.output and "sub:mallory" in listed.output and "high" in listed.output

    high = run("alerts", "list", "-c", str(policy), "--min-severity", "high", "--json")
    assert [a["id"] for a in orjson.loads(high.output)] == [first.id]
    by_detector = run("alerts", "list", "-c", str(policy), "--detector", "shadow_api", "--json")
    assert [a["id"] for a in orjson.loads(by_detector.output)] == [second.id]

    shown = run("alerts", "show", "-c", str(policy), first.id)
    assert shown.exit_code == 0
    assert '"41"' in shown.output and "ev-1" in shown.output and "ev-2" in shown.output
    assert "/customers/{id}" in shown.output

    acked = run("alerts", "ack", "-c", str(policy), first.id, "--note", "known tester", "--by", "oncall")
    assert acked.exit_code == 0
    after = orjson.loads(run("alerts", "show", "-c", str(policy), first.id, "--json").output)
    assert (after["status"], after["acked_by"], after["note"]) == ("acknowledged", "oncall", "known tester")
    still_open = orjson.loads(run("alerts", "list", "-c", str(policy), "--json").output)
    assert [a["id"] for a in still_open] == [second.id]
    everything = orjson.loads(run("alerts", "list", "-c", str(policy), "--status", "all", "--json").output)
    assert {a["id"] for a in everything} == {first.id, second.id}

    missing = CliRunner().invoke(cli, ["alerts", "show", "-c", str(policy), "al-nope"])
    assert missing.exit_code == 1 and "no alert 'al-nope'" in missing.output


def test_cli_without_a_detection_section_says_so(tmp_path: Path) -> None:
    policy = tmp_path / "apishield.yaml"
    policy.write_text(
        yaml.safe_dump({"openapi": str(DATA / "shop31.yaml"), "upstream": "http://127.0.0.1:9"})
    )
    result = CliRunner().invoke(cli, ["alerts", "list", "-c", str(policy)])
    assert result.exit_code == 2 and "no detection section" in result.output
