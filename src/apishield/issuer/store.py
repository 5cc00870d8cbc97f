"""Where the issuer keeps its state: SQLite (one machine) or PostgreSQL (several instances).

One schema and one set of statements serve both databases; only the
executor differs. The store is synchronous because Authlib's grants are: the
ASGI layer runs each OAuth request in a worker thread, and the PostgreSQL
executor drives ``asyncpg`` on a private event loop (so it serves worker
threads, the CLI and the ASGI app alike).

Single use is enforced by the database, not by a read-then-write: consuming
a code or a refresh token is one ``UPDATE ... WHERE used_at IS NULL``, so of two
concurrent redemptions exactly one wins (RFC 6749 §4.1.2, RFC 9700 §4.14.2).

``postgresql://...?schema=NAME`` keeps the tables in schema ``NAME``
(created if missing). The SQLite file is created readable by its owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from apishield.issuer.models import (
    AccessTokenRecord,
    ClientRecord,
    CodeRecord,
    RefreshTokenRecord,
    UserRecord,
)

__all__ = ["IssuerStore", "Revoked", "StoreConflict", "StoreError", "open_issuer_store"]

T = TypeVar("T")
Row = Sequence[Any]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS apishield_issuer_clients (
        client_id TEXT PRIMARY KEY, name TEXT NOT NULL, client_type TEXT NOT NULL, secret_hash TEXT,
        grant_types TEXT NOT NULL, scopes TEXT NOT NULL, redirect_uris TEXT NOT NULL, claims TEXT NOT NULL,
        introspect_all INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS apishield_issuer_users (
        username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, claims TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, disabled_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS apishield_issuer_codes (
        code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, username TEXT NOT NULL, redirect_uri TEXT,
        scope TEXT NOT NULL, code_challenge TEXT, code_challenge_method TEXT, family_id TEXT NOT NULL,
        auth_time DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS apishield_issuer_refresh_tokens (
        token_hash TEXT PRIMARY KEY, family_id TEXT NOT NULL, client_id TEXT NOT NULL,
        username TEXT NOT NULL, scope TEXT NOT NULL, issued_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, auth_time DOUBLE PRECISION, jkt TEXT,
        used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS apishield_issuer_rt_family ON apishield_issuer_refresh_tokens (family_id)",
    """CREATE TABLE IF NOT EXISTS apishield_issuer_access_tokens (
        jti TEXT PRIMARY KEY, client_id TEXT NOT NULL, username TEXT, family_id TEXT,
        expires_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)""",
    # partial indexes: a client_credentials token (no family, no user) costs one index update less each
    "CREATE INDEX IF NOT EXISTS apishield_issuer_at_client ON apishield_issuer_access_tokens (client_id)",
    "CREATE INDEX IF NOT EXISTS apishield_issuer_at_family ON apishield_issuer_access_tokens (family_id) "
    "WHERE family_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS apishield_issuer_at_user ON apishield_issuer_access_tokens (username) "
    "WHERE username IS NOT NULL",
)

_CLIENT_COLUMNS = (
    "client_id, name, client_type, secret_hash, grant_types, scopes, redirect_uris, claims, "
    "introspect_all, created_at, revoked_at"
)
_USER_COLUMNS = "username, password_hash, claims, created_at, disabled_at"
_CODE_COLUMNS = (
    "code_hash, client_id, username, redirect_uri, scope, code_challenge, code_challenge_method, "
    "family_id, auth_time, expires_at, used_at"
)
_RT_COLUMNS = (
    "token_hash, family_id, client_id, username, scope, issued_at, expires_at, auth_time, jkt, "
    "used_at, revoked_at"
)


class StoreError(Exception):
    """The database could not be reached or refused a statement."""


class StoreConflict(StoreError):
    """A record with that name already exists."""


class Executor(Protocol):
    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]: ...
    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def close(self) -> None: ...


class GroupCommit:
    """Insert rows in shared transactions: callers return once *their* row is committed.

    The first caller to find no flush running becomes the leader and commits
    everything pending in one transaction; callers arriving meanwhile wait and
    go into the next batch. Idle, it is one insert per call; under load, one
    commit (SQLite's WAL write, PostgreSQL's round trip) serves many tokens.
    """

    def __init__(self, flush: Callable[[list[Sequence[Any]]], None]) -> None:
        self._flush = flush
        self._cond = threading.Condition()
        self._pending: list[Sequence[Any]] = []
        self._generation = 0  # the batch new rows join
        self._committed = 0  # batches below this number are done
        self._flushing = False
        self._failures: dict[int, BaseException] = {}

    def add(self, row: Sequence[Any]) -> None:
        with self._cond:
            self._pending.append(row)
            mine = self._generation
            while self._committed <= mine:
                if not self._flushing:
                    batch, self._pending = self._pending, []
                    self._generation += 1
                    self._flushing = True
                    break
                self._cond.wait()
            else:
                failure = self._failures.get(mine)
                if failure is not None:
                    raise StoreError(f"could not record the token: {failure}")
                return
        failure = None
        try:
            self._flush(batch)
        except BaseException as exc:
            failure = exc
        with self._cond:
            self._flushing = False
            self._committed = mine + 1
            if failure is not None:
                self._failures[mine] = failure
            self._failures.pop(mine - 100, None)
            self._cond.notify_all()
        if failure is not None:
            raise StoreError(f"could not record the token: {failure}")


# -- SQLite ------------------------------------------------------------------------------------------


class SQLiteExecutor:
    """A small pool of connections shared by worker threads (WAL, one writer at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._idle.put(conn)

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        try:
            with self._connection() as conn:
                cursor = conn.execute(sql, tuple(params))
                rows = cursor.fetchall()
                return rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows)
        except sqlite3.IntegrityError as exc:
            raise StoreConflict(str(exc)) from None
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from None

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._connection() as conn:
                if len(rows) == 1:  # autocommit: one statement instead of three
                    conn.execute(sql, tuple(rows[0]))
                    return
                conn.execute("BEGIN")
                try:
                    conn.executemany(sql, [tuple(r) for r in rows])
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise StoreConflict(str(exc)) from None
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


