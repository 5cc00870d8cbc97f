"""Blocks and throttles: responses to an alert (or an operator) that every instance enforces.

A :class:`Block` names a *target*, one of an IP address, a subject, a
client, a token (by the fingerprint the audit events carry,
:func:`apishield.audit.event.fingerprint` of its ``jti``) or an API key id,
and says until when requests from it are refused (``mode: block``, 403) or
held to a rate (``mode: throttle``, 429 past ``rate`` requests per ``per``
seconds). There is at most one block per target: a new one replaces it.

Where blocks live and how they reach the stages:

* a :class:`BlockStore` keeps them: :class:`MemoryBlockStore` in this
  process, or :class:`apishield.detect.blocks_redis.RedisBlockStore` shared
  by every instance and kept across restarts;
* every process holds a :class:`BlockList`, a plain in-memory mirror that
  the enforcement stages (:mod:`apishield.core.stages.blocklist`) read with
  dictionary lookups and no I/O; ``store.sync(mirror)`` keeps it equal to the
  store (the Redis store through change notifications and a periodic full
  reload). An expired block stops matching at once, whether or not the
  store has dropped it yet.

Throttles are counted per process by :class:`Throttles`, the GCRA of
:mod:`apishield.ratelimit.gcra` with a burst of the whole rate: a throttled
caller gets ``rate`` requests at once, then one every ``per / rate``
seconds, from each gateway process (N processes allow N times the rate; a
throttle is a brake, not an exact quota).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from apishield.ratelimit.gcra import LimitCall, LimitResult, MemoryStore

__all__ = [
    "KEY_KINDS",
    "Block",
    "BlockKind",
    "BlockList",
    "BlockMode",
    "BlockStore",
    "MemoryBlockStore",
    "Throttles",
    "make_block",
    "new_block_id",
    "normalize_value",
    "open_block_store",
    "retry_after",
    "target_of",
]

BlockKind = Literal["ip", "subject", "client", "token", "api_key"]
BlockMode = Literal["block", "throttle"]
_KINDS: tuple[str, ...] = get_args(BlockKind)
# the prefixes of detector keys ("sub:alice") and the block kinds they name; "account:" names a
# login name, not a verified caller, and cannot be blocked
KEY_KINDS: dict[str, BlockKind] = {
    "ip": "ip",
    "sub": "subject",
    "client": "client",
    "token": "token",
    "api_key": "api_key",
}


def new_block_id() -> str:
    return "bl-" + os.urandom(5).hex()


@dataclass(frozen=True, slots=True)
class Block:
    """One blocked or throttled target. Times are epoch seconds."""

    id: str
    kind: BlockKind
    value: str
    until: float
    mode: BlockMode = "block"
    rate: int | None = None  # throttle: requests allowed per ``per`` seconds
    per: float = 60.0
    reason: str = ""
    alert_id: str | None = None
    created_by: str = ""
    created_at: float = 0.0

    @property
    def target(self) -> str:
        return f"{self.kind}:{self.value}"

    def active(self, now: float) -> bool:
        return now < self.until

    def describe(self) -> str:
        """``block ip 192.0.2.1`` or ``throttle subject alice to 10/60s``."""
        text = f"{self.mode} {self.kind} {self.value}"
        if self.mode == "throttle":
            text += f" to {self.rate}/{self.per:g}s"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "until": self.until,
            "mode": self.mode,
            "rate": self.rate,
            "per": self.per,
            "reason": self.reason,
            "alert_id": self.alert_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Block:
        return make_block(
            data["kind"],
            data["value"],
            until=float(data["until"]),
            mode=data.get("mode", "block"),
            rate=data.get("rate"),
            per=float(data.get("per", 60.0)),
            reason=data.get("reason", ""),
            alert_id=data.get("alert_id"),
            created_by=data.get("created_by", ""),
            created_at=float(data.get("created_at", 0.0)),
            block_id=data["id"],
        )


def normalize_value(kind: str, value: str) -> str:
    """The form a target is matched in: IP addresses compressed, IPv4-mapped IPv6 as IPv4."""
    if kind not in _KINDS:
        raise ValueError(f"a block's kind is one of {', '.join(_KINDS)}, not {kind!r}")
    value = value.strip()
    if not value:
        raise ValueError(f"a {kind} block needs a value")
    if kind == "ip":
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"not an IP address: {value!r}") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return str(address)
    return value


def make_block(
    kind: str,
    value: str,
    *,
    until: float,
    mode: str = "block",
    rate: int | None = None,
    per: float = 60.0,
    reason: str = "",
    alert_id: str | None = None,
    created_by: str = "",
    created_at: float | None = None,
    block_id: str | None = None,
) -> Block:
    """A checked :class:`Block` (``ValueError`` with a message fit for the command line)."""
    value = normalize_value(kind, value)
    if mode not in ("block", "throttle"):
        raise ValueError(f"a block's mode is block or throttle, not {mode!r}")
    if mode == "throttle" and (rate is None or rate < 1 or not per > 0):
        raise ValueError("a throttle needs a rate of at least 1 request per period")
    return Block(
        id=block_id or new_block_id(),
        kind=kind,  # type: ignore[arg-type]  # checked by normalize_value
        value=value,
        until=until,
        mode=mode,  # type: ignore[arg-type]  # checked above
        rate=rate if mode == "throttle" else None,
        per=per,
        reason=reason,
        alert_id=alert_id,
        created_by=created_by,
        created_at=time.time() if created_at is None else created_at,
    )


def target_of(key: str) -> tuple[BlockKind, str] | None:
    """The block target a detector key names (``"sub:alice"`` -> ``("subject", "alice")``), if any."""
    prefix, sep, value = key.partition(":")
    kind = KEY_KINDS.get(prefix)
    if not sep or kind is None or not value:
        return None
    try:
        return kind, normalize_value(kind, value)
    except ValueError:
        return None


class BlockList:
    """The blocks this process enforces: plain data, read by the stages, written by the sync task."""

    def __init__(self, blocks: list[Block] | tuple[Block, ...] = ()) -> None:
        self._by_target: dict[tuple[str, str], Block] = {(b.kind, b.value): b for b in blocks}

    def __len__(self) -> int:
        return len(self._by_target)

    def put(self, block: Block) -> None:
        self._by_target[(block.kind, block.value)] = block

    def remove(self, kind: str, value: str) -> None:
        self._by_target.pop((kind, value), None)

    def replace(self, blocks: list[Block]) -> None:
        """Become exactly ``blocks`` (a full reload)."""
        self._by_target = {(b.kind, b.value): b for b in blocks}

    def get(self, kind: str, value: str | None, now: float) -> Block | None:
        if value is None:
            return None
        block = self._by_target.get((kind, value))
        if block is None:
            return None
        if now >= block.until:
            self._by_target.pop((kind, value), None)
            return None
        return block

    def blocks(self, now: float) -> list[Block]:
        """The active blocks, soonest to end first."""
        return sorted((b for b in self._by_target.values() if b.active(now)), key=lambda b: b.until)

    def match(
        self,
        ip: str | None = None,
        subject: str | None = None,
        client_id: str | None = None,
        token_fp: str | None = None,
        api_key_id: str | None = None,
        now: float | None = None,
    ) -> Block | None:
        """The block that applies to a request with these facts: a refusal before a throttle."""
        if not self._by_target:
            return None
        if now is None:
            now = time.time()
        throttle: Block | None = None
        for kind, value in (
            ("ip", ip),
            ("subject", subject),
            ("client", client_id),
            ("token", token_fp),
            ("api_key", api_key_id),
        ):
            block = self.get(kind, value, now)
            if block is not None:
                if block.mode == "block":
                    return block
                throttle = throttle or block
        return throttle


class Throttles:
    """Per-process GCRA counters of throttled targets, keyed by block id."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.store = MemoryStore(max_keys=max_keys)

    def check(self, block: Block, now: float | None = None) -> LimitResult:
        """Count one request against ``block``'s rate; ``allowed`` is False past it."""
        rate = block.rate or 1
        interval = block.per / rate
        call = LimitCall(key=block.id, interval=interval, tolerance=rate * interval, cost=1)
        return self.store.decide([call], now)[0]


