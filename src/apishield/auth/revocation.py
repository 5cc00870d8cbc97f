"""The revocation denylist: revoked token ids and API keys, with expiry.

Entries are ``("jti", <jti>)`` or ``("key", <key id>)`` and live until the
revoked credential would have expired anyway. The core only reads this
in-memory set; the adapter keeps it in step with the configured store
(memory, SQLite for the processes of one machine, Redis for many machines)
by polling every ``auth.revocation.poll_interval`` (0.25 s by default), so a
revocation reaches every instance well within a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Denylist"]


@dataclass
class Denylist:
    entries: dict[tuple[str, str], float] = field(default_factory=dict)
    cursor: float = 0.0  # store-specific position of the last sync

    def is_revoked(self, kind: str, ident: str | None, now: float) -> bool:
        if ident is None or not self.entries:
            return False
        until = self.entries.get((kind, ident))
        return until is not None and now < until

    def add(self, kind: str, ident: str, until: float) -> None:
        current = self.entries.get((kind, ident), 0.0)
        self.entries[(kind, ident)] = max(current, until)

    def purge(self, now: float) -> None:
        for key in [k for k, until in self.entries.items() if until <= now]:
            del self.entries[key]
