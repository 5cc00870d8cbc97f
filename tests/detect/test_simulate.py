"""The simulator: deterministic with a seed, and the detectors meet their targets on a small day."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import orjson
from click.testing import CliRunner

from apishield.audit.schema import SQLITE_DDL, TABLE
from apishield.cli.detect import detect, simulate
from apishield.detect.engine import DetectionEngine
from apishield.detect.simulate import events
from apishield.detect.simulate import simulate as run_simulation
from apishield.detect.simulate.report import markdown, plain
from apishield.detect.simulate.scenarios import SCENARIOS

_TIMINGS = {"us_per_event", "baseline_us_per_event", "generate_s"}


def _figures(report_dict: dict) -> dict:
    return {k: v for k, v in report_dict.items() if k not in _TIMINGS}


def test_the_same_seed_gives_the_same_events_and_figures() -> None:
    a = [e for e, _ in events(users=60, days=1, seed=11)]
    b = [e for e, _ in events(users=60, days=1, seed=11)]
    c = [e for e, _ in events(users=60, days=1, seed=12)]
    assert a == b and a != c
    assert all(x["time"] <= y["time"] for x, y in itertools.pairwise(a))  # in time order
    first = run_simulation(users=60, days=1, seed=11)
    second = run_simulation(users=60, days=1, seed=11, batch=17)
    assert _figures(first.as_dict()) == _figures(second.as_dict())


def test_a_small_day_meets_the_targets() -> None:
    report = run_simulation(users=1000, days=1, seed=7)
    assert {s.name for s in report.scenarios} == set(SCENARIOS)
    missed = [s.name for s in report.scenarios if not s.met]
    assert missed == []  # every attack signalled within 60 simulated seconds or 200 of its requests
    for row in report.detectors:
        assert row.recall == 1.0, row.detector  # each detector caught the scenarios it is meant for
    assert report.false_per_1000_per_day <= 1.0
    assert report.events > 50_000 and report.attack_events > 10_000
    text = plain(report)
    assert "enumeration" in text and "rate_limit_pressure" in text
    assert markdown(report).count("\n| ") >= 7 + 12


def test_legitimate_traffic_alone_raises_no_signal() -> None:
    report = run_simulation(users=1000, days=2, seed=5, scenarios=[])
    assert report.scenarios == [] and report.signals == 0


def test_simulate_command(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        simulate,
        ["--users", "80", "--seed", "3", "--json", "--write-events", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["seed"] == 3 and len(report["scenarios"]) == len(SCENARIOS)
    written = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(written) == report["events"]
    text = CliRunner().invoke(
        simulate, ["--users", "80", "--scenario", "shadow_probe"], catch_exceptions=False
    )
    assert text.exit_code == 0 and "shadow_probe" in text.stdout and "bola_random" not in text.stdout
    bad = CliRunner().invoke(simulate, ["--scenario", "nope"])
    assert bad.exit_code == 2 and "unknown scenario" in bad.output


def _expected(stream: list[dict]) -> list[dict]:
    return [s.as_dict() for s in DetectionEngine().observe(stream)]


def test_replay_of_a_jsonl_file_and_of_a_sqlite_store(tmp_path: Path) -> None:
    few = ["bola_sequential", "token_theft", "stuffing_single_ip", "shadow_probe"]
    stream = [e for e, _ in events(users=80, days=1, seed=4, scenarios=few)]
    expected = _expected(stream)
    assert expected
    jsonl = tmp_path / "audit.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in stream))
    result = CliRunner().invoke(detect, ["replay", "--jsonl", str(jsonl)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line) for line in result.stdout.splitlines()] == expected
    assert f"{len(stream):,} events" in result.stderr

    db = tmp_path / "audit.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SQLITE_DDL)
        rows = [(e["metadata"]["uid"], e["time"], orjson.dumps(e).decode()) for e in reversed(stream)]
        conn.executemany(f"INSERT INTO {TABLE} (uid, time_ms, event) VALUES (?, ?, ?)", rows)
    result = CliRunner().invoke(detect, ["replay", "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    replayed = [orjson.loads(line) for line in result.stdout.splitlines()]
    # same signals; within one millisecond the table orders by uid, the file by arrival
    assert sorted(map(orjson.dumps, replayed)) == sorted(map(orjson.dumps, expected))
    table = CliRunner().invoke(detect, ["replay", "--db", str(db), "--table"], catch_exceptions=False)
    assert table.exit_code == 0 and "enumeration" in table.stdout


def test_replay_needs_a_store(tmp_path: Path) -> None:
    assert CliRunner().invoke(detect, ["replay"]).exit_code == 2
    missing = CliRunner().invoke(detect, ["replay", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no audit database" in missing.output