def retry_after(result: LimitResult) -> int:
    """``Retry-After`` in whole seconds (at least 1) for a refused throttle."""
    return max(1, math.ceil(result.retry_after))


class BlockStore(Protocol):
    """Where blocks are kept; :meth:`sync` keeps a process's :class:`BlockList` equal to it."""

    async def add(self, block: Block) -> Block: ...
    async def remove(self, ident: str) -> Block | None: ...  # a block id, or its target "kind:value"
    async def list(self) -> list[Block]: ...  # the active blocks
    async def sync(self, mirror: BlockList) -> None: ...  # runs until cancelled
    async def close(self) -> None: ...


class MemoryBlockStore:
    """The blocks of this process only (one gateway process, tests)."""

    def __init__(self) -> None:
        self.blocks = BlockList()
        self._mirrors: list[BlockList] = []

    async def add(self, block: Block) -> Block:
        self.blocks.put(block)
        for mirror in self._mirrors:
            mirror.put(block)
        return block

    async def remove(self, ident: str) -> Block | None:
        found = find_block(self.blocks.blocks(time.time()), ident)
        if found is not None:
            for mirror in (self.blocks, *self._mirrors):
                mirror.remove(found.kind, found.value)
        return found

    async def list(self) -> list[Block]:
        return self.blocks.blocks(time.time())

    async def sync(self, mirror: BlockList) -> None:
        mirror.replace(self.blocks.blocks(time.time()))
        self._mirrors.append(mirror)
        try:
            await asyncio.Event().wait()
        finally:
            self._mirrors.remove(mirror)

    async def close(self) -> None:
        return None


def find_block(blocks: list[Block], ident: str) -> Block | None:
    """The block whose id is ``ident``, or whose target (``kind:value``) it names."""
    kind, sep, value = ident.partition(":")
    target = None
    if sep and kind in _KINDS:
        try:
            target = (kind, normalize_value(kind, value))
        except ValueError:
            target = None
    for block in blocks:
        if block.id == ident or (block.kind, block.value) == target:
            return block
    return None


def open_block_store(
    url: str, key_prefix: str = "apishield:blocks:", resync_interval: float = 10.0
) -> BlockStore:
    """``memory`` or a ``redis://`` URL (``detection.blocks.store``)."""
    if url == "memory":
        return MemoryBlockStore()
    from apishield.detect.blocks_redis import RedisBlockStore

    return RedisBlockStore(url, key_prefix=key_prefix, resync_interval=resync_interval)
