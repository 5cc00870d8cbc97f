"""The JSON-lines sink: one event per line, for a SIEM shipper (Vector, Fluent Bit, Filebeat).

``audit.path`` names a file, opened for appending, or ``-`` for standard
output. Each line is the event exactly as encoded by ``orjson`` (which
escapes control characters, so a value cannot start a line of its own);
with tamper evidence, the event is wrapped with its chain link
(:mod:`apishield.audit.record`). A batch is one ``write`` of all its lines
(the buffering is the batch); when the write fails part-way, the file is cut
back to where the batch began, so a batch is all-or-nothing in a regular
file. Nothing is deduplicated here: after a crash in the middle of a journal
replay, a batch may appear twice in the file (``apishield events`` shows
each ``metadata.uid`` once).

In ``acknowledged`` durability every batch is ``fsync``'d before the writer
deletes its copy in the journal. Retention is not applied to a file: rotate
it with the shipper or ``logrotate`` (``copytruncate``, since the file stays
open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apishield.audit.chain import Link
from apishield.audit.record import line_of
from apishield.audit.sinks import SinkError

__all__ = ["JSONLSink"]


class JSONLSink:
    name = "jsonl"
    setting = "audit.path"

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.stdout = str(path) == "-"
        self.path = Path(path)
        self.durable = durable
        self._fd: int | None = None

    def describe(self) -> str:
        return "standard output" if self.stdout else str(self.path)

    async def open(self) -> None:
        if self._fd is not None:
            return
        if self.stdout:
            self._fd = sys.stdout.fileno()
            return
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            self._fd = await asyncio.to_thread(
                os.open,
                self.path,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                0o640,
            )
        except OSError as exc:
            raise SinkError(f"cannot open {self.path} for appending: {exc.strerror or exc}") from None

    async def write(
        self,
        events: list[dict[str, Any]],
        encoded: list[bytes],
        links: Sequence[Link | None] | None = None,
    ) -> None:
        if not encoded:
            return
        if links is None:
            data = b"".join(encoded)
        else:
            data = b"".join(line_of(b, k) for b, k in zip(encoded, links, strict=True))
        await self.open()
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        start = None
        written = 0
        try:
            if not self.stdout:
                start = os.fstat(fd).st_size
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                written += n
                view = view[n:]
            if self.durable and not self.stdout:
                os.fsync(fd)
        except OSError as exc:
            if start is not None and written:
                # cut the partial batch off, unless another process appended after it meanwhile
                with contextlib.suppress(OSError):
                    if os.fstat(fd).st_size == start + written:
                        os.ftruncate(fd, start)
            raise SinkError(f"writing to {self.describe()} failed: {exc.strerror or exc}") from None

    async def expire(self, before_ms: int) -> int:
        return 0

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and not self.stdout:
            os.close(fd)