# -- PostgreSQL --------------------------------------------------------------------------------------


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the statements here have no '?' literals)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


def _split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresExecutor:
    """asyncpg on a private event loop thread, behind a synchronous interface."""

    def __init__(self, url: str) -> None:
        import re

        self.dsn, self.schema = _split_schema(url)
        if self.schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", self.schema):
            raise StoreError("schema= must be a lower-case SQL identifier")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="issuer-postgres", daemon=True)
        self._thread.start()
        self._pool: Any = None
        try:
            self._pool = self._call(self._open())
        except BaseException:
            self._stop_loop()
            raise

    async def _open(self) -> Any:
        import asyncpg

        settings = {"search_path": self.schema} if self.schema else {}
        try:
            if self.schema:
                conn = await asyncpg.connect(self.dsn, timeout=5)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                finally:
                    await conn.close()
            return await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=8, timeout=5, server_settings=settings
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[Row], int]:
        import asyncpg

        statement = _numbered(sql)
        try:
            async with self._pool.acquire() as conn:
                head = sql.lstrip()[:6].upper()
                if head == "SELECT" or "RETURNING" in sql:
                    records = await conn.fetch(statement, *params)
                    return [tuple(r) for r in records], len(records)
                status = await conn.execute(statement, *params)
        except asyncpg.UniqueViolationError as exc:
            raise StoreConflict(str(exc)) from None
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from None
        tail = status.rsplit(" ", 1)[-1]
        return [], int(tail) if tail.isdigit() else 0

    def run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        return self._call(self._run(sql, params))

    async def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        import asyncpg

        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(_numbered(sql), [tuple(r) for r in rows])
        except asyncpg.UniqueViolationError as exc:
            raise StoreConflict(str(exc)) from None
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"PostgreSQL: {exc}") from None

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._call(self._run_many(sql, rows))

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._call(self._pool.close(), timeout=5)
            self._pool = None
            self._stop_loop()


# -- the store ----------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _client(row: Row) -> ClientRecord:
    cid, name, kind, secret, grants, scopes, uris, claims, introspect_all, created, revoked = row
    return ClientRecord(
        client_id=cid,
        name=name,
        client_type=kind,
        secret_hash=secret,
        grant_types=tuple(grants.split()),
        scopes=tuple(scopes.split()),
        redirect_uris=tuple(orjson.loads(uris)),
        claims=orjson.loads(claims),
        introspect_all=bool(introspect_all),
        created_at=created,
        revoked_at=revoked,
    )


def _user(row: Row) -> UserRecord:
    username, password_hash, claims, created, disabled = row
    return UserRecord(username, password_hash, orjson.loads(claims), created, disabled)


def _code(row: Row) -> CodeRecord:
    return CodeRecord(*row)


def _refresh(row: Row) -> RefreshTokenRecord:
    return RefreshTokenRecord(*row)


