"""A bounded cache of verified tokens, keyed by the exact token string.

Verifying a signature costs 100–300 times a dictionary hit, so verified
tokens are remembered. The cache never lets a token outlive its ``exp``
(checked on every hit) or a revocation (the caller checks the denylist on
every hit). The key is the token itself: it is already unguessable, and
hashing it would only add cost. Eviction is least-recently-used.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["TokenCache"]

V = TypeVar("V")


class TokenCache(Generic[V]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, token: str, now: float) -> V | None:
        entry = self._data.get(token)
        if entry is None:
            self.misses += 1
            return None
        value, expires_at = entry
        if now >= expires_at:
            del self._data[token]
            self.misses += 1
            return None
        self._data.move_to_end(token)
        self.hits += 1
        return value

    def put(self, token: str, value: V, expires_at: float) -> None:
        if self.max_entries <= 0:
            return
        self._data[token] = (value, expires_at)
        self._data.move_to_end(token)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def discard(self, token: str) -> None:
        self._data.pop(token, None)

    def __len__(self) -> int:
        return len(self._data)
