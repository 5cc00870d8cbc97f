"""The shared block store: one Redis hash, and a pub/sub channel that announces its changes.

Theory of operation
-------------------
Blocks are few (hundreds, not millions) and read on every request, so every
process keeps all of them in memory (:class:`~apishield.detect.blocks.BlockList`)
and Redis is only the place they are agreed on:

* ``<prefix>all`` is a hash from target (``ip:192.0.2.1``) to the block as
  JSON. One field per target is what makes "a new block replaces the old
  one" hold across instances. The hash has no TTL; expired blocks are
  ignored by every reader and deleted by the next full reload;
* ``<prefix>changes`` is a pub/sub channel. Adding or removing a block
  writes the hash and publishes ``{"op": "put", "block": ...}`` or
  ``{"op": "del", "target": ...}`` in one ``MULTI``, so an instance that
  sees the message can also read the new state.

Each process runs :meth:`RedisBlockStore.sync` for its mirror: it
subscribes *first*, then loads the whole hash, then applies messages as
they come; every ``resync_interval`` it loads the whole hash again. The
order matters: a change made while the hash is being read is either in
what was read or in a message that arrives afterwards (both operations are
idempotent, so seeing one twice is harmless). Pub/sub delivers at most
once and not to a subscriber that was disconnected, so the periodic reload
is what bounds how long a missed message can go unnoticed; a reconnection
reloads at once. A block therefore reaches every instance within a round
trip, and within ``resync_interval`` in the worst case, and survives
restarts of the gateways (Redis keeps it; the detection service loads the
whole hash when it starts).

While Redis cannot be reached the mirror keeps what it had: blocks stay
enforced (and expire on time), new ones wait for the connection to return.
The first failure is logged at WARNING, the recovery at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from apishield.detect.blocks import Block, BlockList, find_block
from apishield.services.cancellation import cancelling

__all__ = ["RedisBlockStore"]

logger = logging.getLogger("apishield.blocks")


class RedisBlockStore:
    def __init__(
        self, url: str, key_prefix: str = "apishield:blocks:", resync_interval: float = 10.0
    ) -> None:
        import redis.asyncio as redis

        self.url = url
        self.hash = key_prefix + "all"
        self.channel = key_prefix + "changes"
        self.resync_interval = resync_interval
        self.client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._down = False

    async def add(self, block: Block) -> Block:
        message = orjson.dumps({"op": "put", "block": block.as_dict()})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.hash, block.target, orjson.dumps(block.as_dict()))
            pipe.publish(self.channel, message)
            await pipe.execute()
        return block

    async def remove(self, ident: str) -> Block | None:
        found = find_block(await self.list(), ident)
        if found is None:
            return None
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.hash, found.target)
            pipe.publish(self.channel, orjson.dumps({"op": "del", "target": found.target}))
            await pipe.execute()
        return found

    async def list(self) -> list[Block]:
        """The active blocks; expired ones are deleted from the hash on the way."""
        now = time.time()
        raw: dict[bytes, bytes] = await self.client.hgetall(self.hash)
        active: list[Block] = []
        expired: list[bytes] = []
        for target, data in raw.items():
            try:
                block = Block.from_dict(orjson.loads(data))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring an unreadable block %r in %s: %s", target, self.hash, exc)
                continue
            if block.active(now):
                active.append(block)
            else:
                expired.append(target)
        if expired:
            await self.client.hdel(self.hash, *expired)
        return sorted(active, key=lambda b: b.until)

    async def sync(self, mirror: BlockList) -> None:
        """Keep ``mirror`` equal to the hash until cancelled (see the module documentation)."""
        import redis

        delay = 0.2
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            tasks: list[asyncio.Task[None]] = []
            try:
                await pubsub.subscribe(self.channel)
                mirror.replace(await self.list())
                self._recovered()
                delay = 0.2
                tasks = [
                    asyncio.create_task(self._listen(pubsub, mirror)),
                    asyncio.create_task(self._reload(mirror)),
                ]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # the error that ended it
            except (redis.RedisError, OSError) as exc:
                if cancelling():
                    raise
                if not self._down:
                    self._down = True
                    logger.warning("block store %s unavailable, keeping the blocks known: %s", self.hash, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _listen(self, pubsub: Any, mirror: BlockList) -> None:
        """Apply change notifications as they come (a blocking read: no timeout to race a cancel)."""
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None and message.get("type") == "message":
                self._apply(mirror, message["data"])

    async def _reload(self, mirror: BlockList) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            mirror.replace(await self.list())

    def _apply(self, mirror: BlockList, data: bytes) -> None:
        try:
            change = orjson.loads(data)
            if change["op"] == "put":
                mirror.put(Block.from_dict(change["block"]))
            elif change["op"] == "del":
                kind, _, value = str(change["target"]).partition(":")
                mirror.remove(kind, value)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring an unreadable block change on %s: %s", self.channel, exc)

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            logger.info("block store %s reachable again", self.hash)

    async def close(self) -> None:
        await self.client.aclose()