Revoked = list[tuple[str, float]]  # (jti, expires_at) of access tokens to publish


class IssuerStore:
    """Clients, users, codes and tokens over an :class:`Executor`."""

    def __init__(self, executor: Executor) -> None:
        self.db = executor
        for statement in _SCHEMA:
            self.db.run(statement)
        insert = (
            "INSERT INTO apishield_issuer_access_tokens "
            "(jti, client_id, username, family_id, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._access_tokens = GroupCommit(lambda rows: self.db.run_many(insert, rows))

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, *params: Any) -> list[Row]:
        return self.db.run(sql, params)[0]

    def _count(self, sql: str, *params: Any) -> int:
        return self.db.run(sql, params)[1]

    def _insert(self, table: str, columns: str, *values: Any) -> None:
        marks = ", ".join("?" * len(values))
        self.db.run(f"INSERT INTO apishield_issuer_{table} ({columns}) VALUES ({marks})", values)

    def _revoke_refresh_tokens(self, where: str, value: str, now: float) -> None:
        self._count(
            f"UPDATE apishield_issuer_refresh_tokens SET revoked_at = ? WHERE {where} AND revoked_at IS NULL",
            now,
            value,
        )

    # -- clients --------------------------------------------------------------------------------------

    def add_client(self, c: ClientRecord) -> None:
        self._insert(
            "clients",
            _CLIENT_COLUMNS,
            c.client_id,
            c.name,
            c.client_type,
            c.secret_hash,
            " ".join(c.grant_types),
            " ".join(c.scopes),
            _json(list(c.redirect_uris)),
            _json(dict(c.claims)),
            int(c.introspect_all),
            c.created_at,
            c.revoked_at,
        )

    def get_client(self, client_id: str) -> ClientRecord | None:
        rows = self._rows(
            f"SELECT {_CLIENT_COLUMNS} FROM apishield_issuer_clients WHERE client_id = ?", client_id
        )
        return _client(rows[0]) if rows else None

    def list_clients(self) -> list[ClientRecord]:
        rows = self._rows(
            f"SELECT {_CLIENT_COLUMNS} FROM apishield_issuer_clients ORDER BY created_at, client_id"
        )
        return [_client(r) for r in rows]

    def set_client_secret(self, client_id: str, secret_hash: str) -> bool:
        return (
            self._count(
                "UPDATE apishield_issuer_clients SET secret_hash = ? WHERE client_id = ? AND client_type = ?",
                secret_hash,
                client_id,
                "confidential",
            )
            == 1
        )

    def revoke_client(self, client_id: str, now: float) -> Revoked | None:
        """Revoke the client and every live token it holds; None if there is no such client."""
        if self.get_client(client_id) is None:
            return None
        self._count(
            "UPDATE apishield_issuer_clients SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
            now,
            client_id,
        )
        self._revoke_refresh_tokens("client_id = ?", client_id, now)
        return self._revoke_access_tokens("client_id = ?", client_id, now)

    # -- users ----------------------------------------------------------------------------------------

    def add_user(self, u: UserRecord) -> None:
        self._insert(
            "users",
            _USER_COLUMNS,
            u.username,
            u.password_hash,
            _json(dict(u.claims)),
            u.created_at,
            u.disabled_at,
        )

    def get_user(self, username: str) -> UserRecord | None:
        rows = self._rows(f"SELECT {_USER_COLUMNS} FROM apishield_issuer_users WHERE username = ?", username)
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[UserRecord]:
        rows = self._rows(f"SELECT {_USER_COLUMNS} FROM apishield_issuer_users ORDER BY created_at, username")
        return [_user(r) for r in rows]

    def disable_user(self, username: str, now: float) -> Revoked | None:
        """Disable the user and revoke every live token issued for them; None if unknown."""
        if self.get_user(username) is None:
            return None
        self._count(
            "UPDATE apishield_issuer_users SET disabled_at = ? WHERE username = ? AND disabled_at IS NULL",
            now,
            username,
        )
        self._revoke_refresh_tokens("username = ?", username, now)
        return self._revoke_access_tokens("username = ?", username, now)

    # -- authorization codes (RFC 6749 §4.1.2) ---------------------------------------------------------

    def save_code(self, c: CodeRecord) -> None:
        self._insert(
            "codes",
            _CODE_COLUMNS,
            c.code_hash,
            c.client_id,
            c.username,
            c.redirect_uri,
            c.scope,
            c.code_challenge,
            c.code_challenge_method,
            c.family_id,
            c.auth_time,
            c.expires_at,
            c.used_at,
        )

    def get_code(self, code_hash: str) -> CodeRecord | None:
        rows = self._rows(
            f"SELECT {_CODE_COLUMNS} FROM apishield_issuer_codes WHERE code_hash = ?", code_hash
        )
        return _code(rows[0]) if rows else None

    def consume_code(self, code_hash: str, now: float) -> bool:
        """Mark the code used; True for exactly one caller, and only before it expires."""
        return (
            self._count(
                "UPDATE apishield_issuer_codes SET used_at = ? "
                "WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?",
                now,
                code_hash,
                now,
            )
            == 1
        )

    # -- refresh tokens (RFC 6749 §6, RFC 9700 §4.14) ----------------------------------------------------

    def save_refresh_token(self, t: RefreshTokenRecord) -> None:
        self._insert(
            "refresh_tokens",
            _RT_COLUMNS,
            t.token_hash,
            t.family_id,
            t.client_id,
            t.username,
            t.scope,
            t.issued_at,
            t.expires_at,
            t.auth_time,
            t.jkt,
            t.used_at,
            t.revoked_at,
        )

    def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        rows = self._rows(
            f"SELECT {_RT_COLUMNS} FROM apishield_issuer_refresh_tokens WHERE token_hash = ?", token_hash
        )
        return _refresh(rows[0]) if rows else None

    def consume_refresh_token(self, token_hash: str, now: float) -> bool:
        """Rotate: mark the token used; True for exactly one caller while it is valid."""
        return (
            self._count(
                "UPDATE apishield_issuer_refresh_tokens SET used_at = ? WHERE token_hash = ? "
                "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
                now,
                token_hash,
                now,
            )
            == 1
        )

    def revoke_family(self, family_id: str, now: float) -> Revoked:
        """Revoke every refresh and access token of one grant (RFC 9700 §4.14.2, RFC 7009 §2.1)."""
        self._revoke_refresh_tokens("family_id = ?", family_id, now)
        return self._revoke_access_tokens("family_id = ?", family_id, now)

    # -- access tokens ----------------------------------------------------------------------------------

    def record_access_token(self, t: AccessTokenRecord) -> None:
        """Record an issued token (group-committed with concurrent issuances; returns once durable)."""
        self._access_tokens.add((t.jti, t.client_id, t.username, t.family_id, t.expires_at, t.revoked_at))

    def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        rows = self._rows(
            "SELECT jti, client_id, username, family_id, expires_at, revoked_at "
            "FROM apishield_issuer_access_tokens WHERE jti = ?",
            jti,
        )
        return AccessTokenRecord(*rows[0]) if rows else None

    def revoke_access_token(self, jti: str, now: float) -> None:
        self._count(
            "UPDATE apishield_issuer_access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL",
            now,
            jti,
        )

    def _revoke_access_tokens(self, where: str, value: str, now: float) -> Revoked:
        """Mark the matching live access tokens revoked; returns all of them (also already revoked ones),
        so that publishing them again after a failed attempt is possible."""
        self._count(
            f"UPDATE apishield_issuer_access_tokens SET revoked_at = ? "
            f"WHERE {where} AND revoked_at IS NULL AND expires_at > ?",
            now,
            value,
            now,
        )
        rows = self._rows(
            f"SELECT jti, expires_at FROM apishield_issuer_access_tokens WHERE {where} AND expires_at > ?",
            value,
            now,
        )
        return [(jti, float(exp)) for jti, exp in rows]

    # -- housekeeping -----------------------------------------------------------------------------------

    def prune(self, now: float, keep: float = 3600.0) -> None:
        """Delete codes and tokens that expired more than ``keep`` seconds ago."""
        before = now - keep
        self._count("DELETE FROM apishield_issuer_codes WHERE expires_at < ?", before)
        self._count("DELETE FROM apishield_issuer_access_tokens WHERE expires_at < ?", before)
        self._count("DELETE FROM apishield_issuer_refresh_tokens WHERE expires_at < ?", before)


def open_issuer_store(url: str, base_dir: Path | None = None) -> IssuerStore:
    """``sqlite:///FILE`` (relative to ``base_dir``) or ``postgresql://...[?schema=NAME]``."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :]).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return IssuerStore(SQLiteExecutor(path))
    if url.startswith(("postgresql://", "postgres://")):
        return IssuerStore(PostgresExecutor(url))
    raise StoreError("the store must be sqlite:///FILE or postgresql://...")
