"""Tamper evidence: a SHA-256 hash chain over the events of each instance.

With ``audit.tamper_evidence: true`` the writer links every event it encodes
to the one before it from the same instance (``unmapped.instance``)::

    hash[n] = SHA-256(hash[n-1] || text[n])      seq[n] = seq[n-1] + 1

where ``text`` is the exact JSON text of the event as stored (the ``event``
column, or the ``event`` member of a JSON-lines record, without the line
terminator). A *run* is the chain of one writer: it starts at
``seq = the start time in microseconds`` with ``hash[-1]`` = 32 zero bytes,
so runs of one instance name (a container restarted with the same host name
and pid) never share sequence numbers, and a gap in ``seq`` marks the start
of a new run. The link is made when the event leaves the queue, before it
reaches the journal or the sink, so a replayed event keeps its place.

:func:`verify` re-derives every hash from what is stored, ordered by
``seq``, and reports the first row that does not match:

* a modified event fails its own link (or the next one, if its hash was
  recomputed too);
* a deleted event leaves a gap, and the row after the gap is not the start
  of a run (its hash chains from the deleted one);
* reordered events (swapped texts or sequence numbers) fail their links;
* an inserted event needs a sequence number: a duplicate is reported, and a
  forged run start must hash from zero like a genuine one.

Limits, as for any chain without a secret key or an external anchor: someone
who can write the store can recompute every hash after the point they
changed, and deleting the *last* events of a run is indistinguishable from a
writer that stopped. The writer logs each run's head (``seq`` and ``hash``)
when it stops; recording those lines elsewhere (a log collector) anchors the
chain. Retention deletes the oldest events, so the first stored row of an
instance may chain from an expired one; ``verify`` accepts that only when
told so (``expired_start_ok``, set when the policy has a retention).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["GENESIS", "Break", "Chain", "ChainRow", "Link", "Verification", "link_hash", "verify"]

GENESIS = bytes(32)
_MAX_BREAKS = 100


@dataclass(frozen=True, slots=True)
class Link:
    """An event's place in its instance's chain."""

    seq: int
    hash: str  # 64 lower-case hex digits


def link_hash(previous: bytes, text: bytes) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(text)
    return digest.digest()


class Chain:
    """The writer's side: the head of each instance's run, advanced as events are encoded."""

    def __init__(self, clock_us: Callable[[], int] | None = None) -> None:
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self._heads: dict[str, tuple[int, bytes]] = {}

    def link(self, instance: str, text: bytes) -> Link:
        head = self._heads.get(instance)
        seq, previous = (self._clock_us(), GENESIS) if head is None else (head[0] + 1, head[1])
        digest = link_hash(previous, text)
        self._heads[instance] = (seq, digest)
        return Link(seq, digest.hex())

    def heads(self) -> dict[str, Link]:
        """The last link of each instance's run (what an external anchor records)."""
        return {name: Link(seq, digest.hex()) for name, (seq, digest) in self._heads.items()}


@dataclass(frozen=True, slots=True)
class ChainRow:
    """What verification reads of a stored event."""

    instance: str
    seq: int
    hash: str
    text: bytes
    uid: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Break:
    """A link that does not hold: the row named here, and why."""

    instance: str
    seq: int
    uid: str
    time_ms: int
    reason: str

    def __str__(self) -> str:
        where = f"instance {self.instance!r} seq {self.seq} (event {self.uid}, time {self.time_ms})"
        return f"{where}: {self.reason}"


@dataclass
class Verification:
    checked: int = 0
    runs: int = 0
    # per instance: (first seq, last seq, last hash)
    instances: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # instances whose first stored row chains from an expired event (accepted with expired_start_ok)
    expired_starts: list[str] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)  # the first ones, at most 100
    broken: int = 0

    @property
    def ok(self) -> bool:
        return self.broken == 0

    @property
    def first(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


def verify(rows: Iterable[ChainRow], *, expired_start_ok: bool = False) -> Verification:
    """Check the links of ``rows``, which come ordered by ``(instance, seq, uid)``."""
    result = Verification()
    previous: ChainRow | None = None

    def broken(row: ChainRow, reason: str) -> None:
        result.broken += 1
        if len(result.breaks) < _MAX_BREAKS:
            result.breaks.append(Break(row.instance, row.seq, row.uid, row.time_ms, reason))

    for row in rows:
        result.checked += 1
        first_of_instance = previous is None or previous.instance != row.instance
        if first_of_instance:
            previous = None
        stored = row.hash.lower()
        if previous is not None and row.seq == previous.seq:
            broken(row, f"sequence number {row.seq} appears twice: an event was inserted or copied")
            continue  # the chain goes on from the first of the two
        if previous is not None and row.seq == previous.seq + 1:
            if link_hash(bytes.fromhex(previous.hash), row.text).hex() != stored:
                broken(row, "hash mismatch: this event, or its place in the chain, was changed")
        elif link_hash(GENESIS, row.text).hex() == stored:
            result.runs += 1  # a run starts here
        elif first_of_instance and expired_start_ok:
            result.runs += 1
            result.expired_starts.append(row.instance)
        elif first_of_instance:
            broken(row, "the first stored event does not start a chain: earlier events were deleted")
        else:
            assert previous is not None
            broken(
                row,
                f"events {previous.seq + 1}..{row.seq - 1} are missing (deleted), or this event was changed",
            )
        name = row.instance
        start = result.instances[name][0] if name in result.instances else row.seq
        result.instances[name] = (start, row.seq, stored)
        if _is_hex64(stored):
            previous = row
        else:
            broken(row, "the stored hash is not 64 hex digits")
            previous = None
    return result


def _is_hex64(text: str) -> bool:
    if len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True
