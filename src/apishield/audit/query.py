"""Questions about stored audit events: filtered listing with keyset pages, counts, chain rows.

Shared by ``apishield events`` and the console. An :class:`EventQuery`
holds the filters (all optional, combined with AND); :func:`search` lists
matching events newest first, ``limit`` at a time, and gives the
:class:`Cursor` of the next page (keyset pagination on ``(time_ms, uid)``:
a page costs the same however deep it is, and events written meanwhile do
not shift it). :func:`stats` counts by a dimension (top clients, subjects and
addresses by denials, operations by errors, status codes, events per hour).
:func:`chain_rows` walks the hash chain for
:func:`apishield.audit.chain.verify`.

Every value goes to the database as a parameter; the only names in the SQL
text are this module's constants and the schema name, which is checked to
be a plain identifier before it gets there. A JSON-lines store is filtered
the same way in Python.

``decision`` is ``allowed`` or ``denied``; an authentication event (OCSF
3002) counts as allowed when it succeeded and denied when it failed.
``status`` is a code (``403``) or a class (``4xx``). Errors in the counts are
responses with status 500 or more.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from apishield.audit.chain import ChainRow
from apishield.audit.schema import ALL_COLUMNS
from apishield.audit.stores import EventStore, JSONLStore, SQLStore, StoredEvent

__all__ = [
    "DIMENSIONS",
    "Bucket",
    "Cursor",
    "EventQuery",
    "Page",
    "Stats",
    "chain_rows",
    "search",
    "stats",
]

DIMENSIONS = ("client", "subject", "ip", "operation", "status", "decision", "hour")
HOUR_MS = 3_600_000
_MAX_LIMIT = 10_000
_CHAIN_PAGE = 5_000
_DECISIONS = {"allowed": ("allowed", "success"), "denied": ("denied", "failure")}
_STATUS_CLASS = re.compile(r"([1-5])xx")
_SELECT = ", ".join(ALL_COLUMNS)


@dataclass(frozen=True)
class EventQuery:
    since_ms: int | None = None  # inclusive
    until_ms: int | None = None  # exclusive
    subject: str | None = None
    client_id: str | None = None
    src_ip: str | None = None
    operation: str | None = None
    decision: Literal["allowed", "denied"] | None = None
    status: int | str | None = None  # 403, or a class such as "4xx"
    object_id: str | None = None  # any of the event's resources[*].uid
    instance: str | None = None
    class_uid: int | None = None

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in _DECISIONS:
            raise ValueError("decision is allowed or denied")
        _status_range(self.status)


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page ended: the next page lists events strictly older than this one."""

    time_ms: int
    uid: str

    def __str__(self) -> str:
        return f"{self.time_ms}-{self.uid}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        stamp, sep, uid = text.partition("-")
        if not sep or not stamp.isdigit() or not uid:
            raise ValueError(f"{text!r} is not a page cursor (TIME-UID, as printed after a page)")
        return cls(int(stamp), uid)


@dataclass(frozen=True)
class Page:
    events: list[StoredEvent]
    next: Cursor | None  # None on the last page


@dataclass(frozen=True)
class Bucket:
    key: Any  # a client id, subject, address, operation, status, decision, or hour (ms at its start)
    count: int
    denied: int
    errors: int


@dataclass(frozen=True)
class Stats:
    total: Bucket
    first_ms: int | None
    last_ms: int | None
    by: dict[str, list[Bucket]] = field(default_factory=dict)


def _status_range(status: int | str | None) -> tuple[int, int] | None:
    if status is None:
        return None
    if isinstance(status, int):
        return status, status + 1
    if status.isdigit():
        code = int(status)
        return code, code + 1
    match = _STATUS_CLASS.fullmatch(status.lower())
    if match is None:
        raise ValueError(f"status {status!r}: give a code (403) or a class (4xx)")
    low = int(match.group(1)) * 100
    return low, low + 100


class _Params:
    """Placeholders in the dialect's style; the values travel separately."""

    def __init__(self, dialect: str) -> None:
        self.values: list[Any] = []
        self.numbered = dialect == "postgresql"

    def __call__(self, value: Any, cast: str = "") -> str:
        """A placeholder; ``cast`` types it in PostgreSQL, where a row comparison cannot infer it."""
        self.values.append(value)
        if not self.numbered:
            return "?"
        return f"${len(self.values)}::{cast}" if cast else f"${len(self.values)}"


