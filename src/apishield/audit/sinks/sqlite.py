"""The SQLite sink: the embedded default, one file next to the policy.

The database runs in WAL mode, so ``apishield events`` and the console read
while the gateway writes. Every blocking call runs in one dedicated thread
that owns the connection; a batch is one transaction of one ``executemany``
(``INSERT OR IGNORE``: a replayed event whose ``uid`` is already stored is
skipped, so it is counted once).

``synchronous``: in ``buffered`` durability, ``NORMAL``: in WAL mode a
committed transaction survives the process being killed (it is in the
operating system's cache) but the last ones may be lost with the machine,
which is what buffered promises. In ``acknowledged`` durability, ``FULL``:
the writer deletes a journal segment once the sink has confirmed its events,
so from then on the database is the only copy and a commit must reach the
disk. That is one ``fsync`` per batch (one per flush interval), not one per
request: the per-request cost of acknowledged durability is the journal's
group commit.

Retention deletes rows older than the bound in slices of 10,000 so that
readers and the next batch are never held up for long; the space is reused,
not returned to the file system (run ``VACUUM`` offline for that).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from apishield.audit.chain import Link
from apishield.audit.columns import columns
from apishield.audit.schema import ALL_COLUMNS, SQLITE_DDL, SQLITE_VERSION
from apishield.audit.sinks import SinkError

__all__ = ["SQLiteSink"]

T = TypeVar("T")

_INSERT = (
    f"INSERT OR IGNORE INTO audit_events ({', '.join(ALL_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ALL_COLUMNS)})"
)
_OBJECTS = ALL_COLUMNS.index("object_ids")
_EXPIRE_SLICE = 10_000


def row_of(event: dict[str, Any], encoded: bytes, link: Link | None) -> tuple[Any, ...]:
    values = list(columns(event))
    objects = values[_OBJECTS]
    values[_OBJECTS] = orjson.dumps(objects).decode() if objects else None
    text = encoded[:-1] if encoded.endswith(b"\n") else encoded
    if link is None:
        return (*values, None, None, text.decode())
    return (*values, link.seq, link.hash, text.decode())


class SQLiteSink:
    name = "sqlite"
    setting = "audit.path"

    def __init__(self, path: str | Path, *, durable: bool = False, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.durable = durable
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    def describe(self) -> str:
        return str(self.path)

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apishield-audit-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if self._conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise SinkError(f"cannot open the SQLite database {self.path}: {exc}") from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SQLITE_VERSION:
                raise SinkError(
                    f"{self.path} was written by a newer apishield (audit schema {version}); "
                    "upgrade to use it"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            conn.executescript(SQLITE_DDL)
            if version < SQLITE_VERSION:
                conn.execute(f"PRAGMA user_version={SQLITE_VERSION}")
        except sqlite3.Error as exc:
            conn.close()
            raise SinkError(f"cannot set up the SQLite database {self.path}: {exc}") from None
        except SinkError:
            conn.close()
            raise
        self._conn = conn

    async def write(
        self,
        events: list[dict[str, Any]],
        encoded: list[bytes],
        links: Sequence[Link | None] | None = None,
    ) -> None:
        if not events:
            return
        await self._run(lambda: self._write(events, encoded, links))

    def _write(
        self, events: list[dict[str, Any]], encoded: list[bytes], links: Sequence[Link | None] | None
    ) -> None:
        conn = self._conn
        if conn is None:
            self._open()
            conn = self._conn
            assert conn is not None
        if links is None:
            rows = [row_of(e, b, None) for e, b in zip(events, encoded, strict=True)]
        else:
            rows = [row_of(e, b, k) for e, b, k in zip(events, encoded, links, strict=True)]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise SinkError(f"SQLite write to {self.path} failed: {exc}") from None

    async def expire(self, before_ms: int) -> int:
        return await self._run(lambda: self._expire(before_ms))

    def _expire(self, before_ms: int) -> int:
        conn = self._conn
        if conn is None:
            return 0
        total = 0
        try:
            while True:
                cursor = conn.execute(
                    "DELETE FROM audit_events WHERE rowid IN "
                    "(SELECT rowid FROM audit_events WHERE time_ms < ? LIMIT ?)",
                    (before_ms, _EXPIRE_SLICE),
                )
                total += cursor.rowcount
                if cursor.rowcount < _EXPIRE_SLICE:
                    return total
        except sqlite3.Error as exc:
            raise SinkError(f"SQLite retention on {self.path} failed: {exc}") from None

    async def close(self) -> None:
        if self._executor is None:
            return

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await self._run(close)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None
