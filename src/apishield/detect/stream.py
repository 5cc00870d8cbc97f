"""Detection across instances: every instance's events in one Redis stream, one runner reading it.

Theory of operation
-------------------
A detector that counts what one subject does must see all of that
subject's requests, and behind a load balancer they are spread over every
gateway instance (and every worker process of each). So instances do not
judge their own events; they pool them:

1. **Publishing.** Every process appends the events its audit writer hands
   to the detection tap to the stream ``<name>``: one ``XADD`` per event,
   ``MAXLEN ~ max_length``, all the events of a batch in one pipelined
   round trip. The entries are a *projection* of the OCSF events: bulky
   fields no detector reads (stage timings, product metadata, the
   destination endpoint...) are left out, everything else keeps its place,
   so the detectors read the same paths as on a single instance. Publishing
   never waits on the request path: batches wait in a bounded queue, and
   while Redis is down they are dropped (counted, logged once).

2. **One runner at a time.** Detectors keep windows in memory, and two of
   them reading the same events would raise every alert twice, so exactly
   one process *runs* detection. It holds a lease: the key ``<name>:lease``,
   taken with ``SET NX PX <lease>`` and holding a value unique to this
   process. The holder renews it every third of the lease with a script that
   extends it only if it still holds its own value, and deletes it the same
   way when it stops (so the next runner need not wait out the lease). Every
   other process tries to take the lease every third of the lease. If the
   runner dies or loses Redis, its lease expires and another process takes
   over within ``lease`` plus a third of it. A runner that fails to renew
   stops reading at once.

3. **Reading from the last acknowledged entry.** The stream has a consumer
   group (``apishield-detect``) with one consumer name shared by every
   runner, so the group's pending list is the runner's, whoever it is: a new
   runner first reads the entries delivered to its predecessor and never
   acknowledged (``XREADGROUP ... 0``), then new ones (``>``). Entries are
   acknowledged once the engine has judged them and their alerts are
   recorded. Delivery is therefore at least once: after a takeover, a batch
   may be judged twice, which alert deduplication absorbs. What a new
   runner cannot inherit is the detectors' in-memory windows: counting
   starts afresh at each takeover (a takeover is rare; a runner that keeps
   its lease keeps its windows).

Without ``detection.stream`` each process judges its own events
(:class:`~apishield.detect.service.DetectionService` feeds its engine from
the tap directly), which is exact for a single gateway process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from apishield.config.detection import StreamPolicy
from apishield.services.cancellation import cancelling, stop_tasks

__all__ = ["GROUP", "EventStream", "project"]

logger = logging.getLogger("apishield.detect")

GROUP = "apishield-detect"
_CONSUMER = "runner"
_READ_COUNT = 1000
_MAX_QUEUED_EVENTS = 100_000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# fields of an OCSF API Activity event no detector reads; left out of the stream
_DROPPED: tuple[tuple[str, ...], ...] = (
    ("start_time",),
    ("duration",),
    ("type_uid",),
    ("category_uid",),
    ("status",),
    ("dst_endpoint",),
    ("metadata", "product"),
    ("metadata", "profiles"),
    ("metadata", "version"),
    ("metadata", "log_name"),
    ("http_request", "version"),
    ("http_request", "uid"),
    ("http_request", "url", "scheme"),
    ("http_request", "url", "hostname"),
    ("http_response", "latency"),
    ("unmapped", "stage_us"),
)

Event = dict[str, Any]


def project(event: Event) -> Event:
    """``event`` without the fields in :data:`_DROPPED` (the caller's dicts are not changed)."""
    out = dict(event)
    for path in _DROPPED:
        _drop(out, path)
    return out


def _drop(node: Event, path: tuple[str, ...]) -> None:
    head = path[0]
    if head not in node:
        return
    if len(path) == 1:
        del node[head]
        return
    child = node[head]
    if isinstance(child, dict):
        node[head] = child = dict(child)  # copy on write: the event is shared with other taps
        _drop(child, path[1:])


class EventStream:
    """Publishes this process's events and, while it holds the lease, feeds the stream to ``consume``."""

    def __init__(
        self,
        policy: StreamPolicy,
        instance: str,
        consume: Callable[[list[Event]], Awaitable[None]],
    ) -> None:
        import redis.asyncio as redis

        self.policy = policy
        self.name = policy.name
        self.lease_key = policy.name + ":lease"
        self.holder = f"{instance}:{os.urandom(4).hex()}"
        self.consume = consume
        self.client: Any = redis.Redis.from_url(policy.url, socket_timeout=5, socket_connect_timeout=2)
        self.leader = False
        self.counters = {"published": 0, "dropped": 0, "consumed": 0, "takeovers": 0}
        self._queue: deque[list[Event]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False  # set by stop(): the loops end even if a cancellation is lost
        self._publish_down = False
        self._renew: Any = None
        self._release: Any = None

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, events: list[Event]) -> None:
        """Queue a batch for the stream (on the event loop's thread); never waits."""
        if not events:
            return
        if self._queued + len(events) > _MAX_QUEUED_EVENTS:
            self.counters["dropped"] += len(events)
            return
        self._queue.append(events)
        self._queued += len(events)
        self._wake.set()

    async def _publisher(self) -> None:
        import redis

        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue.popleft()
                self._queued -= len(batch)
                try:
                    await self._xadd(batch)
                except (redis.RedisError, OSError) as exc:
                    if cancelling():
                        raise
                    self.counters["dropped"] += len(batch)
                    if not self._publish_down:
                        self._publish_down = True
                        logger.warning("event stream %s unavailable, events not pooled: %s", self.name, exc)
                    continue
                self.counters["published"] += len(batch)
                if self._publish_down:
                    self._publish_down = False
                    logger.info("event stream %s reachable again", self.name)

    async def _xadd(self, batch: list[Event]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(
                    self.name,
                    {b"e": orjson.dumps(project(event), default=str)},
                    maxlen=self.policy.max_length,
                    approximate=True,
                )
            await pipe.execute()

    # -- the runner ----------------------------------------------------------------------------------

    async def _runner(self) -> None:
        import redis

        lease_ms = int(self.policy.lease * 1000)
        pause = self.policy.lease / 3
        while not self._stopping:
            try:
                if await self.client.set(self.lease_key, self.holder, nx=True, px=lease_ms):
                    self.leader = True
                    self.counters["takeovers"] += 1
                    logger.info("detection runner: %s holds the lease on %s", self.holder, self.name)
                    await self._lead(lease_ms)
            except (redis.RedisError, OSError) as exc:
                if cancelling():
                    raise
                if self.leader:
                    logger.warning("detection runner: lost Redis, giving up the lease: %s", exc)
            self.leader = False
            await asyncio.sleep(pause)

    async def _lead(self, lease_ms: int) -> None:
        """Read and judge the stream while the lease is ours."""
        renewer = asyncio.create_task(self._keep_lease(lease_ms))
        try:
            await self._ensure_group()
            pending = True  # first the entries a previous runner received and did not acknowledge
            while self.leader and not renewer.done() and not self._stopping:
                cursor = "0" if pending else ">"
                block = None if pending else 1000
                reply = await self.client.xreadgroup(
                    GROUP, _CONSUMER, {self.name: cursor}, count=_READ_COUNT, block=block
                )
                entries = reply[0][1] if reply else []
                if pending and not entries:
                    pending = False
                    continue
                if entries:
                    await self._judge(entries)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer

    async def _keep_lease(self, lease_ms: int) -> None:
        import redis

        try:
            while True:
                await asyncio.sleep(lease_ms / 3000)
                if not await self._renew(keys=[self.lease_key], args=[self.holder, lease_ms]):
                    logger.warning("detection runner: %s lost the lease on %s", self.holder, self.name)
                    break
        except (redis.RedisError, OSError) as exc:
            if cancelling():
                raise
            logger.warning("detection runner: cannot renew the lease: %s", exc)
        self.leader = False

    async def _ensure_group(self) -> None:
        import redis

        try:
            await self.client.xgroup_create(self.name, GROUP, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _judge(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        events: list[Event] = []
        for _, fields in entries:
            data = fields.get(b"e") if fields else None  # None: trimmed before it was read
            if data is not None:
                try:
                    events.append(orjson.loads(data))
                except orjson.JSONDecodeError:
                    continue
        if events:
            await self.consume(events)
            self.counters["consumed"] += len(events)
        await self.client.xack(self.name, GROUP, *[entry_id for entry_id, _ in entries])

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        import redis

        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        try:  # from now on no event published is missed by the group, whoever runs it
            await self._ensure_group()
        except (redis.RedisError, OSError) as exc:
            logger.warning("event stream %s unavailable at start: %s", self.name, exc)
        self._stopping = False
        self._tasks = [asyncio.create_task(self._publisher()), asyncio.create_task(self._runner())]

    async def flush(self) -> None:
        """Publish what is queued now (at stop)."""
        while self._queue:
            batch = self._queue.popleft()
            self._queued -= len(batch)
            with contextlib.suppress(Exception):
                await self._xadd(batch)

    async def stop(self) -> None:
        # A cancellation can be swallowed inside a Redis read (redis-py), so the loops also check
        # the flag (a blocking read returns within a second) and the wait here is bounded.
        self._stopping = True
        self._wake.set()
        await stop_tasks(self._tasks, f"event stream {self.name}", logger)
        self._tasks.clear()
        await self.flush()
        if self._release is not None:
            with contextlib.suppress(Exception):
                await self._release(keys=[self.lease_key], args=[self.holder])
        self.leader = False
        with contextlib.suppress(Exception):
            await self.client.aclose()