def _conditions(query: EventQuery, p: _Params, dialect: str) -> list[str]:
    out = []
    if query.since_ms is not None:
        out.append(f"time_ms >= {p(query.since_ms)}")
    if query.until_ms is not None:
        out.append(f"time_ms < {p(query.until_ms)}")
    for column, value in (
        ("subject", query.subject),
        ("client_id", query.client_id),
        ("src_ip", query.src_ip),
        ("operation", query.operation),
        ("instance", query.instance),
        ("class_uid", query.class_uid),
    ):
        if value is not None:
            out.append(f"{column} = {p(value)}")
    if query.decision is not None:
        first, second = _DECISIONS[query.decision]
        out.append(f"action IN ({p(first)}, {p(second)})")
    status = _status_range(query.status)
    if status is not None:
        if status[1] - status[0] == 1:
            out.append(f"status = {p(status[0])}")
        else:
            out.append(f"status >= {p(status[0])} AND status < {p(status[1])}")
    if query.object_id is not None:
        if dialect == "postgresql":
            out.append(f"{p(query.object_id)} = ANY(object_ids)")
        else:
            out.append(
                f"EXISTS (SELECT 1 FROM json_each(object_ids) WHERE json_each.value = {p(query.object_id)})"
            )
    return out


def _matches(query: EventQuery) -> Callable[[StoredEvent], bool]:
    status = _status_range(query.status)
    decisions = _DECISIONS[query.decision] if query.decision is not None else None

    def test(e: StoredEvent) -> bool:
        return (
            (query.since_ms is None or e.time_ms >= query.since_ms)
            and (query.until_ms is None or e.time_ms < query.until_ms)
            and (query.subject is None or e.subject == query.subject)
            and (query.client_id is None or e.client_id == query.client_id)
            and (query.src_ip is None or e.src_ip == query.src_ip)
            and (query.operation is None or e.operation == query.operation)
            and (query.instance is None or e.instance == query.instance)
            and (query.class_uid is None or e.class_uid == query.class_uid)
            and (decisions is None or e.action in decisions)
            and (status is None or (e.status is not None and status[0] <= e.status < status[1]))
            and (query.object_id is None or query.object_id in e.object_ids)
        )

    return test


async def search(store: EventStore, query: EventQuery, limit: int = 50, before: Cursor | None = None) -> Page:
    """Events matching ``query``, newest first, at most ``limit``, older than ``before``."""
    limit = max(1, min(limit, _MAX_LIMIT))
    if isinstance(store, JSONLStore):
        test = _matches(query)
        found = [
            e
            for e in store.events()
            if test(e) and (before is None or (e.time_ms, e.uid) < (before.time_ms, before.uid))
        ]
        found.sort(key=lambda e: (e.time_ms, e.uid), reverse=True)
        rows = found[: limit + 1]
    else:
        p = _Params(store.dialect)
        where = _conditions(query, p, store.dialect)
        if before is not None:
            where.append(f"(time_ms, uid) < ({p(before.time_ms, 'bigint')}, {p(before.uid, 'text')})")
        sql = f"SELECT {_SELECT} FROM {store.table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY time_ms DESC, uid DESC LIMIT {p(limit + 1)}"
        rows = [StoredEvent.from_row(r) for r in await store.fetch(sql, p.values)]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, Cursor(rows[-1].time_ms, rows[-1].uid) if more and rows else None)


