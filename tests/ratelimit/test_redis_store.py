"""The Redis store: the Lua GCRA, batching into one round trip, NOSCRIPT, hash tags and slots."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apishield.ratelimit.gcra import CHECK, RECORD, LimitCall
from apishield.ratelimit.redis_store import RedisLimiter, key_slot
from tests.ratelimit.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield own
    finally:
        own.stop()


def call(key: str, rate: float, burst: int, **kw: Any) -> LimitCall:
    interval = 1.0 / rate
    return LimitCall(f"t:{{{key}}}", interval, burst * interval, **{"cost": 1, **kw})


async def with_limiter(url: str, work: Any, **options: Any) -> Any:
    limiter = RedisLimiter(url, **options)
    await limiter.start()
    try:
        return await work(limiter)
    finally:
        await limiter.stop()


def test_lua_gcra_burst_remaining_and_refusal(server: RedisServer) -> None:
    key = uuid.uuid4().hex

    async def work(limiter: RedisLimiter) -> list[Any]:
        c = call(key, rate=1 / 60, burst=3)
        return [(await limiter.decide([c]))[0] for _ in range(4)]  # type: ignore[index]

    results = asyncio.run(with_limiter(server.url, work))
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert 59 < results[-1].retry_after <= 60 and 179 < results[-1].reset_after <= 180


def test_lua_all_or_nothing_report_check_record_backoff(server: RedisServer) -> None:
    key = uuid.uuid4().hex

    async def work(limiter: RedisLimiter) -> None:
        fast = call(key + "f", rate=1, burst=10)
        quota = call(key + "q", rate=1 / 3600, burst=2)
        report = call(key + "r", rate=1 / 3600, burst=1, enforce=False)
        first = await limiter.decide([fast, quota, report])
        assert first is not None and all(r.allowed for r in first)
        second = await limiter.decide([fast, quota, report])
        assert second is not None and [r.allowed for r in second] == [True, True, False]  # report only
        refused = await limiter.decide([fast, quota, report])
        assert refused is not None and [r.allowed for r in refused] == [True, False, False]
        assert refused[0].remaining == 8  # the fast budget was not charged by the refused request
        brake = call(key + "b", rate=1 / 60, burst=2, mode=CHECK, backoff=600.0)
        assert (await limiter.decide([brake]) or [])[0].allowed  # a check charges nothing
        for _ in range(2):
            await limiter.decide([brake._replace(mode=RECORD)])
        waits = [(await limiter.decide([brake]) or [])[0].retry_after for _ in range(3)]
        assert 119 < waits[0] <= 120 and waits[0] < waits[1] < waits[2]  # the attempts count too

    asyncio.run(with_limiter(server.url, work))


def test_concurrent_requests_share_round_trips_and_stay_exact(server: RedisServer) -> None:
    key = uuid.uuid4().hex

    async def work(limiter: RedisLimiter) -> tuple[int, dict[str, int]]:
        import redis.asyncio as redis

        probe = redis.Redis.from_url(server.url)
        before = await probe.info("commandstats")
        c = call(key, rate=1 / 60, burst=50)
        results = await asyncio.gather(*(limiter.decide([c]) for _ in range(400)))
        after = await probe.info("commandstats")
        await probe.aclose()
        evalsha = after["cmdstat_evalsha"]["calls"] - before.get("cmdstat_evalsha", {"calls": 0})["calls"]
        allowed = sum(1 for r in results if r is not None and r[0].allowed)
        return allowed, {"evalsha": evalsha, **limiter.stats}

    allowed, stats = asyncio.run(with_limiter(server.url, work))
    assert allowed == 50
    assert stats["decisions"] == 400
    assert stats["evalsha"] == stats["batches"] <= 4  # 400 requests, a handful of round trips


def test_noscript_reloads_the_script(server: RedisServer) -> None:
    key = uuid.uuid4().hex

    async def work(limiter: RedisLimiter) -> bool:
        assert limiter.client is not None
        await limiter.client.script_flush()
        result = await limiter.decide([call(key, rate=1, burst=1)])
        return result is not None and result[0].allowed

    assert asyncio.run(with_limiter(server.url, work))


def test_cluster_mode_sends_one_script_call_per_slot(server: RedisServer) -> None:
    import redis.asyncio as redis

    sent: list[list[str]] = []

    class Recording(redis.Redis):  # type: ignore[misc]
        async def evalsha(self, sha: str, numkeys: int, *rest: Any) -> Any:
            sent.append([str(k) for k in rest[:numkeys]])
            return await super().evalsha(sha, numkeys, *rest)

    prefix = uuid.uuid4().hex
    keys = [f"{prefix}{i}" for i in range(6)]

    async def work(limiter: RedisLimiter) -> None:
        results = await asyncio.gather(
            *(limiter.decide([call(k, 10, 5) for k in keys[i : i + 3]]) for i in range(4))
        )
        assert all(r is not None and len(r) == 3 and all(x.allowed for x in r) for r in results)

    asyncio.run(with_limiter(server.url, work, cluster=True, client=Recording.from_url(server.url)))
    assert sent
    for batch in sent:
        assert len({key_slot(k) for k in batch}) == 1


def test_hash_tags_name_the_slot() -> None:
    assert (
        key_slot("apishield:rl:{per-client:abc}")
        == key_slot("{per-client:abc}")
        == key_slot("per-client:abc")
    )
    assert key_slot("123456789") == 12739  # the example of the Redis Cluster specification


def test_unreachable_store_is_reported_then_short_circuited(tmp_path: Path) -> None:
    from tests.support import free_port

    async def work(limiter: RedisLimiter) -> tuple[Any, Any, dict[str, int]]:
        first = await limiter.decide([call("x", 1, 1)])
        second = await limiter.decide([call("x", 1, 1)])
        return first, second, dict(limiter.stats)

    first, second, stats = asyncio.run(
        with_limiter(f"redis://127.0.0.1:{free_port()}/0", work, retry_interval=30.0)
    )
    assert first is None and second is None
    assert stats["store_errors"] >= 1 and stats["short_circuited"] >= 1
