"""The decision log: one structured record per noteworthy request.

Every denial, every report-mode finding, every modification (stripped
members, replaced bodies, filtered list items) and every undocumented status
produces one JSON line. Values are never copied from the request: reasons
and JSON pointers only, and JSON encoding escapes control characters (no log
injection).

The stage does no I/O: it appends encoded lines to a
:class:`DecisionRecorder`, which the adapter drains on a timer and writes in
one system call (``logging`` costs about 20 µs a line; this costs about 1).
The full audit trail (every request, durable sinks) builds on the same path.
"""

from __future__ import annotations

import time
from collections import deque

import orjson

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage

__all__ = ["DecisionLogStage", "DecisionRecorder"]


class DecisionRecorder:
    """Encoded decision lines waiting to be written, bounded; the newest are also kept for inspection."""

    def __init__(self, max_pending: int = 100_000, keep_recent: int = 1_000) -> None:
        self.pending: list[bytes] = []
        self.max_pending = max_pending
        self.dropped = 0
        self.recent: deque[bytes] = deque(maxlen=keep_recent)

    def emit(self, line: bytes) -> None:
        if len(self.pending) >= self.max_pending:
            self.dropped += 1
            return
        self.pending.append(line)
        self.recent.append(line)

    def drain(self) -> bytes:
        if not self.pending:
            return b""
        lines, self.pending = self.pending, []
        return b"".join(lines)


class DecisionLogStage(Stage):
    name = "decision_log"

    def __init__(self, recorder: DecisionRecorder | None = None) -> None:
        self.recorder = recorder or DecisionRecorder()

    def on_reply(self, ex: Exchange) -> None:
        noteworthy = [d.as_dict() for d in ex.decisions if d.outcome != "allow"]
        if not noteworthy:
            return
        reply = ex.reply
        record = {
            "ts": time.time(),
            "request_id": ex.request_id,
            "method": ex.request.method,
            "route": ex.operation.template if ex.operation else None,
            "operation": ex.operation_id,
            "status": reply.status if reply else None,
            "upstream_status": ex.upstream_status,
            "latency_ms": round((time.perf_counter_ns() - ex.started_ns) / 1e6, 3),
            "decisions": noteworthy,
        }
        self.recorder.emit(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
