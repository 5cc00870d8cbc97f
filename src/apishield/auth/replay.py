"""A bounded, process-local cache of one-time identifiers (DPoP proof ``jti``s, RFC 9449 §11.1).

An identifier is accepted once until its entry expires. When the cache is
full of live entries it refuses rather than forgets: forgetting would let a
replay through.
"""

from __future__ import annotations

import threading

__all__ = ["ReplayCache"]


class ReplayCache:
    """The ``jti`` values seen in this process, each until its proof's window ends (§11.1)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def first_use(self, key: str, ttl: float, now: float) -> bool:
        with self._lock:
            until = self._seen.get(key)
            if until is not None and until > now:
                return False
            if len(self._seen) >= self.max_entries:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= self.max_entries:
                    return False  # flooded: refuse rather than forget
            self._seen[key] = now + ttl
            return True
