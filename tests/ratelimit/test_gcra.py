"""GCRA in one process: exact counts, burst, the values the headers report, and the kinds of charge."""

from __future__ import annotations

import random

from apishield.ratelimit.gcra import CHECK, CONSUME, RECORD, LimitCall, MemoryStore, decide_calls


def limit(key: str = "k", rate: float = 10.0, burst: int = 5, **kw: object) -> LimitCall:
    interval = 1.0 / rate
    return LimitCall(key, interval, burst * interval, **kw)  # type: ignore[arg-type]


def test_burst_then_one_per_interval_exactly() -> None:
    store = MemoryStore()
    call = limit(rate=10, burst=5, cost=1)
    assert [store.decide([call], 100.0)[0].allowed for _ in range(6)] == [True] * 5 + [False]
    # one unit comes back every 0.1 s, not before
    assert not store.decide([call], 100.0999)[0].allowed
    assert store.decide([call], 100.1)[0].allowed
    assert not store.decide([call], 100.1)[0].allowed


def test_exact_count_over_a_long_run() -> None:
    """Allowed requests over any run of length L are exactly burst + L / interval (to the unit)."""
    store = MemoryStore()
    call = limit(rate=100, burst=10, cost=1)
    rng = random.Random(7)
    now, allowed = 1000.0, 0
    while now < 1010.0:
        allowed += store.decide([call], now)[0].allowed
        now += rng.uniform(0, 0.004)  # about 500 requests/s against 100/s
    assert allowed in (10 + 1000, 10 + 1000 - 1)


def test_remaining_retry_after_and_reset() -> None:
    store = MemoryStore()
    call = limit(rate=10, burst=5, cost=1)
    first = store.decide([call], 0.0)[0]
    assert (first.allowed, first.remaining) == (True, 4)
    assert abs(first.reset_after - 0.1) < 1e-9
    for _ in range(4):
        last = store.decide([call], 0.0)[0]
    assert last.remaining == 0 and abs(last.reset_after - 0.5) < 1e-9
    refused = store.decide([call], 0.0)[0]
    assert not refused.allowed and abs(refused.retry_after - 0.1) < 1e-9
    half = store.decide([call], 0.25)[0]  # two units back by now, one used
    assert half.allowed and half.remaining == 1


def test_cost_counts_units() -> None:
    store = MemoryStore()
    call = limit(rate=10, burst=10, cost=4)
    assert [store.decide([call], 0.0)[0].allowed for _ in range(3)] == [True, True, False]
    assert store.decide([call], 0.0)[0].remaining == 2


def test_a_refused_request_charges_none_of_its_limits() -> None:
    store = MemoryStore()
    burst = limit("per-second", rate=10, burst=10, cost=1)
    daily = limit("daily", rate=1 / 86400 * 3, burst=3, cost=1)
    for _ in range(3):
        assert all(r.allowed for r in store.decide([burst, daily], 0.0))
    results = store.decide([burst, daily], 0.0)
    assert [r.allowed for r in results] == [True, False]
    assert results[0].remaining == 7  # the per-second budget was not used by the refused request


def test_report_mode_never_refuses() -> None:
    store = MemoryStore()
    enforced = limit("e", rate=10, burst=10, cost=1)
    reported = limit("r", rate=10, burst=1, cost=1, enforce=False)
    results = [store.decide([enforced, reported], 0.0) for _ in range(3)]
    assert [r[1].allowed for r in results] == [True, False, False]
    assert results[-1][0].allowed and results[-1][0].remaining == 7


def test_check_does_not_charge_and_record_always_does() -> None:
    store = MemoryStore()
    check = limit("f", rate=1, burst=3, cost=1, mode=CHECK)
    record = check._replace(mode=RECORD)
    for _ in range(5):
        assert store.decide([check], 0.0)[0].allowed
    for _ in range(3):
        store.decide([record], 0.0)
    refused = store.decide([check], 0.0)[0]
    assert not refused.allowed and abs(refused.retry_after - 1.0) < 1e-9
    store.decide([record], 0.0)  # a fourth failure, counted though over the budget
    assert abs(store.decide([check], 0.0)[0].retry_after - 2.0) < 1e-9


def test_backoff_extends_the_block_while_refused_attempts_go_on() -> None:
    store = MemoryStore()
    check = limit("b", rate=1, burst=2, cost=1, mode=CHECK, backoff=10.0)
    for _ in range(2):
        store.decide([check._replace(mode=RECORD)], 0.0)
    waits = [store.decide([check], 0.0)[0].retry_after for _ in range(30)]
    assert waits[:3] == [2.0, 3.0, 4.0]
    assert max(waits) == 11.0  # capped: tolerance + backoff - tolerance + 1 unit
    # a client that waits for Retry-After gets back in
    assert store.decide([check], 11.0)[0].allowed


def test_memory_store_matches_the_reference_semantics() -> None:
    rng = random.Random(3)
    store = MemoryStore()
    state: dict[str, float] = {}
    now = 0.0
    for _ in range(3000):
        now += rng.uniform(0, 0.05)
        calls = [
            LimitCall(
                f"k{rng.randrange(3)}-{i}",
                0.1,
                0.1 * rng.choice([1, 3]),
                rng.choice([0, 1, 2]) or 1,
                rng.choice([CONSUME, CONSUME, CHECK, RECORD]),
                rng.random() < 0.8,
                rng.choice([0.0, 1.0]),
            )
            for i in range(rng.choice([1, 1, 2, 3]))
        ]
        assert store.decide(calls, now) == decide_calls(calls, now, state.get, state.__setitem__)


def test_idle_keys_are_swept_and_the_store_is_bounded() -> None:
    store = MemoryStore(max_keys=1000)
    call = limit(rate=1000, burst=1, cost=1)
    for i in range(5000):
        store.decide([call._replace(key=f"k{i}")], float(i) / 1e6)
    assert len(store.tats) <= 1000
    store.sweep(1e9)
    assert store.tats == {}
