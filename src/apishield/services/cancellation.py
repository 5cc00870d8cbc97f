"""Stopping background tasks when a client library can lose a cancellation.

redis-py (and any client with internal timeouts) can turn an
``asyncio.CancelledError`` that arrives during a read into a ``TimeoutError``
or a connection error. A retry loop that catches those then carries on as
if nothing had been asked of it, and whoever awaits the cancelled task waits
forever: a shutdown that never ends. Two defences, used together:

* :func:`cancelling` lets such a loop tell "the read failed" from "I am
  being cancelled" and re-raise;
* :func:`stop_tasks` cancels and waits a bounded time, logging what did not
  stop, so a loop that still misses its cancellation cannot hang a stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

__all__ = ["STOP_TIMEOUT", "cancelling", "stop_tasks"]

STOP_TIMEOUT = 5.0  # seconds a stop waits for its tasks


def cancelling() -> bool:
    """True when the running task is being cancelled (whatever error the cancellation became)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_tasks(tasks: Collection[asyncio.Task[None]], what: str, logger: logging.Logger) -> None:
    """Cancel ``tasks`` and wait for them at most :data:`STOP_TIMEOUT` seconds."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
    if stuck:
        logger.error("%s: %d task(s) did not stop within %.0f s", what, len(stuck), STOP_TIMEOUT)
