"""Where API key records live: SQLite (default) or PostgreSQL (several gateway instances).

Only the SHA-256 of a key's secret is stored (:mod:`apishield.auth.apikeys`).
The same schema on both databases; the CLI (`apishield keys`) and the
gateway's lookups share this module. Revoking a key also writes the
revocation store, so every instance refuses it within a second.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from apishield.auth.apikeys import APIKeyRecord

__all__ = ["APIKeyStore", "open_api_key_store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS apishield_api_keys (
    key_id TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    last_used_at DOUBLE PRECISION,
    description TEXT NOT NULL DEFAULT ''
)
"""
_COLUMNS = (
    "key_id, client, scopes, secret_hash, created_at, expires_at, revoked_at, last_used_at, description"
)


def _record(row: Iterable[Any]) -> APIKeyRecord:
    key_id, client, scopes, secret_hash, created, expires, revoked, used, description = row
    return APIKeyRecord(
        key_id=key_id,
        client=client,
        scopes=frozenset(scopes.split()),
        secret_hash=secret_hash,
        created_at=created,
        expires_at=expires,
        revoked_at=revoked,
        last_used_at=used,
        description=description,
    )


class APIKeyStore(Protocol):
    async def get(self, key_id: str) -> APIKeyRecord | None: ...
    async def add(self, record: APIKeyRecord) -> None: ...
    async def list(self) -> list[APIKeyRecord]: ...
    async def revoke(self, key_id: str, now: float) -> APIKeyRecord | None: ...
    async def touch(self, used: dict[str, float]) -> None: ...
    async def close(self) -> None: ...


class SQLiteAPIKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _run(
        self, sql: str, params: tuple[Any, ...] = (), many: list[tuple[Any, ...]] | None = None
    ) -> list[Any]:
        conn = self._connect()
        try:
            with conn:
                if many is not None:
                    conn.executemany(sql, many)
                    return []
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def get(self, key_id: str) -> APIKeyRecord | None:
        rows = await asyncio.to_thread(
            self._run, f"SELECT {_COLUMNS} FROM apishield_api_keys WHERE key_id = ?", (key_id,)
        )
        return _record(rows[0]) if rows else None

    async def add(self, record: APIKeyRecord) -> None:
        await asyncio.to_thread(
            self._run,
            f"INSERT INTO apishield_api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _values(record),
        )

    async def list(self) -> list[APIKeyRecord]:
        rows = await asyncio.to_thread(
            self._run, f"SELECT {_COLUMNS} FROM apishield_api_keys ORDER BY created_at"
        )
        return [_record(r) for r in rows]

    async def revoke(self, key_id: str, now: float) -> APIKeyRecord | None:
        await asyncio.to_thread(
            self._run,
            "UPDATE apishield_api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (now, key_id),
        )
        return await self.get(key_id)

    async def touch(self, used: dict[str, float]) -> None:
        if used:
            await asyncio.to_thread(
                self._run,
                "UPDATE apishield_api_keys SET last_used_at = ? WHERE key_id = ?",
                many=[(t, k) for k, t in used.items()],
            )

    async def close(self) -> None:
        return None


class PostgresAPIKeyStore:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def _conn(self) -> Any:
        if self._pool is None:
            import asyncpg

            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
            async with self._pool.acquire() as conn:
                await conn.execute(_SCHEMA)
        return self._pool

    async def get(self, key_id: str) -> APIKeyRecord | None:
        pool = await self._conn()
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM apishield_api_keys WHERE key_id = $1", key_id)
        return _record(row) if row else None

    async def add(self, record: APIKeyRecord) -> None:
        pool = await self._conn()
        await pool.execute(
            f"INSERT INTO apishield_api_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            *_values(record),
        )

    async def list(self) -> list[APIKeyRecord]:
        pool = await self._conn()
        return [
            _record(r)
            for r in await pool.fetch(f"SELECT {_COLUMNS} FROM apishield_api_keys ORDER BY created_at")
        ]

    async def revoke(self, key_id: str, now: float) -> APIKeyRecord | None:
        pool = await self._conn()
        await pool.execute(
            "UPDATE apishield_api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
            now,
            key_id,
        )
        return await self.get(key_id)

    async def touch(self, used: dict[str, float]) -> None:
        if used:
            pool = await self._conn()
            await pool.executemany(
                "UPDATE apishield_api_keys SET last_used_at = $1 WHERE key_id = $2",
                [(t, k) for k, t in used.items()],
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _values(r: APIKeyRecord) -> tuple[Any, ...]:
    scopes = " ".join(sorted(r.scopes))
    return (
        r.key_id,
        r.client,
        scopes,
        r.secret_hash,
        r.created_at,
        r.expires_at,
        r.revoked_at,
        r.last_used_at,
        r.description,
    )


def open_api_key_store(url: str, base_dir: Path) -> APIKeyStore:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        return SQLiteAPIKeyStore(path if path.is_absolute() else base_dir / path)
    return PostgresAPIKeyStore(url)


def now() -> float:
    return time.time()
