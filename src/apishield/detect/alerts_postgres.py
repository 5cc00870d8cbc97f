"""The shared alert store: PostgreSQL, for several gateway instances and a console.

``postgresql://...?schema=NAME`` keeps the table in schema ``NAME`` (created
if missing); evidence and event ids are ``jsonb`` so a console can query
into them. Recording a signal is one transaction that first takes a
transaction-scoped advisory lock on the ``(detector, key)`` pair: two
instances recording signals about the same key take turns and make one
alert, while signals about other keys proceed in parallel. The pool is
opened on first use, on the caller's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from apishield.audit.schema import quote_identifier
from apishield.audit.sinks.postgres import split_dsn
from apishield.detect.alerts import (
    AGGREGATE_COLUMNS,
    COLUMNS,
    Alert,
    AlertQuery,
    Recorded,
    SignalFacts,
    StoreError,
    aggregate_values,
    alert_from_row,
    alert_row,
    merge,
    new_alert,
)
from apishield.detect.alerts_sqlite import where_clause

__all__ = ["PostgresAlertStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS apishield_alerts ("
    "id TEXT PRIMARY KEY, detector TEXT NOT NULL, key TEXT NOT NULL, severity SMALLINT NOT NULL, "
    "status TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, "
    "count BIGINT NOT NULL, summary TEXT NOT NULL, evidence JSONB NOT NULL, event_ids JSONB NOT NULL, "
    "scope TEXT, response TEXT, acked_by TEXT, acked_at BIGINT, note TEXT)",
    "CREATE INDEX IF NOT EXISTS apishield_alerts_open ON apishield_alerts (detector, key, status, last_seen)",
    "CREATE INDEX IF NOT EXISTS apishield_alerts_last_seen ON apishield_alerts (last_seen)",
)
_INSERT = f"INSERT INTO apishield_alerts ({COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 17))})"
_UPDATE = (
    "UPDATE apishield_alerts SET "
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(AGGREGATE_COLUMNS, start=1))
    + f" WHERE id = ${len(AGGREGATE_COLUMNS) + 1}"
)


class PostgresAlertStore:
    def __init__(self, url: str) -> None:
        self.dsn, self.schema = split_dsn(url)  # the schema is "public" unless ?schema= names one
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _conn(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._open()
        return self._pool

    async def _open(self) -> Any:
        import asyncpg

        schema = quote_identifier(self.schema)
        try:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('apishield_alerts schema'))")
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                    await conn.execute(f"SET LOCAL search_path TO {schema}")
                    for statement in _SCHEMA:
                        await conn.execute(statement)
            finally:
                await conn.close()
            return await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, timeout=5, server_settings={"search_path": self.schema}
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"alert store (PostgreSQL): {exc}") from None

    async def _run(self, work: Any) -> Any:
        import asyncpg

        pool = await self._conn()
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"alert store (PostgreSQL): {exc}") from None

    async def record(self, signal: SignalFacts, window_ms: int) -> Recorded:
        async def work(conn: Any) -> Recorded:
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", f"{signal.detector}\x1f{signal.key}"
                )
                row = await conn.fetchrow(
                    f"SELECT {COLUMNS} FROM apishield_alerts WHERE detector = $1 AND key = $2 "
                    "AND status = 'open' AND last_seen >= $3 ORDER BY last_seen DESC LIMIT 1",
                    signal.detector,
                    signal.key,
                    signal.time_ms - window_ms,
                )
                if row is None:
                    alert = new_alert(signal)
                    await conn.execute(_INSERT, *alert_row(alert))
                    return Recorded(alert, True, False)
                old = alert_from_row(row)
                alert = merge(old, signal)
                await conn.execute(_UPDATE, *aggregate_values(alert))
                return Recorded(alert, False, alert.severity > old.severity)

        result: Recorded = await self._run(work)
        return result

    async def query(self, query: AlertQuery) -> list[Alert]:
        where, params = where_clause(query, "${n}")
        limit = f"${len(params) + 1}"
        sql = f"SELECT {COLUMNS} FROM apishield_alerts{where} ORDER BY last_seen DESC, id LIMIT {limit}"
        rows = await self._run(lambda conn: conn.fetch(sql, *params, query.limit))
        return [alert_from_row(r) for r in rows]

    async def get(self, alert_id: str) -> Alert | None:
        sql = f"SELECT {COLUMNS} FROM apishield_alerts WHERE id = $1"
        row = await self._run(lambda conn: conn.fetchrow(sql, alert_id))
        return alert_from_row(row) if row is not None else None

    async def ack(self, alert_id: str, by: str, note: str | None, now_ms: int) -> Alert | None:
        sql = (
            "UPDATE apishield_alerts SET status = 'acknowledged', acked_by = $1, acked_at = $2, "
            "note = COALESCE($3, note) WHERE id = $4 AND status = 'open'"
        )
        await self._run(lambda conn: conn.execute(sql, by, now_ms, note, alert_id))
        return await self.get(alert_id)

    async def set_response(self, alert_id: str, response: str) -> None:
        sql = "UPDATE apishield_alerts SET response = $1 WHERE id = $2"
        await self._run(lambda conn: conn.execute(sql, response, alert_id))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
