"""Where audit events are stored: the protocol every sink follows.

A sink takes batches from the writer (:mod:`apishield.audit.writer`), one
at a time, never concurrently. A batch is all-or-nothing: when ``write``
raises :class:`SinkError`, none of it was stored, or, when the failure came
after the commit (a connection lost while the acknowledgement was in
flight), all of it. Either way the writer keeps the batch in its journal and
writes it again later, and the database sinks store an event once per
``metadata.uid`` however often it arrives (``INSERT OR IGNORE`` in SQLite,
``ON CONFLICT DO NOTHING`` in PostgreSQL).

``open`` may be called again after a failure (it reconnects); ``expire``
applies the retention; ``setting`` names the policy key to mention in
messages (``audit.path``, ``audit.dsn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from apishield.audit.chain import Link

__all__ = ["Sink", "SinkError"]


class SinkError(Exception):
    """The sink could not store a batch, or could not be opened; the message is for operators."""


class Sink(Protocol):
    name: str
    setting: str

    def describe(self) -> str:
        """Where events go, for messages (a path, or a DSN without its password)."""
        ...

    async def open(self) -> None: ...

    async def write(
        self,
        events: list[dict[str, Any]],
        encoded: list[bytes],
        links: Sequence[Link | None] | None = None,
    ) -> None:
        """Store one batch; ``encoded[i]`` is ``events[i]`` as JSON text with a trailing newline."""
        ...

    async def expire(self, before_ms: int) -> int:
        """Delete events older than ``before_ms``; returns how many (or partitions) went."""
        ...

    async def close(self) -> None: ...
