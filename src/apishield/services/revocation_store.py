"""Where revocations are shared: memory, SQLite (one machine) or Redis (many machines).

Every store is an append-only log of ``(kind, id, until)`` entries with a
monotonic position; instances poll for entries after the position they
last saw (one query per poll interval, whatever the traffic) and add them
to their in-memory :class:`~apishield.auth.revocation.Denylist`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

__all__ = ["RevocationStore", "open_revocation_store"]

Entry = tuple[str, str, float]


class RevocationStore(Protocol):
    async def revoke(self, kind: str, ident: str, until: float) -> None: ...
    async def since(self, cursor: float) -> tuple[list[Entry], float]: ...
    async def close(self) -> None: ...


class MemoryRevocationStore:
    def __init__(self) -> None:
        self.log: list[Entry] = []

    async def revoke(self, kind: str, ident: str, until: float) -> None:
        self.log.append((kind, ident, until))

    async def since(self, cursor: float) -> tuple[list[Entry], float]:
        start = int(cursor)
        return self.log[start:], float(len(self.log))

    async def close(self) -> None:
        return None


class SQLiteRevocationStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run(
            "CREATE TABLE IF NOT EXISTS apishield_revocations (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "kind TEXT NOT NULL, ident TEXT NOT NULL, until REAL NOT NULL)"
        )

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def revoke(self, kind: str, ident: str, until: float) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT INTO apishield_revocations (kind, ident, until) VALUES (?, ?, ?)",
            (kind, ident, until),
        )

    async def since(self, cursor: float) -> tuple[list[Entry], float]:
        sql = "SELECT seq, kind, ident, until FROM apishield_revocations "
        sql += "WHERE seq > ? AND until > ? ORDER BY seq"
        rows = await asyncio.to_thread(self._run, sql, (int(cursor), time.time()))
        if not rows:
            return [], cursor
        return [(k, i, u) for _, k, i, u in rows], float(rows[-1][0])

    async def close(self) -> None:
        return None


class RedisRevocationStore:
    """A sorted set scored by a sequence number; entries are ``kind|until|id``."""

    KEY = "apishield:{revocations}:log"
    SEQ = "apishield:{revocations}:seq"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def revoke(self, kind: str, ident: str, until: float) -> None:
        seq = await self.client.incr(self.SEQ)
        await self.client.zadd(self.KEY, {f"{kind}|{until!r}|{ident}": seq})
        await self.client.zremrangebyscore(self.KEY, "-inf", max(0, seq - 1_000_000))

    async def since(self, cursor: float) -> tuple[list[Entry], float]:
        rows = await self.client.zrangebyscore(self.KEY, f"({int(cursor)}", "+inf", withscores=True)
        entries: list[Entry] = []
        last = cursor
        for member, score in rows:
            kind, until, ident = member.decode().split("|", 2)
            entries.append((kind, ident, float(until)))
            last = max(last, float(score))
        return entries, last

    async def close(self) -> None:
        await self.client.aclose()


def open_revocation_store(url: str, base_dir: Path) -> RevocationStore:
    if url == "memory":
        return MemoryRevocationStore()
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        return SQLiteRevocationStore(path if path.is_absolute() else base_dir / path)
    return RedisRevocationStore(url)
