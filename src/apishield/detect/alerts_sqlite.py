"""The embedded alert store: one SQLite file (WAL), for the processes of one machine.

Every call opens its own connection in a worker thread, so the store serves
the gateway's event loop, the command line and several worker processes
alike. Recording a signal is one ``BEGIN IMMEDIATE`` transaction (find the
open alert, then update it or insert a new one): SQLite's write lock makes
concurrent recorders take turns, so they still make one alert. The file is
created readable by its owner only (alerts name subjects and addresses).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

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

__all__ = ["SQLiteAlertStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS apishield_alerts ("
    "id TEXT PRIMARY KEY, detector TEXT NOT NULL, key TEXT NOT NULL, severity INTEGER NOT NULL, "
    "status TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, "
    "count INTEGER NOT NULL, summary TEXT NOT NULL, evidence TEXT NOT NULL, event_ids TEXT NOT NULL, "
    "scope TEXT, response TEXT, acked_by TEXT, acked_at INTEGER, note TEXT)",
    "CREATE INDEX IF NOT EXISTS apishield_alerts_open ON apishield_alerts (detector, key, status, last_seen)",
    "CREATE INDEX IF NOT EXISTS apishield_alerts_last_seen ON apishield_alerts (last_seen)",
)
_UPDATE = "UPDATE apishield_alerts SET " + ", ".join(f"{c} = ?" for c in AGGREGATE_COLUMNS) + " WHERE id = ?"


def where_clause(query: AlertQuery, placeholder: str = "?") -> tuple[str, list[Any]]:
    """The WHERE of an :class:`AlertQuery` (``placeholder`` may hold ``{n}`` for numbered ones)."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("status", "=", query.status),
        ("detector", "=", query.detector),
        ("key", "=", query.key),
        ("severity", ">=", query.min_severity),
        ("last_seen", ">=", query.since),
    ):
        if value is not None:
            params.append(value)
            conditions.append(f"{column} {op} {placeholder.format(n=len(params))}")
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


class SQLiteAlertStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = self._connect()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                with conn:
                    for statement in _SCHEMA:
                        conn.execute(statement)
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"alert store {path}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def _read(self, sql: str, params: list[Any] | tuple[Any, ...]) -> list[Any]:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def _record(self, signal: SignalFacts, window_ms: int) -> Recorded:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT {COLUMNS} FROM apishield_alerts WHERE detector = ? AND key = ? "
                    "AND status = 'open' AND last_seen >= ? ORDER BY last_seen DESC LIMIT 1",
                    (signal.detector, signal.key, signal.time_ms - window_ms),
                ).fetchone()
                if row is None:
                    alert = new_alert(signal)
                    placeholders = ", ".join("?" * len(alert_row(alert)))
                    conn.execute(
                        f"INSERT INTO apishield_alerts ({COLUMNS}) VALUES ({placeholders})", alert_row(alert)
                    )
                    result = Recorded(alert, True, False)
                else:
                    old = alert_from_row(row)
                    alert = merge(old, signal)
                    conn.execute(_UPDATE, aggregate_values(alert))
                    result = Recorded(alert, False, alert.severity > old.severity)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        finally:
            conn.close()

    async def record(self, signal: SignalFacts, window_ms: int) -> Recorded:
        recorded: Recorded = await self._call(self._record, signal, window_ms)
        return recorded

    async def query(self, query: AlertQuery) -> list[Alert]:
        where, params = where_clause(query)
        sql = f"SELECT {COLUMNS} FROM apishield_alerts{where} ORDER BY last_seen DESC, id LIMIT ?"
        rows = await self._call(self._read, sql, [*params, query.limit])
        return [alert_from_row(r) for r in rows]

    async def get(self, alert_id: str) -> Alert | None:
        rows = await self._call(
            self._read, f"SELECT {COLUMNS} FROM apishield_alerts WHERE id = ?", (alert_id,)
        )
        return alert_from_row(rows[0]) if rows else None

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        conn = self._connect()
        try:
            conn.execute(sql, params)
        finally:
            conn.close()

    async def ack(self, alert_id: str, by: str, note: str | None, now_ms: int) -> Alert | None:
        await self._call(
            self._write,
            "UPDATE apishield_alerts SET status = 'acknowledged', acked_by = ?, acked_at = ?, "
            "note = COALESCE(?, note) WHERE id = ? AND status = 'open'",
            (by, now_ms, note, alert_id),
        )
        return await self.get(alert_id)

    async def set_response(self, alert_id: str, response: str) -> None:
        await self._call(
            self._write, "UPDATE apishield_alerts SET response = ? WHERE id = ?", (response, alert_id)
        )

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"alert store {self.path}: {exc}") from None

    async def close(self) -> None:
        return None
