"""Writing the decision log: one system call per interval, off the request path (both adapters)."""

from __future__ import annotations

import asyncio
import contextlib
import os

from apishield.core.stages.decision_log import DecisionRecorder

__all__ = ["flush_periodically", "write_lines"]


def write_lines(fd: int | None, data: bytes) -> None:
    """Write encoded lines to ``fd`` (None discards; a failing descriptor never fails a request)."""
    if data and fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, data)


async def flush_periodically(recorder: DecisionRecorder, fd: int | None, interval: float = 0.25) -> None:
    """Drain ``recorder`` to ``fd`` every ``interval`` seconds until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(interval)
            write_lines(fd, recorder.drain())
    finally:
        write_lines(fd, recorder.drain())
