"""Writing the decision log: one system call per interval, off the request path (both adapters)."""

from __future__ import annotations

import asyncio
import contextlib
import os

import orjson

from apishield.core.stages.audit import AuditQueue

__all__ = ["encode", "flush_periodically", "write_lines"]


def encode(events: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in events)


def write_lines(fd: int | None, data: bytes) -> None:
    """Write encoded lines to ``fd`` (None discards; a failing descriptor never fails a request)."""
    if data and fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, data)


async def flush_periodically(recorder: AuditQueue, fd: int | None, interval: float = 0.25) -> None:
    """Drain ``recorder`` to ``fd`` every ``interval`` seconds until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(interval)
            write_lines(fd, encode(recorder.drain()))
    finally:
        write_lines(fd, encode(recorder.drain()))
