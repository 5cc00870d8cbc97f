"""The audit stage: one OCSF event per exchange, queued for the writer.

The stage is first in the list, so it runs last on the way out and sees the
reply as sent, every stage's decision, and the time each stage took. It does
no I/O: it builds the event (:func:`apishield.audit.event.build_api_activity`),
redacts the configured pointers and appends it to an :class:`AuditQueue`.
An adapter's writer task (:mod:`apishield.audit.writer`) drains the queue
in batches to the sink, off the request path.

The queue is bounded. When it is full (the writer is stuck behind a slow
sink and the loop has not given it a turn), ``overflow`` takes the event:
the writer installs its spill journal there, so a full queue spills to disk
instead of dropping. Without a writer (a pipeline used on its own), events
beyond the bound are counted in ``dropped``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from apishield.audit.event import Redactor, build_api_activity
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage

__all__ = ["AuditQueue", "AuditStage"]

Event = dict[str, Any]


class AuditQueue:
    """Events waiting for the writer, bounded; the newest are also kept for inspection (tests, console)."""

    def __init__(self, max_pending: int = 100_000, keep_recent: int = 1_000) -> None:
        self.pending: list[Event] = []
        self.max_pending = max_pending
        self.dropped = 0
        self.emitted = 0
        self.recent: deque[Event] = deque(maxlen=keep_recent)
        self.overflow: Callable[[list[Event]], None] | None = None

    def emit(self, event: Event) -> None:
        self.emitted += 1
        self.recent.append(event)
        if len(self.pending) >= self.max_pending:
            if self.overflow is not None:
                batch, self.pending = self.pending, []
                self.overflow(batch)
            else:
                self.dropped += 1
                return
        self.pending.append(event)

    def drain(self, limit: int | None = None) -> list[Event]:
        if not self.pending:
            return []
        if limit is None or len(self.pending) <= limit:
            events, self.pending = self.pending, []
            return events
        events, self.pending = self.pending[:limit], self.pending[limit:]
        return events

    def __len__(self) -> int:
        return len(self.pending)


class AuditStage(Stage):
    name = "audit"

    def __init__(
        self,
        queue: AuditQueue | None = None,
        *,
        instance: str = "local",
        redactor: Redactor | None = None,
        enabled: bool = True,
    ) -> None:
        self.queue = queue or AuditQueue()
        self.instance = instance
        self.redactor = redactor if redactor else None
        self.enabled = enabled

    def on_reply(self, ex: Exchange) -> None:
        if not self.enabled:
            return
        timings = ex.stage_ns
        stage_us = {name: ns // 1000 for name, ns in timings.items()} if timings else None
        event = build_api_activity(ex, self.instance, stage_us)
        if self.redactor is not None:
            self.redactor.apply(event)
        self.queue.emit(event)
