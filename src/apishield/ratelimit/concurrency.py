"""Load shedding: requests in flight, per process, globally and per client.

Theory of operation
-------------------
Overload must degrade, not collapse: past some number of requests in
flight, every extra request only adds queueing delay for all of them. Two
counters bound it, both per process (in-flight requests are a property of
the process serving them):

* :class:`InFlightGate`, the global cap. A request over the cap waits, in
  arrival order, up to the queue timeout for a slot, and is then refused
  with 503. A freed slot is *handed* to the oldest waiter (the count does
  not drop and rise again), so a newcomer cannot overtake the queue; while
  anyone waits, newcomers queue too. The queue is bounded.
* :class:`KeyedCounter`, the per-client cap: over it, 429 at once (one
  client's burst is that client's problem, not a reason to wait).

The core holds only counts and the queue's order; the queue's entries are
opaque *waiter* tokens that the adapter creates and wakes (asyncio futures,
in :mod:`.service`). A stage records each slot it took on the exchange
(:mod:`.notes`); when the exchange ends, whatever the outcome, the adapter
calls :func:`apishield.ratelimit.notes.release`, which frees the slots and
returns the waiters to wake.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["InFlightGate", "KeyedCounter"]


class InFlightGate:
    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.in_flight = 0
        self.waiters: deque[Any] = deque()

    def try_enter(self) -> bool:
        if self.in_flight < self.limit and not self.waiters:
            self.in_flight += 1
            return True
        return False

    def can_wait(self) -> bool:
        return len(self.waiters) < self.max_queue

    def wait(self, waiter: Any) -> None:
        self.waiters.append(waiter)

    def withdraw(self, waiter: Any) -> bool:
        """Remove a waiter that gave up; False if it was already handed a slot."""
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return False
        return True

    def leave(self) -> Any | None:
        """Free a slot: the waiter it is handed to (wake it), or None."""
        if self.waiters:
            return self.waiters.popleft()
        self.in_flight -= 1
        return None


class KeyedCounter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def try_enter(self, key: str) -> bool:
        count = self.counts.get(key, 0)
        if count >= self.limit:
            return False
        self.counts[key] = count + 1
        return True

    def leave(self, key: str) -> None:
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)
