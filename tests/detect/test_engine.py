"""The engine: signals rate-limited per key, bounded memory, event time only (replay equals live)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apishield.config.detection import DetectionPolicy
from apishield.config.detectors import DetectorsPolicy, EnumerationPolicy
from apishield.detect.engine import DetectionEngine
from apishield.detect.simulate import events
from tests.detect.support import SCRIPT, Script, of, run


def _probe(s: Script, start: float, count: int, sub: str = "user000500", every: float = 1.0) -> None:
    for i in range(count):
        s.api(start + i * every, sub=sub, object_id=str(10_000 + 17 * i), status=404, agent=SCRIPT)


def test_a_key_is_signalled_once_per_resignal_period_while_the_condition_holds() -> None:
    s = Script()
    _probe(s, 0, 125, every=8)  # over sixteen minutes, never five times the bar
    signals = of(run(s.events), "enumeration")
    # at 20 refused objects, then again once ten minutes (resignal_after) have passed
    assert [round((x.time_ms - s.events[0]["time"]) / 1000) for x in signals] == [152, 752]
    assert [x.evidence["repeat"] for x in signals] == [1, 2]
    assert signals[1].evidence["denied_objects"] > signals[0].evidence["denied_objects"]


def test_a_rise_in_severity_is_signalled_at_once() -> None:
    s = Script()
    _probe(s, 0, 120)
    policy = DetectorsPolicy(enumeration=EnumerationPolicy(min_denied_objects=20))
    signals = of(run(s.events, policy), "enumeration")
    # 20 refused objects: severity 4; five times the bar (100): severity 5, without waiting
    assert [(x.severity, x.evidence["denied_objects"]) for x in signals] == [(4, 20), (5, 100)]


def test_each_key_is_rate_limited_on_its_own() -> None:
    s = Script()
    _probe(s, 0, 30, sub="user000001")
    _probe(s, 0.5, 30, sub="user000002")
    keys = [x.key for x in of(run(s.events), "enumeration")]
    assert keys == ["sub:user000001", "sub:user000002"]


def test_memory_is_bounded_by_max_keys() -> None:
    engine = DetectionEngine(DetectorsPolicy(max_keys=64))
    s = Script()
    for i in range(5000):
        s.api(i * 0.01, sub=f"user{i:06d}", token=f"{i:032x}", ip=f"10.{i // 250}.{i % 250}.1")
        if i % 3 == 0:
            s.sign_in(i * 0.01, f"acct{i}", f"172.16.{i // 250}.{i % 250}")
    engine.observe(s.events)
    stats = engine.stats()
    assert stats.keys["principals"] <= 64 and stats.keys["tokens"] <= 64
    assert stats.keys["addresses"] <= 64 and stats.keys["accounts"] <= 64
    assert stats.evicted > 4000


def test_idle_keys_are_forgotten_in_event_time() -> None:
    engine = DetectionEngine(DetectorsPolicy(idle_timeout=3600))
    s = Script()
    for i in range(300):
        s.api(i, sub=f"user{i:06d}", token=f"{i:032x}")
    engine.observe(s.events)
    assert engine.stats().keys["principals"] == 300
    later = Script(seed=2)
    for i in range(3):  # hours later, by the events' clock: a sweep runs and the idle keys go
        later.api(3 * 3600 + i * 3600, sub="user999999")
    engine.observe(later.events)
    assert engine.stats().keys["principals"] == 1


def test_replay_equals_live() -> None:
    stream = [e for e, _ in events(users=150, days=1, seed=3)]
    live = DetectionEngine()
    live_signals = []
    for i in range(0, len(stream), 7):  # as the audit writer hands them over, a few at a time
        live_signals += live.observe(stream[i : i + 7])
    replayed = DetectionEngine().observe(stream)  # from storage, in one go
    assert [x.as_dict() for x in live_signals] == [x.as_dict() for x in replayed]
    assert len(replayed) >= 12  # every scenario was signalled at least once
    assert live.stats().events == len(stream)


def test_events_of_other_classes_are_skipped() -> None:
    engine = DetectionEngine()
    assert engine.observe([{"class_uid": 2004, "time": 1}, {"nonsense": True}]) == []
    assert engine.stats().skipped == 2


def test_disabled_detectors_do_not_run() -> None:
    s = Script()
    _probe(s, 0, 60)
    policy = DetectorsPolicy(enumeration=EnumerationPolicy(enabled=False))
    assert of(run(s.events, policy), "enumeration") == []


def test_the_policy_section_reads_durations_and_refuses_unknown_keys() -> None:
    policy = DetectionPolicy.model_validate(
        {"detectors": {"enumeration": {"window": "15m", "response": "block", "block_duration": "1h"}}}
    )
    settings = policy.detectors.settings("enumeration")
    assert (settings.block_duration, settings.response) == (3600.0, "block")
    assert policy.detectors.enumeration.window == 900.0
    with pytest.raises(ValidationError):
        DetectionPolicy.model_validate({"detectors": {"enumeration": {"treshold": 3}}})
    with pytest.raises(KeyError):
        policy.detectors.settings("max_keys")


def test_every_signal_links_the_event_that_tipped_it() -> None:
    stream = [e for e, _ in events(users=150, days=1, seed=9)]
    times = {e["metadata"]["uid"]: e["time"] for e in stream}
    signals = DetectionEngine().observe(stream)
    assert {s.detector for s in signals} >= {
        "enumeration",
        "credential_stuffing",
        "token_sharing",
        "scraping",
    }
    for signal in signals:
        assert 1 <= len(signal.event_ids) <= 8, signal.detector
        assert times[signal.event_ids[-1]] == signal.time_ms, signal.detector
        assert all(times[uid] <= signal.time_ms for uid in signal.event_ids)
        assert signal.summary and signal.evidence["repeat"] >= 1
