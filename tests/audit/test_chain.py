"""The hash chain: links made by the writer's side, re-derived and checked by verify()."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from tests.audit.support import api_event

from apishield.audit.chain import GENESIS, Chain, ChainRow, verify
from apishield.audit.record import Record, encode, line_of, parse_line


def chained(n: int, instance: str = "gw-a", start: int = 1_000) -> list[ChainRow]:
    chain = Chain(clock_us=lambda: start)
    rows = []
    for i in range(n):
        event, encoded = encode(api_event(i, instance=instance))
        link = chain.link(instance, encoded[:-1])
        rows.append(
            ChainRow(instance, link.seq, link.hash, encoded[:-1], event["metadata"]["uid"], event["time"])
        )
    return rows


def test_a_run_starts_at_the_clock_and_hashes_from_zero() -> None:
    rows = chained(3, start=42)
    assert [r.seq for r in rows] == [42, 43, 44]
    assert rows[0].hash == hashlib.sha256(GENESIS + rows[0].text).hexdigest()
    assert rows[1].hash == hashlib.sha256(bytes.fromhex(rows[0].hash) + rows[1].text).hexdigest()


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    rows = chained(20) + chained(5, instance="gw-b")
    result = verify(sorted(rows, key=lambda r: (r.instance, r.seq, r.uid)))
    assert result.ok and result.checked == 25 and result.runs == 2
    assert result.instances["gw-a"] == (1_000, 1_019, rows[19].hash)


def test_two_runs_of_one_instance_name_verify() -> None:
    rows = chained(4, start=100) + chained(4, start=5_000)
    assert verify(rows).ok and verify(rows).runs == 2


def test_a_modified_event_is_the_first_broken_link() -> None:
    rows = chained(10)
    rows[4] = replace(rows[4], text=rows[4].text.replace(b'"GET"', b'"PUT"'))
    result = verify(rows)
    assert not result.ok and result.broken == 1
    assert result.first is not None and result.first.uid == rows[4].uid and result.first.seq == 1_004
    assert "changed" in result.first.reason


def test_a_modified_event_with_its_hash_recomputed_breaks_the_next_link() -> None:
    rows = chained(10)
    text = rows[4].text.replace(b'"GET"', b'"PUT"')
    rows[4] = replace(rows[4], text=text, hash=hashlib.sha256(bytes.fromhex(rows[3].hash) + text).hexdigest())
    first = verify(rows).first
    assert first is not None and first.seq == 1_005


def test_a_deleted_event_breaks_the_link_after_it() -> None:
    rows = chained(10)
    del rows[6]
    first = verify(rows).first
    assert first is not None and first.seq == 1_007 and "1006..1006 are missing" in first.reason


def test_deleting_the_first_events_is_seen_unless_retention_expired_them() -> None:
    rows = chained(10)[3:]
    first = verify(rows).first
    assert first is not None and first.seq == 1_003 and "earlier events were deleted" in first.reason
    lenient = verify(rows, expired_start_ok=True)
    assert lenient.ok and lenient.expired_starts == ["gw-a"]


def test_swapped_events_break_their_links() -> None:
    rows = chained(10)
    a, b = rows[2], rows[3]
    rows[2], rows[3] = replace(a, text=b.text, uid=b.uid), replace(b, text=a.text, uid=a.uid)
    first = verify(rows).first
    assert first is not None and first.seq == 1_002


def test_an_inserted_event_is_seen() -> None:
    rows = chained(10)
    forged = replace(rows[5], uid="f" * 32, text=rows[5].text.replace(b"user-", b"admin-"))
    rows.insert(6, forged)
    assert not verify(rows).ok
    # a forged run start in a gap hashes from zero like a real one: it is a new run, visibly
    lonely = ChainRow("gw-a", 9_999, hashlib.sha256(GENESIS + b"{}").hexdigest(), b"{}", "e" * 32, 0)
    assert verify([*chained(10), lonely]).runs == 2


def test_the_json_lines_wrapper_keeps_the_exact_event_bytes() -> None:
    event, encoded = encode(api_event(1))
    link = Chain(clock_us=lambda: 7).link("gw-a", encoded[:-1])
    line = line_of(encoded, link)
    assert line.startswith(b'{"seq":7,"hash":"') and line.endswith(b"}\n")
    text, parsed = parse_line(line[:-1])
    assert text == encoded[:-1] and parsed == link
    record = Record.from_line(line[:-1])
    assert record.event == event and record.encoded == encoded and record.link == link
    assert parse_line(encoded[:-1]) == (encoded[:-1], None)


def test_unencodable_values_are_cleaned_not_fatal() -> None:
    event = {"metadata": {"uid": "x"}, "path": "bad \udc80 surrogate", "when": object(), "big": 1 << 70}
    cleaned, encoded = encode(event)
    assert encoded.endswith(b"\n") and b"surrogate" in encoded
    assert cleaned["big"] == str(1 << 70)