# dimension -> (SQL expression, ORDER BY of (key, count, denied, errors), Python key)
_DIMENSIONS: dict[str, tuple[str, str, Callable[[StoredEvent], Any]]] = {
    "client": ("client_id", "3 DESC, 2 DESC", lambda e: e.client_id),
    "subject": ("subject", "3 DESC, 2 DESC", lambda e: e.subject),
    "ip": ("src_ip", "3 DESC, 2 DESC", lambda e: e.src_ip),
    "operation": ("operation", "4 DESC, 3 DESC, 2 DESC", lambda e: e.operation),
    "status": ("status", "2 DESC", lambda e: e.status),
    "decision": ("action", "2 DESC", lambda e: e.action),
    "hour": (f"time_ms / {HOUR_MS}", "1 DESC", lambda e: e.time_ms // HOUR_MS),
}
_ORDER = {
    "client": lambda b: (b.denied, b.count),
    "subject": lambda b: (b.denied, b.count),
    "ip": lambda b: (b.denied, b.count),
    "operation": lambda b: (b.errors, b.denied, b.count),
    "status": lambda b: (b.count,),
    "decision": lambda b: (b.count,),
    "hour": lambda b: (b.key,),
}
_DENIED = "SUM(CASE WHEN action IN ('denied', 'failure') THEN 1 ELSE 0 END)"
_ERRORS = "SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END)"


async def stats(store: EventStore, query: EventQuery, by: Sequence[str] = DIMENSIONS, top: int = 10) -> Stats:
    """Counts of the events matching ``query``: in total, and the ``top`` values of each dimension in ``by``
    (hours: the latest ``max(top, 48)``, oldest first)."""
    unknown = [d for d in by if d not in _DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}; choose from {', '.join(DIMENSIONS)}")
    top = max(1, min(top, _MAX_LIMIT))
    if isinstance(store, JSONLStore):
        return _stats_in_python(store, query, by, top)
    out: dict[str, list[Bucket]] = {}
    p = _Params(store.dialect)
    where = _conditions(query, p, store.dialect)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    row = (
        await store.fetch(
            f"SELECT COUNT(*), {_DENIED}, {_ERRORS}, MIN(time_ms), MAX(time_ms) FROM {store.table}{clause}",
            p.values,
        )
    )[0]
    total = Bucket(None, int(row[0]), int(row[1] or 0), int(row[2] or 0))
    for name in by:
        expression, order, _ = _DIMENSIONS[name]
        p = _Params(store.dialect)
        where = _conditions(query, p, store.dialect)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        limit = max(top, 48) if name == "hour" else top
        sql = (
            f"SELECT {expression} AS k, COUNT(*), {_DENIED}, {_ERRORS} FROM {store.table}{clause} "
            f"GROUP BY 1 ORDER BY {order} LIMIT {p(limit)}"
        )
        buckets = [
            Bucket(r[0], int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in await store.fetch(sql, p.values)
        ]
        if name == "hour":
            buckets = [Bucket(b.key * HOUR_MS, b.count, b.denied, b.errors) for b in reversed(buckets)]
        out[name] = buckets
    return Stats(total, row[3], row[4], out)


def _stats_in_python(store: JSONLStore, query: EventQuery, by: Sequence[str], top: int) -> Stats:
    test = _matches(query)
    counts: dict[str, Counter[Any]] = {name: Counter() for name in by}
    denied: dict[str, Counter[Any]] = {name: Counter() for name in by}
    errors: dict[str, Counter[Any]] = {name: Counter() for name in by}
    total = [0, 0, 0]
    first: int | None = None
    last: int | None = None
    for e in store.events():
        if not test(e):
            continue
        is_denied = e.action in _DECISIONS["denied"]
        is_error = e.status is not None and e.status >= 500
        total[0] += 1
        total[1] += is_denied
        total[2] += is_error
        first = e.time_ms if first is None else min(first, e.time_ms)
        last = e.time_ms if last is None else max(last, e.time_ms)
        for name in by:
            key = _DIMENSIONS[name][2](e)
            counts[name][key] += 1
            denied[name][key] += is_denied
            errors[name][key] += is_error
    out: dict[str, list[Bucket]] = {}
    for name in by:
        buckets = [Bucket(k, n, denied[name][k], errors[name][k]) for k, n in counts[name].items()]
        buckets.sort(key=_ORDER[name], reverse=True)
        if name == "hour":
            buckets = [
                Bucket(b.key * HOUR_MS, b.count, b.denied, b.errors)
                for b in reversed(buckets[: max(top, 48)])
            ]
        else:
            buckets = buckets[:top]
        out[name] = buckets
    return Stats(Bucket(None, *total), first, last, out)


async def chain_rows(store: EventStore, instance: str | None = None) -> AsyncIterator[ChainRow]:
    """The chained events, ordered by ``(instance, seq, uid)``, a page at a time."""
    if isinstance(store, JSONLStore):
        rows = {}
        for e in store.records():
            if e.seq is None or e.hash is None or e.instance is None:
                continue
            if instance is not None and e.instance != instance:
                continue
            # an identical record twice is a repeated replay, not an insertion
            rows[(e.instance, e.seq, e.uid, e.hash, e.text)] = ChainRow(
                e.instance, e.seq, e.hash, e.text.encode(), e.uid, e.time_ms
            )
        for key in sorted(rows):
            yield rows[key]
        return
    assert isinstance(store, SQLStore)
    after: tuple[str, int, str] | None = None
    while True:
        p = _Params(store.dialect)
        where = ["seq IS NOT NULL", "hash IS NOT NULL", "instance IS NOT NULL"]
        if instance is not None:
            where.append(f"instance = {p(instance)}")
        if after is not None:
            keyset = f"{p(after[0], 'text')}, {p(after[1], 'bigint')}, {p(after[2], 'text')}"
            where.append(f"(instance, seq, uid) > ({keyset})")
        sql = (
            f"SELECT instance, seq, hash, event, uid, time_ms FROM {store.table} WHERE {' AND '.join(where)} "
            f"ORDER BY instance, seq, uid LIMIT {p(_CHAIN_PAGE)}"
        )
        page = await store.fetch(sql, p.values)
        for r in page:
            yield ChainRow(r[0], r[1], r[2], r[3].encode(), r[4], r[5])
        if len(page) < _CHAIN_PAGE:
            return
        last = page[-1]
        after = (last[0], last[1], last[4])
