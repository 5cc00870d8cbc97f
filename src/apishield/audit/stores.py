"""Read handles on the places the sinks write to, for ``apishield events`` and the console.

A store answers SQL (SQLite, PostgreSQL) or yields its events (a JSON-lines
file); :mod:`apishield.audit.query` builds the questions. Reading never
writes: SQLite is opened read-only (WAL lets it read while a gateway
writes), PostgreSQL through one connection, a JSON-lines file line by line.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from apishield.audit.chain import Link
from apishield.audit.columns import columns
from apishield.audit.record import parse_line
from apishield.audit.schema import TABLE, quote_identifier

__all__ = [
    "EventStore",
    "JSONLStore",
    "PostgresStore",
    "SQLStore",
    "SQLiteStore",
    "StoreError",
    "StoredEvent",
    "open_store",
]


class StoreError(Exception):
    """The store cannot be read; the message says which setting or file."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored event: its indexed columns, its chain link and its exact JSON text."""

    uid: str
    time_ms: int
    class_uid: int | None
    instance: str | None
    subject: str | None
    client_id: str | None
    token: str | None
    api_key_id: str | None
    src_ip: str | None
    operation: str | None
    route: str | None
    method: str | None
    action: str | None
    status: int | None
    status_detail: str | None
    object_ids: tuple[str, ...]
    latency_ms: float | None
    bytes_out: int | None
    severity_id: int | None
    seq: int | None
    hash: str | None
    text: str

    def event(self) -> dict[str, Any]:
        value = orjson.loads(self.text)
        return value if isinstance(value, dict) else {}

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> StoredEvent:
        """From a row of :data:`~apishield.audit.schema.ALL_COLUMNS`."""
        values = list(row)
        objects = values[15]
        if isinstance(objects, str):
            objects = orjson.loads(objects)
        values[15] = tuple(objects) if objects else ()
        return cls(*values)

    @classmethod
    def from_line(cls, line: bytes) -> StoredEvent:
        """From a JSON-lines record (without its newline); raises ValueError."""
        text, link = parse_line(line)
        event = orjson.loads(text)
        if not isinstance(event, dict):
            raise ValueError("not a JSON object")
        return cls.from_event(event, text.decode(), link)

    @classmethod
    def from_event(cls, event: dict[str, Any], text: str, link: Link | None) -> StoredEvent:
        values = columns(event)
        row = (values[0] or "", *values[1:], link.seq if link else None, link.hash if link else None, text)
        return cls(*row)


class SQLStore:
    """The common part of the SQL stores: a dialect, a table and ``fetch``."""

    dialect: str
    table: str

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SQLiteStore(SQLStore):
    dialect = "sqlite"
    table = TABLE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no audit database at {self.path}")
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
            self._conn.execute(f"SELECT 1 FROM {TABLE} LIMIT 1")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path} is not an audit database: {exc}") from None

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, tuple(params)).fetchall())
            except sqlite3.Error as exc:
                raise StoreError(f"reading {self.path} failed: {exc}") from None

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return await asyncio.to_thread(self._fetch, sql, params)

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresStore(SQLStore):
    dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        from apishield.audit.sinks.postgres import split_dsn

        try:
            self.dsn, self.schema = split_dsn(dsn)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self.table = f"{quote_identifier(self.schema)}.{TABLE}"
        self._conn: Any = None

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        import asyncpg

        from apishield.audit.sinks.postgres import redact_dsn

        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self.dsn, timeout=10)
            return list(await self._conn.fetch(sql, *params))
        except asyncpg.UndefinedTableError:
            raise StoreError(f"there is no audit table in schema {self.schema}") from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"reading PostgreSQL at {redact_dsn(self.dsn)} failed: {exc}") from None
        except ValueError as exc:
            raise StoreError(f"not a valid PostgreSQL URL: {exc}") from None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class JSONLStore:
    """A JSON-lines file; each ``metadata.uid`` is yielded once (a replay may have repeated a batch)."""

    def __init__(self, path: str | Path) -> None:
        if str(path) == "-":
            raise StoreError("the audit sink writes to standard output: there is nothing to read back")
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no audit file at {self.path}")

    def events(self) -> Iterator[StoredEvent]:
        seen: set[str] = set()
        try:
            with self.path.open("rb") as lines:
                for line in lines:
                    if not line.endswith(b"\n"):
                        break  # a line being written
                    try:
                        stored = StoredEvent.from_line(line[:-1])
                    except ValueError:
                        continue
                    if stored.uid in seen:
                        continue
                    seen.add(stored.uid)
                    yield stored
        except OSError as exc:
            raise StoreError(f"reading {self.path} failed: {exc.strerror or exc}") from None

    def records(self) -> Iterator[StoredEvent]:
        """Every record, repeats included (what the chain verification reads)."""
        try:
            with self.path.open("rb") as lines:
                for line in lines:
                    if line.endswith(b"\n"):
                        try:
                            yield StoredEvent.from_line(line[:-1])
                        except ValueError:
                            continue
        except OSError as exc:
            raise StoreError(f"reading {self.path} failed: {exc.strerror or exc}") from None

    async def close(self) -> None:
        return None


EventStore = SQLStore | JSONLStore


def open_store(
    *,
    db: str | Path | None = None,
    dsn: str | None = None,
    jsonl: str | Path | None = None,
    policy: Any = None,
    base_dir: str | Path | None = None,
) -> EventStore:
    """The store named by exactly one of ``db``, ``dsn``, ``jsonl``, or else by the policy's ``audit:``."""
    given = [x for x in (db, dsn, jsonl) if x is not None]
    if len(given) > 1:
        raise StoreError("give one of --db, --dsn and --jsonl")
    if db is not None:
        return SQLiteStore(db)
    if dsn is not None:
        return PostgresStore(dsn)
    if jsonl is not None:
        return JSONLStore(jsonl)
    if policy is None:
        raise StoreError("no store given: use --config, --db, --dsn or --jsonl")
    base = Path(base_dir or ".")

    def resolve(path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else base / p

    if policy.sink == "off":
        raise StoreError("the policy has audit.sink: off; no events are stored")
    if policy.sink == "sqlite":
        return SQLiteStore(resolve(policy.path))
    if policy.sink == "jsonl":
        return JSONLStore("-" if policy.path == "-" else resolve(policy.path))
    return PostgresStore(policy.dsn)
