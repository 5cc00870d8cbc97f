"""The ``audit_events`` table, for SQLite and for PostgreSQL.

One row per event: the indexed columns of :mod:`apishield.audit.columns`,
the hash-chain link (``seq``, ``hash``; both NULL without tamper evidence,
:mod:`apishield.audit.chain`) and ``event``, the exact JSON text the writer
encoded (kept as text, not ``jsonb``, so the chain can be re-derived byte for
byte). ``uid`` is the event's ``metadata.uid``: writing a batch twice (a
journal replay after a failure the sink had in fact survived) stores it once.

Indexes serve the console's questions: recent events (``time_ms``), one
subject, client or address over time, one operation; ``(instance, seq)``
walks a chain. Events are listed newest first with ``(time_ms, uid)`` as the
keyset, so every index leads with the filtered column and ends in time.

PostgreSQL partitions the table by day on ``time_ms`` (one partition per UTC
day, created when a batch first touches the day); retention drops whole
partitions instead of deleting rows. The primary key is ``(uid, time_ms)``
because a unique key of a partitioned table must contain the partition key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from apishield.audit.columns import COLUMNS

__all__ = [
    "ALL_COLUMNS",
    "DAY_MS",
    "SQLITE_DDL",
    "SQLITE_VERSION",
    "partition_day",
    "partition_name",
    "postgres_indexes",
    "postgres_partition",
    "postgres_table",
    "quote_identifier",
    "valid_identifier",
]

TABLE = "audit_events"
ALL_COLUMNS: tuple[str, ...] = (*COLUMNS, "seq", "hash", "event")
DAY_MS = 86_400_000
SQLITE_VERSION = 1  # PRAGMA user_version of a database this code created

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# (name suffix, columns, condition) of the secondary indexes, shared by both databases; the chain
# index is partial, so rows written without tamper evidence do not pay for it
_INDEXES = (
    ("time", "time_ms, uid", ""),
    ("subject", "subject, time_ms", ""),
    ("client", "client_id, time_ms", ""),
    ("ip", "src_ip, time_ms", ""),
    ("operation", "operation, time_ms", ""),
    ("chain", "instance, seq", " WHERE seq IS NOT NULL"),
)

SQLITE_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    uid TEXT NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    class_uid INTEGER,
    instance TEXT,
    subject TEXT,
    client_id TEXT,
    token TEXT,
    api_key_id TEXT,
    src_ip TEXT,
    operation TEXT,
    route TEXT,
    method TEXT,
    action TEXT,
    status INTEGER,
    status_detail TEXT,
    object_ids TEXT,  -- a JSON array of strings, NULL when empty
    latency_ms REAL,
    bytes_out INTEGER,
    severity_id INTEGER,
    seq INTEGER,
    hash TEXT,
    event TEXT NOT NULL
);
""" + "".join(
    f"CREATE INDEX IF NOT EXISTS {TABLE}_{name} ON {TABLE} ({cols}){where};\n"
    for name, cols, where in _INDEXES
)


def valid_identifier(name: str) -> bool:
    """A lower-case SQL identifier that needs no escaping (schema names from ``?schema=``)."""
    return _IDENTIFIER.fullmatch(name) is not None


def quote_identifier(name: str) -> str:
    if not valid_identifier(name):
        raise ValueError(f"{name!r} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63)")
    return f'"{name}"'


def postgres_table(schema: str) -> str:
    """``CREATE TABLE`` of the partitioned parent in ``schema``."""
    return f"""
CREATE TABLE IF NOT EXISTS {quote_identifier(schema)}.{TABLE} (
    uid text NOT NULL,
    time_ms bigint NOT NULL,
    class_uid integer,
    instance text,
    subject text,
    client_id text,
    token text,
    api_key_id text,
    src_ip text,
    operation text,
    route text,
    method text,
    action text,
    status integer,
    status_detail text,
    object_ids text[],
    latency_ms double precision,
    bytes_out bigint,
    severity_id integer,
    seq bigint,
    hash text,
    event text NOT NULL,
    PRIMARY KEY (uid, time_ms)
) PARTITION BY RANGE (time_ms)
"""


def postgres_indexes(schema: str) -> list[str]:
    """Indexes on the parent; PostgreSQL creates them on every partition."""
    q = quote_identifier(schema)
    return [
        f"CREATE INDEX IF NOT EXISTS {TABLE}_{name} ON {q}.{TABLE} ({cols}){where}"
        for name, cols, where in _INDEXES
    ]


def partition_name(day: int) -> str:
    """The partition holding day ``day`` (days since the epoch, UTC): ``audit_events_20250131``."""
    return f"{TABLE}_{datetime.fromtimestamp(day * 86_400, UTC):%Y%m%d}"


def partition_day(name: str) -> int | None:
    """The day of a partition name, or None when the name is not one of ours."""
    match = re.fullmatch(rf"{TABLE}_(\d{{8}})", name)
    if match is None:
        return None
    stamp = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
    return int(stamp.timestamp()) // 86_400


def postgres_partition(schema: str, day: int) -> str:
    q = quote_identifier(schema)
    return (
        f"CREATE TABLE IF NOT EXISTS {q}.{partition_name(day)} PARTITION OF {q}.{TABLE} "
        f"FOR VALUES FROM ({day * DAY_MS}) TO ({(day + 1) * DAY_MS})"
    )
