"""The audit writer: events from the queue to the sink, off the request path.

What this module is for
-----------------------

The audit stage (:mod:`apishield.core.stages.audit`) builds one event per
request and appends it to an :class:`~apishield.core.stages.audit.AuditQueue`:
a list append, no I/O. Everything after that happens here, in two tasks on
the adapter's event loop:

* a *ticker* that wakes every ``flush_interval`` (and when the queue
  overflows) and starts a *pump* unless one is running;
* the *pump*, which takes the queued events in batches of ``batch_size``,
  encodes each once with ``orjson`` (links it into the hash chain when
  ``tamper_evidence`` is on), hands the batch to the sink and, when the sink
  has confirmed everything new, replays what the journal holds.

A request never waits for any of it, except in ``acknowledged`` durability
(below), where it waits for one ``fsync`` shared with every request that
finished meanwhile.

Where an event can be
---------------------

At any moment an event is in exactly one of these places:

1. the queue (memory), from its request's end until the next pump or
   overflow takes it;
2. a batch in flight (memory): taken, encoded, being written to the sink;
3. the journal (:mod:`apishield.audit.journal`, local files), if the sink
   failed that batch, was known to be down, or was too slow (see below);
4. the sink, once it confirmed the batch.

Moves are one-way (1→2→4, 1→2→3→4, 1→3→4) and an event leaves a place only
after the next one has it: a batch that the sink refused is appended to the
journal before it is forgotten, a journal segment is deleted only after the
sink confirmed every line of it. Replays are idempotent in the database
sinks (``metadata.uid`` is unique), so a batch written twice, because the
sink stored it but the acknowledgement was lost with the connection, is
still one row per event.

When the sink is down
---------------------

A sink that fails at start does not stop the gateway: the failure is logged
once, naming the setting (``audit.path``, ``audit.dsn``), events go to the
journal, and the writer tries to open the sink again with exponential
backoff (0.5 s doubling to 30 s). When it is back, the pump writes new events
first and then replays the journal, a few batches per turn, so fresh events
never wait behind a long backlog. A sink that is up but slow (a batch still
in flight when the backlog passes ``4 × batch_size``) also sends the backlog
to the journal, so memory stays bounded and the events are on disk sooner.
When the queue itself is full (``queue_size``), it hands its contents to the
writer (``queue.overflow``), which sends them to the journal at the next
turn of the loop instead of dropping them.

The journal is bounded (1 GiB by default). Past the bound, and when it
cannot be written at all, events are dropped, counted in ``stats.dropped``
and logged as errors: the one loss this design accepts, after the sink has
been down long enough to fill the disk budget.

What a crash can lose
---------------------

``durability: buffered`` (the default). A normal stop, and SIGTERM through
the adapters, call :meth:`AuditWriter.stop`, which writes everything still
queued to the sink, or to the journal if the sink is down: nothing is lost.
A SIGKILL (or an out-of-memory kill) loses what is only in memory: the
events queued since the last pump (at most one ``flush_interval`` of traffic
while the sink keeps up, never more than ``4 × batch_size`` once the
ticker has to spill) plus the one batch in flight. With the defaults
(0.05 s, 1,000 events) and 5,000 requests/s, that is at most about 250
queued events plus 250 in flight; at 500 requests/s, about 25 plus one
batch of at most 25. What reached the journal or the sink survives a
process kill (the operating system has it), but not necessarily a power
failure: buffered mode does not ``fsync``.

``durability: acknowledged``. Every event goes through the journal, and the
adapter awaits :meth:`AuditWriter.durable` before sending each response:
it returns once every event emitted before the call is in the journal and
``fsync``'d. The fsync is a group commit: the first caller drains the queue,
appends all of it in one ``write`` and syncs once, and every caller whose
event was in that batch returns when it completes; callers arriving
meanwhile share the next one. So no response is sent whose event could be
lost to a crash or a power failure: after a SIGKILL the next writer to open
the journal folder adopts the dead run's segments and replays them; a torn
last line in them belongs to an event whose ``durable()`` never returned.
The journal's copy is deleted only after the sink confirmed it durably
(SQLite with ``synchronous=FULL``, PostgreSQL on commit, JSON lines after an
``fsync``). If an event cannot be made durable (the journal is full or
unwritable), ``durable()`` raises :class:`AuditUnavailable`, and the adapter
answers 503 instead of sending an unrecorded response.

Taps
----

``taps`` are callables that receive every batch taken from the queue (the
event dicts, before the sink): metrics and anomaly detectors subscribe
there. They run on the event loop and must be quick and must not modify
events. An exception in a tap is logged and counted; it never stops the
writing.

Using it from an adapter
------------------------

::

    writer = AuditWriter.from_policy(pipeline.recorder, config.audit, loaded.base_dir, instance)
    if writer is not None:
        await writer.start()              # at startup (lifespan, server start)
    ...
    if writer is not None and writer.acknowledged:
        await writer.durable()            # before sending each response
    ...
    if writer is not None:
        await writer.stop()               # at shutdown, after the last request
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from apishield.audit.chain import Chain, Link
from apishield.audit.journal import Journal, JournalFull, ReplayBatch
from apishield.audit.record import Record, encode
from apishield.audit.sinks import Sink, SinkError
from apishield.config.audit import AuditPolicy
from apishield.core.stages.audit import AuditQueue

__all__ = ["AuditSetupError", "AuditUnavailable", "AuditWriter", "Tap", "WriterStats"]

log = logging.getLogger("apishield.audit")

Event = dict[str, Any]
Tap = Callable[[list[Event]], None]

_REPLAY_BATCHES_PER_TURN = 20
_SCAN_EVERY = 60.0  # seconds between looks for segments left by dead processes
_RELOG_EVERY = 60.0  # a sink that stays down is logged again at most this often
DEFAULT_JOURNAL_BYTES = 1 << 30


def noteworthy(event: Event) -> bool:
    """``audit.events: decisions``: a denial, a report-mode finding, an error or a modification."""
    if event.get("class_uid") != 6003 or event.get("action_id") != 1 or event.get("disposition_id") != 1:
        return True
    decisions = event.get("unmapped", {}).get("decisions", ())
    return any(d.get("outcome") != "allow" for d in decisions)


class AuditSetupError(Exception):
    """The audit settings cannot work (a malformed DSN, an unusable journal in acknowledged mode)."""


class AuditUnavailable(Exception):
    """``durable()`` could not make the events durable: answer 503 rather than send the response."""


@dataclass(frozen=True)
class WriterStats:
    """Counters since start (events unless named otherwise); they feed the Prometheus metrics."""

    written: int  # confirmed by the sink, by any path
    spilled: int  # sent to the journal because the sink was down or slow, or the queue full
    # of ``written``: spilled events written from the journal (acknowledged: those read back from disk)
    replayed: int
    dropped: int  # lost: journal full or unwritable, unreadable journal lines, unencodable events
    acknowledged: int  # appended and fsync'd for ``durable()`` (acknowledged durability)
    batches: int  # sink writes that succeeded
    queue_depth: int  # events waiting in memory (queue and overflow)
    sink_up: bool
    last_error: str | None
    journal_bytes: int  # bytes in the journal not yet confirmed by the sink
    tap_errors: int


class AuditWriter:
    """Drains an :class:`AuditQueue` to a :class:`Sink`, spilling to a :class:`Journal` (module docstring)."""

    def __init__(
        self,
        queue: AuditQueue,
        sink: Sink,
        journal: Journal | None,
        *,
        durability: Literal["buffered", "acknowledged"] = "buffered",
        flush_interval: float = 0.05,
        batch_size: int = 1000,
        tamper_evidence: bool = False,
        instance: str = "local",
        retention: float | None = None,
        spill_backlog: int | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        journal_setting: str = "audit.journal",
    ) -> None:
        if durability not in {"buffered", "acknowledged"}:
            raise ValueError(f"durability must be buffered or acknowledged, not {durability!r}")
        self.queue = queue
        self.sink = sink
        self.journal = journal
        self.acknowledged = durability == "acknowledged"
        self.flush_interval = max(flush_interval, 0.001)
        self.batch_size = batch_size
        self.instance = instance
        self.retention = retention
        self.chain = Chain() if tamper_evidence else None
        self.spill_backlog = spill_backlog or min(max(4 * batch_size, 1000), max(queue.max_pending // 2, 1))
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.journal_setting = journal_setting
        self.taps: list[Tap] = []
        # which events the sink stores (``audit.events: decisions``); the taps see every event
        self.keep: Callable[[Event], bool] | None = None
        # events taken out of the queue by its overflow, not yet encoded
        self._held: list[Event] = []
        # acknowledged durability: events are numbered in the order they leave the queue
        self._taken = 0
        self._committed = 0
        self._failures: deque[tuple[int, int]] = deque(maxlen=64)
        self._commit_task: asyncio.Task[None] | None = None
        # tasks (never cancelled: a cancelled ``to_thread`` whose work has not started never runs it)
        self._running = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None
        # sink state
        self._sink_up = False
        self._next_open = 0.0
        self._backoff = retry_initial
        self._down_since: float | None = None
        self._last_logged: tuple[str, float] | None = None
        self._next_expire = 0.0
        self._next_scan = 0.0
        self._journal_full_logged = False
        # counters
        self._written = 0
        self._spilled = 0
        self._replayed = 0
        self._dropped = 0
        self._acked = 0
        self._batches = 0
        self._tap_errors = 0
        self._last_error: str | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_policy(
        cls,
        queue: AuditQueue,
        policy: AuditPolicy,
        base_dir: str | Path,
        instance: str,
        *,
        journal_max_bytes: int = DEFAULT_JOURNAL_BYTES,
    ) -> AuditWriter | None:
        """The writer for the ``audit:`` section (None for ``sink: off``); raises :class:`AuditSetupError`."""
        from apishield.audit.sinks.jsonl import JSONLSink
        from apishield.audit.sinks.postgres import PostgresSink
        from apishield.audit.sinks.sqlite import SQLiteSink

        if policy.sink == "off":
            return None
        base = Path(base_dir)

        def resolve(path: str) -> Path:
            p = Path(path).expanduser()
            return p if p.is_absolute() else base / p

        durable = policy.durability == "acknowledged"
        sink: Sink
        if policy.sink == "sqlite":
            sink = SQLiteSink(resolve(policy.path), durable=durable)
            default_journal = Path(f"{resolve(policy.path)}.journal")
        elif policy.sink == "jsonl":
            stdout = policy.path == "-"
            sink = JSONLSink("-" if stdout else resolve(policy.path), durable=durable)
            default_journal = (
                base / "apishield-audit.journal" if stdout else Path(f"{resolve(policy.path)}.journal")
            )
        else:
            assert policy.dsn is not None
            try:
                sink = PostgresSink(policy.dsn)
            except ValueError as exc:
                raise AuditSetupError(str(exc)) from None
            default_journal = base / "apishield-audit.journal"
        journal_dir = resolve(policy.journal) if policy.journal else default_journal
        writer = cls(
            queue,
            sink,
            Journal(journal_dir, max_bytes=journal_max_bytes),
            durability=policy.durability,
            flush_interval=policy.flush_interval,
            batch_size=policy.batch_size,
            tamper_evidence=policy.tamper_evidence,
            instance=instance,
            retention=policy.retention,
        )
        if policy.events == "decisions":
            writer.keep = noteworthy
        return writer

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the journal and the sink (a sink that is down is retried), install the overflow, start."""
        if self._running:
            return
        if self.journal is not None:
            try:
                await asyncio.to_thread(self.journal.open)
            except OSError as exc:
                message = (
                    f"{self.journal_setting}: cannot use the audit journal folder {self.journal.directory}: "
                    f"{exc.strerror or exc}"
                )
                if self.acknowledged:
                    raise AuditSetupError(message + " (durability: acknowledged needs it)") from None
                log.error("%s; events the sink cannot take will be dropped", message)
                self.journal = None
        elif self.acknowledged:
            raise AuditSetupError("durability: acknowledged needs a journal")
        self._running = True
        self._stopping = False
        self._wake.clear()
        await self._open_sink(first=True)
        self.queue.overflow = self._overflow
        self._ticker = asyncio.create_task(self._tick(), name="apishield-audit-ticker")

    async def stop(self, replay_budget: float = 5.0) -> None:
        """Write everything queued to the sink (or the journal), replay the journal for up to
        ``replay_budget`` seconds if the sink is up, and close. Nothing queued is lost, unless
        the sink is down and there is no usable journal (logged, counted in ``dropped``)."""
        if not self._running or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._ticker is not None:
            await asyncio.wait([self._ticker])
            self._ticker = None
        await self._wait_pump()
        try:
            if not self._sink_up:
                await self._open_sink(force=True)
            if self.acknowledged:
                with contextlib.suppress(AuditUnavailable):
                    await self._commit_through(self._taken + len(self.queue))
            else:
                await self._write_queued(everything=True)
            if self._sink_up and self.journal is not None:
                deadline = time.monotonic() + replay_budget
                while time.monotonic() < deadline and self._sink_up:
                    if not await self._replay(_REPLAY_BATCHES_PER_TURN):
                        break
        finally:
            if self.queue.overflow == self._overflow:
                self.queue.overflow = None
            self._running = False
            if self.journal is not None:
                try:
                    await asyncio.to_thread(self.journal.close)
                except OSError as exc:
                    log.error("closing the audit journal %s failed: %s", self.journal.directory, exc)
            with contextlib.suppress(Exception):
                await self.sink.close()
            if self.chain is not None:
                for name, link in self.chain.heads().items():
                    log.info("audit chain head: instance=%s seq=%d hash=%s", name, link.seq, link.hash)

    async def flush(self) -> None:
        """Run one pump now (after the one in progress): queued events to the sink or journal, then replay."""
        await self._wait_pump()
        self._pump_task = asyncio.create_task(self._pump(), name="apishield-audit-pump")
        await self._wait_pump()

    async def durable(self) -> None:
        """Return once every event emitted before the call is in the fsync'd journal.

        A no-op in buffered durability. Raises :class:`AuditUnavailable` when an event
        could not be journaled, or the writer is not running (the adapter should answer 503).
        """
        if not self.acknowledged:
            return
        if not self._running:
            raise AuditUnavailable("the audit writer is not running")
        await self._commit_through(self._taken + len(self.queue))

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            written=self._written,
            spilled=self._spilled,
            replayed=self._replayed,
            dropped=self._dropped,
            acknowledged=self._acked,
            batches=self._batches,
            queue_depth=len(self.queue) + len(self._held),
            sink_up=self._sink_up,
            last_error=self._last_error,
            journal_bytes=self.journal.size if self.journal is not None else 0,
            tap_errors=self._tap_errors,
        )

    # -- the loop ----------------------------------------------------------------------------

    def _overflow(self, events: list[Event]) -> None:
        """The queue is full: it hands over its events (called on the loop, from a request)."""
        self._held.extend(events)
        self._taken += len(events)
        self._wake.set()

    async def _tick(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self._pump_task is None or self._pump_task.done():
                    self._reap()
                    self._pump_task = asyncio.create_task(self._pump(), name="apishield-audit-pump")
                elif self._held or len(self.queue) >= self.spill_backlog:
                    # a write is in flight and the backlog grows: put it on disk now
                    if self.acknowledged:
                        with contextlib.suppress(AuditUnavailable):
                            await self._commit_through(self._taken + len(self.queue))
                    else:
                        await self._spill_queued()
            except Exception:
                log.exception("audit writer: unexpected error (the writer carries on)")

    def _reap(self) -> None:
        task = self._pump_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            log.error("audit writer: a pump failed", exc_info=task.exception())

    async def _wait_pump(self) -> None:
        while self._pump_task is not None and not self._pump_task.done():
            await asyncio.wait([self._pump_task])
        self._reap()

    async def _pump(self) -> None:
        await self._open_sink()
        if self.acknowledged:
            with contextlib.suppress(AuditUnavailable):
                await self._commit_through(self._taken + len(self.queue))
        else:
            await self._write_queued(everything=False)
        if self._sink_up and self.journal is not None:
            await self._replay(_REPLAY_BATCHES_PER_TURN)
            now = time.monotonic()
            if now >= self._next_scan:
                self._next_scan = now + _SCAN_EVERY
                await asyncio.to_thread(self.journal.scan)
        await self._expire()

    # -- taking and encoding -----------------------------------------------------------------

    def _take(self, limit: int | None) -> list[Event]:
        if self._held:
            if limit is None or len(self._held) <= limit:
                events, self._held = self._held, []
            else:
                events = self._held[:limit]
                del self._held[:limit]
            return events
        events = self.queue.drain(limit)
        self._taken += len(events)
        return events

    def _records(self, events: list[Event]) -> list[Record]:
        for tap in self.taps:
            try:
                tap(events)
            except Exception:
                self._tap_errors += 1
                log.exception("audit tap %r failed (the writer carries on)", tap)
        now_ms = int(time.time() * 1000)
        chain = self.chain
        out: list[Record] = []
        instance = self.instance
        keep = self.keep
        for event in events:
            if keep is not None and not keep(event):
                continue
            metadata = event.get("metadata")
            if not isinstance(metadata, dict):
                event["metadata"] = metadata = {}
            if "uid" not in metadata:
                metadata["uid"] = os.urandom(16).hex()
            if "time" not in event:
                event["time"] = now_ms
            if chain is not None:
                unmapped = event.get("unmapped")
                if not isinstance(unmapped, dict):
                    event["unmapped"] = unmapped = {}
                named = unmapped.get("instance")
                if isinstance(named, str):
                    instance = named
                else:
                    unmapped["instance"] = instance = self.instance
            try:
                event, encoded = encode(event)
            except Exception as exc:  # not even a cleaned copy encodes
                self._dropped += 1
                log.error("audit event dropped, it cannot be encoded: %s", exc)
                continue
            link: Link | None = None
            if chain is not None:
                link = chain.link(instance, encoded[:-1])
            out.append(Record(event, encoded, link))
        return out

    # -- the sink ----------------------------------------------------------------------------

    async def _open_sink(self, *, first: bool = False, force: bool = False) -> None:
        if self._sink_up or not (force or first or time.monotonic() >= self._next_open):
            return
        try:
            await self.sink.open()
        except Exception as exc:
            message = str(exc) if isinstance(exc, SinkError) else f"{type(exc).__name__}: {exc}"
            self._last_error = message
            self._backoff = self.retry_initial if first else min(self._backoff * 2, self.retry_max)
            self._next_open = time.monotonic() + self._backoff
            if self._down_since is None:
                self._down_since = time.monotonic()
            self._log_down(message, first=first)
            return
        if self._down_since is not None and not first:
            held = self.journal.size if self.journal is not None else 0
            log.warning(
                "audit sink %s is back after %.1f s; replaying %d bytes from the journal",
                self.sink.name,
                time.monotonic() - self._down_since,
                held,
            )
        self._sink_up = True
        self._down_since = None
        self._backoff = self.retry_initial
        self._last_logged = None

    def _log_down(self, message: str, *, first: bool) -> None:
        now = time.monotonic()
        last = self._last_logged
        if last is not None and last[0] == message and now - last[1] < _RELOG_EVERY:
            return
        self._last_logged = (message, now)
        where = (
            f"the journal {self.journal.directory}" if self.journal is not None else "nowhere (no journal)"
        )
        log.error(
            "audit sink %s (%s: %s) %s: %s; events go to %s until it is back",
            self.sink.name,
            self.sink.setting,
            self.sink.describe(),
            "unavailable at start" if first else "unavailable",
            message,
            where,
        )

    def _sink_failed(self, message: str) -> None:
        self._last_error = message
        if self._sink_up:
            self._sink_up = False
            self._down_since = time.monotonic()
            self._backoff = self.retry_initial
            self._next_open = time.monotonic() + self._backoff
            self._log_down(message, first=False)

    async def _write(self, records: list[Record]) -> bool:
        if not records:
            return True
        links: list[Link | None] | None = [r.link for r in records]
        if not any(links or ()):
            links = None
        try:
            await self.sink.write([r.event for r in records], [r.encoded for r in records], links)
        except SinkError as exc:
            self._sink_failed(str(exc))
            return False
        except Exception as exc:
            log.exception("audit sink %s: unexpected error", self.sink.name)
            self._sink_failed(f"{type(exc).__name__}: {exc}")
            return False
        self._written += len(records)
        self._batches += 1
        return True

    async def _write_queued(self, *, everything: bool) -> None:
        """Buffered durability: what is queued now, in batches, to the sink or else to the journal."""
        budget = len(self._held) + len(self.queue)
        while everything or budget > 0:
            events = self._take(self.batch_size)
            if not events:
                return
            budget -= len(events)
            records = self._records(events)
            if self._sink_up and await self._write(records):
                continue
            await self._spill(records, fsync=False)  # a stop syncs the journal when it closes it

    async def _spill_queued(self) -> None:
        while events := self._take(self.batch_size):
            await self._spill(self._records(events), fsync=False)

    # -- the journal -------------------------------------------------------------------------

    async def _spill(self, records: list[Record], *, fsync: bool) -> None:
        if not records:
            return
        if self.journal is None:
            self._drop(len(records), "there is no journal")
            return
        try:
            await asyncio.to_thread(
                self.journal.append, [r.line() for r in records], fsync=fsync, keep=records
            )
        except JournalFull as exc:
            self._drop(len(records), str(exc))
            return
        except OSError as exc:
            self._drop(
                len(records), f"{self.journal_setting} {self.journal.directory}: {exc.strerror or exc}"
            )
            return
        self._spilled += len(records)
        self._journal_full_logged = False

    def _drop(self, count: int, why: str) -> None:
        self._dropped += count
        if not self._journal_full_logged:
            self._journal_full_logged = True
            log.error("audit events dropped (%d so far): %s", self._dropped, why)

    async def _replay(self, max_batches: int) -> bool:
        """Replay up to ``max_batches`` journal batches; True if there may be more."""
        journal = self.journal
        if journal is None:
            return False
        if journal.empty:
            return False
        await asyncio.to_thread(journal.rotate)
        for _ in range(max_batches):
            batch = await asyncio.to_thread(journal.next_batch, self.batch_size)
            if batch is None:
                return False
            records = batch.kept if batch.kept is not None else self._parse(batch)
            if not await self._write(records):
                return False
            await asyncio.to_thread(journal.confirm, batch)
            if batch.kept is None or not self.acknowledged:  # acknowledged: the journal is the usual path
                self._replayed += len(records)
        return True

    def _parse(self, batch: ReplayBatch) -> list[Record]:
        records = []
        bad = 0
        for line in batch.lines:
            try:
                records.append(Record.from_line(line))
            except ValueError:
                bad += 1
        if bad:
            self._dropped += bad
            log.warning("audit journal %s: skipped %d unreadable line(s)", batch.segment.path.name, bad)
        return records

    async def _commit_through(self, target: int) -> None:
        """Acknowledged durability: journal and fsync every event numbered below ``target``.

        Group commit: one commit task at a time takes everything queued; callers whose
        events it took wait for it, the others start (or join) the next one. Callers
        wait through ``shield``: a request cancelled meanwhile does not cancel the commit.
        """
        low = self._committed
        while self._committed < target:
            task = self._commit_task
            if task is None or task.done():
                task = self._commit_task = asyncio.create_task(self._commit(), name="apishield-audit-commit")
            await asyncio.shield(task)
            if self._committed >= self._taken and not self._held and not len(self.queue):
                break  # all we were given is committed (someone else drained the rest)
        for start, end in self._failures:
            if start < target and end > low:
                raise AuditUnavailable("audit events could not be made durable; see the error log")

    async def _commit(self) -> None:
        events, self._held = self._held, []
        drained = self.queue.drain()
        self._taken += len(drained)
        events.extend(drained)
        start, upto = self._committed, self._taken
        records: list[Record] = []
        try:
            records = self._records(events)
            if records:
                if self.journal is None:
                    raise OSError("there is no journal")
                lines = [r.line() for r in records]
                await asyncio.to_thread(self.journal.append, lines, fsync=True, keep=records)
                self._acked += len(records)
        except Exception as exc:
            self._failures.append((start, upto))
            why = str(exc) if isinstance(exc, JournalFull) else f"{self.journal_setting}: {exc}"
            self._drop(len(records) or len(events), why)
        finally:
            self._committed = upto

    async def _expire(self) -> None:
        if self.retention is None or not self._sink_up:
            return
        now = time.monotonic()
        if now < self._next_expire:
            return
        self._next_expire = now + min(3600.0, max(60.0, self.retention / 10))
        try:
            removed = await self.sink.expire(int((time.time() - self.retention) * 1000))
        except Exception as exc:
            log.warning("audit retention on %s failed: %s", self.sink.name, exc)
            return
        if removed:
            log.info(
                "audit retention: removed %d old %s",
                removed,
                "partitions" if self.sink.name == "postgresql" else "events",
            )
