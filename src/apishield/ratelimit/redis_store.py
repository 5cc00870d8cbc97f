"""The shared store: GCRA in one Lua script, with concurrent requests batched into one round trip.

Theory of operation
-------------------
Per-node counters make the real limit N times the configured one; counts
kept apart from the decision drift. Here every decision is made *in* Redis,
by one Lua script (:data:`SCRIPT`, the GCRA of :mod:`.gcra`, with Redis's
own ``TIME`` as the clock so gateway clocks need not agree), atomically for
all of a request's limits: either every enforced limit has room and all are
charged, or none is.

A round trip costs the gateway more CPU than all its other checks together,
so requests do not each make one. :class:`RedisLimiter` queues the calls of
concurrent requests and one flusher task sends whatever has queued as **one
EVALSHA** (the script loops over the requests in order, each still decided
atomically), then hands every waiting request its results. While a batch is
in flight the next one fills; under load the cost of a round trip is shared
by everyone who arrived during the previous one, and an idle gateway sends
a batch of one at once (no added delay). Outcome charges
(:class:`~apishield.core.effects.RecordRateLimits`) ride in the same
batches, without anyone waiting for them.

``EVALSHA`` is used with the script's SHA-1; on ``NOSCRIPT`` (a restarted or
flushed Redis) the script is loaded and the call retried once.

Keys are ``<prefix>{<limit id>:<hash of the key value>}``: the hash tag makes
each counter its own cluster slot. With ``cluster: true`` a batch is split
into one script call per slot, sent concurrently (one round trip per node;
a request's limits in different slots are then decided per slot, not as
one atomic unit).

Failure: a batch that errs or takes longer than ``timeout`` makes every
request in it a store error (the stage answers by ``on_store_error``); the
first error is logged at ERROR ("unavailable") and counted, and for
``retry_interval`` seconds requests are decided without trying Redis (no
pile-up of timeouts). The next batch after that probes it; the first success
is logged ("recovered"). Recovery is automatic: the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from apishield.ratelimit.gcra import LimitCall, LimitResult
from apishield.services.cancellation import stop_tasks

__all__ = ["SCRIPT", "RedisLimiter", "key_slot"]

logger = logging.getLogger("apishield.ratelimit")

SCRIPT = """
-- apishield GCRA. KEYS: every call of every request, in order.
-- ARGV[1]: number of requests; per request: its number of calls n, then per call five values:
--   emission interval (ms), tolerance (ms), cost, flags (mode + 4 * enforce), backoff (ms).
--   mode: 0 consume, 1 check, 2 record.
-- Returns four integers per call: allowed (0/1), remaining, retry after (ms), reset after (ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local out = {}
local a = 2
local k = 0
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local tats, news, fits = {}, {}, {}
  local refused = false
  for i = 1, n do
    local p = a + (i - 1) * 5
    local tat = now
    local stored = redis.call('GET', KEYS[k + i])
    if stored then
      stored = tonumber(stored)
      if stored and stored > now then tat = stored end
    end
    local new = tat + tonumber(ARGV[p + 2]) * tonumber(ARGV[p])
    local ok = new - tonumber(ARGV[p + 1]) <= now
    tats[i], news[i], fits[i] = tat, new, ok
    local flags = tonumber(ARGV[p + 3])
    if (not ok) and flags >= 4 and flags % 4 ~= 2 then refused = true end
  end
  for i = 1, n do
    local p = a + (i - 1) * 5
    local interval, tol, cost = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
    local mode, backoff = tonumber(ARGV[p + 3]) % 4, tonumber(ARGV[p + 4])
    local tat, new, ok = tats[i], news[i], fits[i]
    local after, store = tat, false
    if mode == 2 then
      if backoff > 0 and new > now + tol + backoff then new = now + tol + backoff end
      after, store, ok = new, true, true
    elseif mode == 0 then
      if ok and not refused then after, store = new, true end
    elseif (not ok) and backoff > 0 then
      if new > now + tol + backoff then new = now + tol + backoff end
      if new > tat then after, store = new, true end
    end
    if store then
      redis.call('SET', KEYS[k + i], string.format('%.3f', after), 'PX', math.ceil(after - now) + 1)
    end
    local remaining = math.floor((tol - (after - now)) / interval + 1e-9)
    if remaining < 0 then remaining = 0 end
    local retry = 0
    if not ok then
      retry = math.ceil(after + cost * interval - tol - now)
      if retry < 0 then retry = 0 end
    end
    local ahead = math.ceil(after - now)
    if ahead < 0 then ahead = 0 end
    out[#out + 1] = ok and 1 or 0
    out[#out + 1] = remaining
    out[#out + 1] = retry
    out[#out + 1] = ahead
  end
  k = k + n
  a = a + n * 5
end
return out
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def _crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the hash of Redis Cluster's key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The cluster slot of a key, honouring a ``{hash tag}``."""
    raw = key.encode("utf-8", "surrogatepass")
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16(raw) % 16384


_Waiter = asyncio.Future[list[LimitResult] | None] | None
_Entry = tuple[Sequence[LimitCall], _Waiter]


def _encode(parts: list[Sequence[LimitCall]]) -> tuple[list[str], list[Any]]:
    keys: list[str] = []
    args: list[Any] = [len(parts)]
    for calls in parts:
        args.append(len(calls))
        for c in calls:
            keys.append(c.key)
            args += [
                round(c.interval * 1000, 6),
                round(c.tolerance * 1000, 6),
                c.cost,
                c.mode + (4 if c.enforce else 0),
                round(c.backoff * 1000, 3),
            ]
    return keys, args


class RedisLimiter:
    """Decides limit calls in Redis; see the module's theory of operation."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        cluster: bool = False,
        max_batch: int = 256,
        client: Any = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.cluster = cluster
        self.max_batch = max_batch
        self.client = client
        self.healthy = True
        self.stats: dict[str, int] = {
            "decisions": 0,
            "records": 0,
            "batches": 0,
            "store_errors": 0,
            "short_circuited": 0,
            "records_dropped": 0,
        }
        self._queue: list[_Entry] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._down_until = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        if self.client is None:
            if self.cluster:
                from redis.asyncio.cluster import RedisCluster

                self.client = RedisCluster.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
            else:
                import redis.asyncio as redis

                self.client = redis.Redis.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
                )
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self.client.script_load(SCRIPT), self.timeout * 4)
        except Exception as exc:  # the first batch retries; requests meanwhile follow on_store_error
            self._failed(exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_tasks([task], "rate-limit store", logger)
        queued, self._queue = self._queue, []
        for _, waiter in queued:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()
            self.client = None

    # -- requests ------------------------------------------------------------------------------
    def available(self) -> bool:
        return self._task is not None and time.monotonic() >= self._down_until

    async def decide(self, calls: Sequence[LimitCall]) -> list[LimitResult] | None:
        """The results of one request's calls, or None when the store is unavailable."""
        if not self.available():
            self.stats["short_circuited"] += 1
            return None
        waiter: asyncio.Future[list[LimitResult] | None] = asyncio.get_running_loop().create_future()
        self._queue.append((calls, waiter))
        assert self._wake is not None
        self._wake.set()
        return await waiter

    def record(self, calls: Sequence[LimitCall]) -> None:
        """Charge outcome calls with the next batch; nobody waits for them."""
        if not self.available():
            self.stats["records_dropped"] += 1
            return
        self._queue.append((calls, None))
        assert self._wake is not None
        self._wake.set()

    # -- the flusher ---------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._flush(batch)

    async def _flush(self, batch: list[_Entry]) -> None:
        self.stats["batches"] += 1
        try:
            outcomes = await asyncio.wait_for(self._send(batch), self.timeout)
        except asyncio.CancelledError:
            self._settle(batch, None)
            raise
        except Exception as exc:
            self._failed(exc)
            self._settle(batch, None)
            return
        if not self.healthy:
            self.healthy = True
            logger.warning("rate-limit store %s recovered", self._where())
        self._settle(batch, outcomes)

    def _settle(self, batch: list[_Entry], outcomes: list[list[LimitResult]] | None) -> None:
        for i, (_, waiter) in enumerate(batch):
            if waiter is None:
                self.stats["records"] += 1
            else:
                self.stats["decisions"] += 1
                if not waiter.done():
                    waiter.set_result(None if outcomes is None else outcomes[i])

    async def _send(self, batch: list[_Entry]) -> list[list[LimitResult]]:
        results: list[list[LimitResult | None]] = [[None] * len(calls) for calls, _ in batch]
        if not self.cluster:
            groups = [[(r, list(range(len(calls)))) for r, (calls, _) in enumerate(batch)]]
        else:
            by_slot: dict[int, dict[int, list[int]]] = {}
            for r, (calls, _) in enumerate(batch):
                for i, call in enumerate(calls):
                    by_slot.setdefault(key_slot(call.key), {}).setdefault(r, []).append(i)
            groups = [list(members.items()) for members in by_slot.values()]
        encoded = [_encode([[batch[r][0][i] for i in items] for r, items in group]) for group in groups]
        replies = await asyncio.gather(*(self._eval(keys, args) for keys, args in encoded))
        for group, reply in zip(groups, replies, strict=True):
            pos = 0
            for r, items in group:
                for i in items:
                    allowed, remaining, retry, ahead = reply[pos : pos + 4]
                    pos += 4
                    results[r][i] = LimitResult(bool(allowed), int(remaining), retry / 1000, ahead / 1000)
        return [[x for x in row if x is not None] for row in results]

    async def _eval(self, keys: list[str], args: list[Any]) -> list[int]:
        from redis.exceptions import NoScriptError

        try:
            return await self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)  # type: ignore[no-any-return]
        except NoScriptError:
            await self.client.script_load(SCRIPT)
            return await self.client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)  # type: ignore[no-any-return]

    def _failed(self, exc: BaseException) -> None:
        self.stats["store_errors"] += 1
        self._down_until = time.monotonic() + self.retry_interval
        if self.healthy:
            self.healthy = False
            logger.error(
                "rate-limit store %s unavailable (%s); applying on_store_error",
                self._where(),
                type(exc).__name__ + (f": {str(exc)[:120]}" if str(exc) else ""),
            )

    def _where(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"
