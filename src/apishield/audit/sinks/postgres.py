"""The PostgreSQL sink: many gateway instances, one table partitioned by day.

``audit.dsn`` is a libpq URL; ``?schema=NAME`` keeps the table in schema
``NAME`` (created if missing; a lower-case identifier, checked before any
SQL is built). The parent table is ``PARTITION BY RANGE (time_ms)`` with one
partition per UTC day, created the first time a batch touches the day
(``CREATE TABLE IF NOT EXISTS ... PARTITION OF``, under a transaction-level
advisory lock so that instances creating the same day do not race).

A batch is one transaction: ``COPY`` (``copy_records_to_table``, the binary
protocol) into a temporary staging table whose rows vanish at commit, then
``INSERT INTO audit_events SELECT ... ON CONFLICT (uid, time_ms) DO
NOTHING``. COPY is the fast path in; the ``INSERT ... SELECT`` makes a
replayed batch land exactly once, which a plain COPY into the table cannot.
The staging table is temporary, so its rows are never WAL-logged.

The sink holds one connection (the writer never writes two batches at once).
When the server goes away, the failing batch raises :class:`SinkError`, the
connection is dropped, and the next ``open`` or ``write`` connects again;
the writer keeps the events in its journal meanwhile. Retention drops the
partitions of days that ended before the bound: no row-by-row deletes, no
bloat.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from apishield.audit.chain import Link
from apishield.audit.columns import COLUMNS, columns
from apishield.audit.schema import (
    ALL_COLUMNS,
    DAY_MS,
    TABLE,
    partition_day,
    postgres_indexes,
    postgres_partition,
    postgres_table,
    quote_identifier,
    valid_identifier,
)
from apishield.audit.sinks import SinkError

__all__ = ["PostgresSink", "redact_dsn", "split_dsn"]

_STAGING = "apishield_audit_staging"
_TIME = ALL_COLUMNS.index("time_ms")
_OBJECTS = COLUMNS.index("object_ids")


def split_dsn(dsn: str) -> tuple[str, str]:
    """``(dsn without schema=, schema)``; raises ValueError naming the problem."""
    parts = urlsplit(dsn)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError("audit.dsn must be a postgresql:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    schema = schemas[-1] if schemas else "public"
    if not valid_identifier(schema):
        raise ValueError(f"audit.dsn: schema={schema!r} is not a lower-case SQL identifier")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def record_of(event: dict[str, Any], encoded: bytes, link: Link | None) -> tuple[Any, ...]:
    values = columns(event)
    text = (encoded[:-1] if encoded.endswith(b"\n") else encoded).decode()
    head, objects, tail = values[:_OBJECTS], list(values[_OBJECTS]) or None, values[_OBJECTS + 1 :]
    if link is None:
        return (*head, objects, *tail, None, None, text)
    return (*head, objects, *tail, link.seq, link.hash, text)


class PostgresSink:
    name = "postgresql"
    setting = "audit.dsn"

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0, command_timeout: float = 30.0) -> None:
        self.dsn, self.schema = split_dsn(dsn)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._conn: Any = None
        self._days: set[int] = set()
        schema = quote_identifier(self.schema)
        self._table = f"{schema}.{TABLE}"
        cols = ", ".join(ALL_COLUMNS)
        self._insert = (
            f"INSERT INTO {self._table} ({cols}) SELECT {cols} FROM {_STAGING} "
            "ON CONFLICT (uid, time_ms) DO NOTHING"
        )
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"apishield.audit.{self.schema}".encode()).digest()[:8], "big", signed=True
        )

    def describe(self) -> str:
        return f"{redact_dsn(self.dsn)} (schema {self.schema})"

    async def open(self) -> None:
        import asyncpg

        if self._conn is not None and not self._conn.is_closed():
            return
        self._conn = None
        try:
            conn = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
                server_settings={"application_name": "apishield-audit"},
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SinkError(f"cannot connect to PostgreSQL at {redact_dsn(self.dsn)}: {_say(exc)}") from None
        except ValueError as exc:  # a malformed URL
            raise SinkError(f"audit.dsn is not a valid PostgreSQL URL: {exc}") from None
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(self.schema)}")
                await conn.execute(postgres_table(self.schema))
                for statement in postgres_indexes(self.schema):
                    await conn.execute(statement)
            await conn.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (LIKE {self._table}) ON COMMIT DELETE ROWS"
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await _close(conn)
            raise SinkError(f"cannot set up the audit table in schema {self.schema}: {_say(exc)}") from None
        self._conn = conn
        self._days.clear()

    async def write(
        self,
        events: list[dict[str, Any]],
        encoded: list[bytes],
        links: Sequence[Link | None] | None = None,
    ) -> None:
        import asyncpg

        if not events:
            return
        if links is None:
            records = [record_of(e, b, None) for e, b in zip(events, encoded, strict=True)]
        else:
            records = [record_of(e, b, k) for e, b, k in zip(events, encoded, links, strict=True)]
        await self.open()
        conn = self._conn
        try:
            days = {r[_TIME] // DAY_MS for r in records} - self._days
            if days:
                await self._partitions(sorted(days))
            async with conn.transaction():
                await conn.copy_records_to_table(_STAGING, records=records, columns=ALL_COLUMNS)
                await conn.execute(self._insert)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._days.clear()  # a partition may have been dropped by another instance's retention
            if conn.is_closed() or not isinstance(exc, asyncpg.PostgresError):
                await _close(conn)
                self._conn = None
            raise SinkError(f"PostgreSQL write failed: {_say(exc)}") from None

    async def _partitions(self, days: list[int]) -> None:
        conn = self._conn
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
            for day in days:
                await conn.execute(postgres_partition(self.schema, day))
        self._days.update(days)

    async def expire(self, before_ms: int) -> int:
        """Drop the partitions of days that ended at or before ``before_ms``."""
        import asyncpg

        await self.open()
        conn = self._conn
        dropped = 0
        try:
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = $1 AND p.relname = $2",
                self.schema,
                TABLE,
            )
            for (name,) in names:
                day = partition_day(name)
                if day is None or (day + 1) * DAY_MS > before_ms:
                    continue
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
                    await conn.execute(f"DROP TABLE IF EXISTS {quote_identifier(self.schema)}.{name}")
                self._days.discard(day)
                dropped += 1
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if conn.is_closed():
                self._conn = None
            raise SinkError(f"PostgreSQL retention failed: {_say(exc)}") from None
        return dropped

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        conn.terminate()


def _say(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
