"""A bounded cache of verified tokens, keyed by the exact token string.

Verifying a signature costs 100–300 times a dictionary hit, so verified
tokens are remembered. The cache never lets a token outlive its ``exp``
(checked on every hit) or a revocation (the caller checks the denylist on
every hit). The key is the token itself: it is already unguessable, and
hashing it would only add cost. Eviction is oldest-inserted-first: a hit
does not reorder (it would cost a third of the lookup), and every entry ages
out by its ``exp`` anyway, so a busy token is re-verified at worst once per
``max_entries`` insertions.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["TokenCache"]

V = TypeVar("V")


class TokenCache(Generic[V]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: dict[str, tuple[V, float]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, token: str, now: float) -> V | None:
        entry = self._data.get(token)
        if entry is None:
            self.misses += 1
            return None
        if now >= entry[1]:
            del self._data[token]
            self.misses += 1
            return None
        self.hits += 1
        return entry[0]

    def put(self, token: str, value: V, expires_at: float) -> None:
        if self.max_entries <= 0:
            return
        data = self._data
        data.pop(token, None)
        data[token] = (value, expires_at)
        while len(data) > self.max_entries:
            del data[next(iter(data))]

    def discard(self, token: str) -> None:
        self._data.pop(token, None)

    def __len__(self) -> int:
        return len(self._data)
