"""Where the console reads: the audit store, and principals named the way detectors name them.

The audit store is opened on first use, not at start: a SQLite database is
created by the writer when the gateway starts, after the console is built.
Until it can be opened, pages say why (:attr:`EventSource.problem`).

A principal is a detector key (``sub:alice``, ``client:partner-a``,
``ip:192.0.2.1``, ``token:<fingerprint>``, ``api_key:<id>``,
``account:<login>``). The first three (and ``account``, a login name stored
as the subject of sign-in events) map to :class:`~apishield.audit.query.EventQuery`
filters; a token fingerprint or an API key id has no filter in the query
layer, so their events are found by scanning the latest events
(:func:`scan`), at most :data:`SCAN_LIMIT` of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apishield.audit.query import Cursor, EventQuery, search
from apishield.audit.stores import EventStore, StoredEvent, StoreError, open_store
from apishield.detect.blocks import BlockKind, target_of

if TYPE_CHECKING:
    from apishield.config.audit import AuditPolicy

__all__ = ["SCAN_LIMIT", "EventSource", "Principal", "find_event", "scan"]

SCAN_LIMIT = 5_000
_PAGE = 1_000


class EventSource:
    """The audit store of the policy's ``audit:`` section, opened lazily."""

    def __init__(self, policy: AuditPolicy | None, base_dir: Path) -> None:
        self.policy = policy
        self.base_dir = base_dir
        self._store: EventStore | None = None
        self.problem: str | None = None
        if policy is None or policy.sink == "off":
            self.problem = "audit.sink is off: no events are stored, so there is nothing to show."
        elif policy.sink == "jsonl" and policy.path == "-":
            self.problem = "the audit trail goes to standard output: there is nothing to read back."

    async def store(self) -> EventStore | None:
        if self._store is not None:
            return self._store
        if self.policy is None or self.policy.sink == "off":
            return None
        try:
            self._store = open_store(policy=self.policy, base_dir=self.base_dir)
        except StoreError as exc:
            self.problem = f"the audit store cannot be read yet: {exc}"
            return None
        self.problem = None
        return self._store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()


async def scan(
    store: EventStore, query: EventQuery, test: Callable[[StoredEvent], bool], limit: int = SCAN_LIMIT
) -> tuple[list[StoredEvent], bool]:
    """Events matching ``query`` and ``test``, newest first, among the latest ``limit`` matching ``query``.

    The flag says whether the scan stopped at ``limit`` (older events were not looked at).
    """
    found: list[StoredEvent] = []
    before: Cursor | None = None
    seen = 0
    while seen < limit:
        page = await search(store, query, min(_PAGE, limit - seen), before)
        seen += len(page.events)
        found.extend(e for e in page.events if test(e))
        if page.next is None:
            return found, False
        before = page.next
    return found, True


async def find_event(store: EventStore, uid: str, time_ms: int | None) -> StoredEvent | None:
    """The event with ``metadata.uid`` = ``uid``: in its millisecond when known, else among the latest."""
    if time_ms is not None:
        hits, _ = await scan(
            store, EventQuery(since_ms=time_ms, until_ms=time_ms + 1), lambda e: e.uid == uid
        )
        if hits:
            return hits[0]
    hits, _ = await scan(store, EventQuery(), lambda e: e.uid == uid)
    return hits[0] if hits else None


_FILTERS = {"sub": "subject", "client": "client_id", "ip": "src_ip", "account": "subject"}
_COLUMNS = {"token": "token", "api_key": "api_key_id"}
_LABELS = {
    "sub": "user",
    "client": "client",
    "ip": "address",
    "token": "token",
    "api_key": "API key",
    "account": "login name",
}


@dataclass(frozen=True)
class Principal:
    kind: str  # the key's prefix
    value: str

    @classmethod
    def parse(cls, key: str) -> Principal:
        kind, sep, value = key.strip().partition(":")
        if not sep or not value or kind not in _LABELS:
            raise ValueError(
                "name a principal as sub:SUBJECT, client:ID, ip:ADDRESS, token:FINGERPRINT or api_key:ID"
            )
        return cls(kind, value)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def label(self) -> str:
        return _LABELS[self.kind]

    @property
    def filterable(self) -> bool:
        """The query layer filters on it (otherwise :meth:`test` over a scan)."""
        return self.kind in _FILTERS

    def query(self, base: EventQuery | None = None) -> EventQuery:
        base = base or EventQuery()
        column = _FILTERS.get(self.kind)
        if column == "subject":
            return dataclasses.replace(base, subject=self.value)
        if column == "client_id":
            return dataclasses.replace(base, client_id=self.value)
        if column == "src_ip":
            return dataclasses.replace(base, src_ip=self.value)
        return base

    def test(self, e: StoredEvent) -> bool:
        column = _COLUMNS.get(self.kind) or ""
        value: Any = getattr(e, column, None) if column else None
        return bool(value == self.value)

    def block_target(self) -> tuple[BlockKind, str] | None:
        """What a block of this principal names (a login name cannot be blocked)."""
        return target_of(self.key)

    def event_filters(self) -> dict[str, str]:
        """The events explorer's filters for this principal (empty when it has none)."""
        names = {"sub": "subject", "client": "client", "ip": "ip", "account": "subject"}
        name = names.get(self.kind)
        return {name: self.value} if name else {}
