"""Customer API: the reference upstream service that apishield is demonstrated in front of.

A small customer-data HTTP service written as a plain ASGI application on the
standard library only (SQLite for storage), so it starts fast and has no
dependencies besides an ASGI server to run it.

It is deliberately written like many internal services that were never meant to
face the internet. Do not copy it: every weakness below is intentional, and the
gateway in front of it is its only protection.

* no authentication or authorization of its own: it serves whoever calls it and
  trusts an ``X-Partner-Id`` header blindly;
* responses carry internal columns the OpenAPI document does not declare
  (``riskScore``, ``passwordHash``, ``internalNotes``);
* writes accept any JSON field: known column names are written straight to the
  row (``id``, ``partnerId``, ``createdAt``, ``riskScore``...), unknown ones are
  kept in a JSON ``extra`` column and merged back into responses (mass
  assignment, e.g. ``isAdmin: true``);
* ``GET /v1/customers?sort=`` interpolates ``sort`` into the SQL ``ORDER BY``
  (SQL injection);
* any unhandled exception answers 500 with the Python traceback and the last SQL
  statement in a plain-text body (debug mode left on);
* ``POST /v1/login`` tells "unknown user" (404) from "wrong password" (401);
* undocumented endpoints: ``GET /v1/internal/debug`` and
  ``GET /v1/customers/{id}/export``;
* no input validation, no limits (body size, ``limit``), last-one-wins query
  parameters and JSON keys.

Run it alone::

    python examples/customer_api/app.py --host 127.0.0.1 --port 9000 --db customer-api.db

or from Python: ``create_app(db_path)`` returns the ASGI callable.
"""

import argparse
import hashlib
import json
import logging
import re
import secrets
import sqlite3
import sys
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["SEED_PASSWORD", "VERSION", "CustomerApi", "create_app", "main"]

VERSION = "1.4.2"
SERVICE_NAME = "customer-api"
#: Password of every seeded user (alice, bob, carol, dave, erin, frank).
SEED_PASSWORD = "correct horse battery staple"
#: Namespace of the seeded orders' UUIDs (uuid5), so their ids are stable across databases.
ORDER_NAMESPACE = uuid.UUID("6f1c2a4e-3b5d-4c8e-9a7f-0d2e4b6a8c1e")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Json = Any

logger = logging.getLogger("customer_api")

# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE customers (
    id               INTEGER PRIMARY KEY,
    username         TEXT UNIQUE,
    name             TEXT NOT NULL,
    email            TEXT NOT NULL,
    phone            TEXT,
    date_of_birth    TEXT,
    status           TEXT NOT NULL DEFAULT 'active',
    tier             TEXT NOT NULL DEFAULT 'bronze',
    address          TEXT,
    tags             TEXT NOT NULL DEFAULT '[]',
    marketing_opt_in INTEGER NOT NULL DEFAULT 0,
    partner_id       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    risk_score       REAL NOT NULL DEFAULT 0.5,
    password_hash    TEXT NOT NULL,
    password_salt    TEXT NOT NULL,
    internal_notes   TEXT NOT NULL DEFAULT '',
    extra            TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    type        TEXT NOT NULL,
    currency    TEXT NOT NULL,
    balance     REAL NOT NULL,
    opened_at   TEXT NOT NULL
);
CREATE INDEX accounts_customer ON accounts (customer_id);
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    total       REAL NOT NULL,
    currency    TEXT NOT NULL,
    items       TEXT NOT NULL DEFAULT '[]',
    note        TEXT,
    created_at  TEXT NOT NULL,
    extra       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE sessions (
    token       TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
"""

# JSON field name -> column. Anything in a write body that matches one of these
# is written to the column as is (mass assignment); anything else goes to `extra`.
CUSTOMER_COLUMNS: dict[str, str] = {
    "id": "id",
    "username": "username",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "dateOfBirth": "date_of_birth",
    "status": "status",
    "tier": "tier",
    "address": "address",
    "tags": "tags",
    "marketingOptIn": "marketing_opt_in",
    "partnerId": "partner_id",
    "createdAt": "created_at",
    "riskScore": "risk_score",
    "passwordHash": "password_hash",
    "passwordSalt": "password_salt",
    "internalNotes": "internal_notes",
}
CUSTOMER_JSON_COLUMNS = frozenset({"address", "tags"})
ORDER_COLUMNS: dict[str, str] = {
    "id": "id",
    "customerId": "customer_id",
    "status": "status",
    "total": "total",
    "currency": "currency",
    "items": "items",
    "note": "note",
    "createdAt": "created_at",
}
DEFAULT_PARTNER = "p-acme"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hash_password(password: str, salt: str) -> str:
    """The service's password hash: one round of salted SHA-256, as hex (weak on purpose)."""
    return hashlib.sha256((salt + password).encode("utf-8")).hexdigest()


def seed_order_id(number: int) -> str:
    """Stable UUID of the seeded order number ``number`` (1-based)."""
    return str(uuid.uuid5(ORDER_NAMESPACE, f"order-{number}"))


def _item(sku: str, name: str, quantity: int, unit_price: float, bundle: list[Json] | None = None) -> Json:
    item: dict[str, Json] = {"sku": sku, "name": name, "quantity": quantity, "unitPrice": unit_price}
    if bundle is not None:
        item["bundle"] = bundle
    return item


SEED_CUSTOMERS: list[dict[str, Json]] = [
    {
        "id": 1,
        "username": "alice",
        "name": "Alice Martin",
        "email": "alice.martin@example.com",
        "phone": "+33612345678",
        "dateOfBirth": "1988-04-12",
        "status": "active",
        "tier": "gold",
        "address": {"line1": "12 Rue de Rivoli", "city": "Paris", "postalCode": "75001", "country": "FR"},
        # The same as sample_customer.json, so that PUTting it to /v1/customers/1 changes nothing.
        "tags": [
            "vip",
            "newsletter",
            "early-adopter",
            "paperless",
            "mobile-app",
            "premium-card",
            "branch-paris-01",
            "segment-affluent",
        ],
        "marketingOptIn": True,
        "partnerId": "p-acme",
        "createdAt": "2023-01-15T09:30:00Z",
        "riskScore": 0.12,
        "internalNotes": "KYC verified in branch. Prefers phone contact; spouse co-signs on acc_10002.",
    },
    {
        "id": 2,
        "username": "bob",
        "name": "Bob Schneider",
        "email": "bob.schneider@example.com",
        "phone": "+4915123456789",
        "dateOfBirth": "1979-11-02",
        "status": "active",
        "tier": "silver",
        "address": {
            "line1": "Friedrichstrasse 44",
            "city": "Berlin",
            "postalCode": "10117",
            "country": "DE",
        },
        "tags": ["b2b"],
        "marketingOptIn": False,
        "partnerId": "p-acme",
        "createdAt": "2023-02-03T14:05:00Z",
        "riskScore": 0.37,
        "internalNotes": "Disputed a chargeback in 2023. Do not offer a credit line increase.",
    },
    {
        "id": 3,
        "username": "carol",
        "name": "Carol Nguyen",
        "email": "carol.nguyen@example.org",
        "phone": "+33478123456",
        "dateOfBirth": "1992-07-23",
        "status": "suspended",
        "tier": "bronze",
        "address": {"line1": "8 Avenue de l'Opera", "city": "Paris", "postalCode": "75002", "country": "FR"},
        "tags": ["newsletter"],
        "marketingOptIn": True,
        "partnerId": "p-globex",
        "createdAt": "2023-03-21T08:12:00Z",
        "riskScore": 0.81,
        "internalNotes": "Suspended pending fraud review (case FR-2291). Do not disclose to customer.",
    },
    {
        "id": 4,
        "username": "dave",
        "name": "Dave Okafor",
        "email": "dave.okafor@example.net",
        "phone": "+447700900123",
        "dateOfBirth": "1985-01-30",
        "status": "active",
        "tier": "silver",
        "address": {"line1": "221 Baker Street", "city": "London", "postalCode": "NW1 6XE", "country": "GB"},
        "tags": ["newsletter", "b2b"],
        "marketingOptIn": False,
        "partnerId": "p-globex",
        "createdAt": "2023-05-09T17:45:00Z",
        "riskScore": 0.05,
        "internalNotes": "",
    },
    {
        "id": 5,
        "username": "erin",
        "name": "Erin Kowalski",
        "email": "erin.kowalski@example.com",
        "phone": "+48601234567",
        "dateOfBirth": "1990-09-14",
        "status": "closed",
        "tier": "bronze",
        "address": {"line1": "ul. Nowy Swiat 15", "city": "Warsaw", "postalCode": "00-029", "country": "PL"},
        "tags": [],
        "marketingOptIn": False,
        "partnerId": "p-acme",
        "createdAt": "2023-06-30T11:00:00Z",
        "riskScore": 0.64,
        "internalNotes": "Closed at customer request; retain records until 2031 (AML).",
    },
    {
        "id": 6,
        "username": "frank",
        "name": "Frank Rossi",
        "email": "frank.rossi@example.org",
        "phone": "+393471234567",
        "dateOfBirth": "1975-03-05",
        "status": "active",
        "tier": "gold",
        "address": {"line1": "Via Torino 61", "city": "Milan", "postalCode": "20123", "country": "IT"},
        "tags": ["vip"],
        "marketingOptIn": True,
        "partnerId": "p-globex",
        "createdAt": "2023-08-18T10:20:00Z",
        "riskScore": 0.22,
        "internalNotes": "Board member's relative: route complaints to the executive team.",
    },
]

# (id, customer id, type, currency, balance, opened at)
SEED_ACCOUNTS: list[tuple[str, int, str, str, float, str]] = [
    ("acc_10001", 1, "checking", "EUR", 2450.75, "2023-01-15T09:45:00Z"),
    ("acc_10002", 1, "savings", "EUR", 18200.00, "2023-01-20T10:00:00Z"),
    ("acc_10003", 2, "checking", "EUR", 310.20, "2023-02-03T14:30:00Z"),
    ("acc_10004", 3, "checking", "EUR", 95.00, "2023-03-21T08:30:00Z"),
    ("acc_10005", 3, "credit", "EUR", -250.00, "2023-04-02T12:00:00Z"),
    ("acc_10006", 4, "checking", "GBP", 5120.40, "2023-05-09T18:00:00Z"),
    ("acc_10007", 5, "savings", "PLN", 0.00, "2023-06-30T11:15:00Z"),
    ("acc_10008", 6, "checking", "EUR", 74210.15, "2023-08-18T10:30:00Z"),
    ("acc_10009", 6, "savings", "EUR", 250000.00, "2023-08-25T09:00:00Z"),
]

# (customer id, status, currency, items, note, created at); ids are seed_order_id(1..n) in this order.
SEED_ORDERS: list[tuple[int, str, str, list[Json], str | None, str]] = [
    (
        1,
        "shipped",
        "EUR",
        [
            _item("LAPTOP-14", "Laptop 14-inch", 1, 1299.00),
            _item(
                "WORKSTATION-KIT",
                "Home office kit",
                1,
                349.00,
                [
                    _item("DOCK-USB-C", "USB-C dock", 1, 0.00),
                    _item(
                        "DESK-SET",
                        "Desk set",
                        1,
                        0.00,
                        [_item("MOUSE-WL", "Wireless mouse", 1, 0.00), _item("PAD-XL", "Mouse pad", 1, 0.00)],
                    ),
                ],
            ),
        ],
        "Leave at the front desk.",
        "2024-02-10T16:20:00Z",
    ),
    (1, "paid", "EUR", [_item("USB-C-CABLE", "USB-C cable 2 m", 3, 12.50)], None, "2024-05-02T08:05:00Z"),
    (2, "pending", "EUR", [_item("PRINTER-LJ", "Laser printer", 1, 219.99)], None, "2024-03-14T12:00:00Z"),
    (3, "cancelled", "EUR", [_item("PHONE-X", "Smartphone", 1, 899.00)], None, "2024-01-08T19:30:00Z"),
    (
        3,
        "paid",
        "EUR",
        [_item("CASE-X", "Phone case", 2, 19.90)],
        "Gift wrap, please.",
        "2024-01-09T09:10:00Z",
    ),
    (
        4,
        "shipped",
        "GBP",
        [_item("HEADSET-BT", "Bluetooth headset", 1, 149.00)],
        None,
        "2024-04-22T15:45:00Z",
    ),
    (5, "cancelled", "PLN", [_item("KETTLE-2L", "Electric kettle", 1, 129.00)], None, "2023-07-01T07:00:00Z"),
    (6, "paid", "EUR", [_item("MONITOR-27", "27-inch monitor", 2, 329.00)], None, "2024-06-11T13:25:00Z"),
    (6, "pending", "EUR", [_item("CHAIR-ERGO", "Ergonomic chair", 1, 499.00)], None, "2024-06-12T10:00:00Z"),
]


def _order_total(items: Json) -> float:
    # Naive: trusts whatever types the items carry (a string quantity raises -> 500).
    total: float = round(sum(item.get("quantity", 1) * item.get("unitPrice", 0) for item in items), 2)
    return total


def _seed_salt(username: str) -> str:
    return hashlib.sha256(f"seed-salt:{username}".encode()).hexdigest()[:16]


def _seed(conn: sqlite3.Connection) -> None:
    for customer in SEED_CUSTOMERS:
        salt = _seed_salt(customer["username"])
        conn.execute(
            "INSERT INTO customers (id, username, name, email, phone, date_of_birth, status, tier, address,"
            " tags, marketing_opt_in, partner_id, created_at, risk_score, password_hash, password_salt,"
            " internal_notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                customer["id"],
                customer["username"],
                customer["name"],
                customer["email"],
                customer["phone"],
                customer["dateOfBirth"],
                customer["status"],
                customer["tier"],
                json.dumps(customer["address"]),
                json.dumps(customer["tags"]),
                customer["marketingOptIn"],
                customer["partnerId"],
                customer["createdAt"],
                customer["riskScore"],
                hash_password(SEED_PASSWORD, salt),
                salt,
                customer["internalNotes"],
            ),
        )
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)", SEED_ACCOUNTS)
    for number, (customer_id, status, currency, items, note, created_at) in enumerate(SEED_ORDERS, start=1):
        conn.execute(
            "INSERT INTO orders (id, customer_id, status, total, currency, items, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seed_order_id(number),
                customer_id,
                status,
                _order_total(items),
                currency,
                json.dumps(items),
                note,
                created_at,
            ),
        )


def init_db(db_path: str) -> None:
    """Create the schema and the seed data if the database at ``db_path`` has no tables yet."""
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'customers'"
            ).fetchone()
            if exists is None:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _seed(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


class _Db:
    """The request's view of the connection; remembers the statements for the debug 500 page."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, Sequence[object]]] = []

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        self.statements.append((sql, params))
        return self.conn.execute(sql, params)

    def all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = self.execute(sql, params).fetchall()
        return rows

    def one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.execute(sql, params).fetchone()
        return row


# ---------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------


class Request:
    def __init__(self, scope: Scope, body: bytes, db: _Db) -> None:
        self.method: str = scope["method"]
        # Routes on the percent-decoded path (so %2F is a separator) and ignores a trailing slash.
        self.path: str = scope["path"]
        raw_query: bytes = scope.get("query_string", b"")
        pairs = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)
        self.query_all: dict[str, list[str]] = {}
        for key, value in pairs:
            self.query_all.setdefault(key, []).append(value)
        # The hand-rolled way: a repeated parameter's last value wins.
        self.query: dict[str, str] = dict(pairs)
        self.headers: dict[str, str] = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        self.body = body
        self.db = db

    def json(self) -> Json:
        # No Content-Type check, no size limit; duplicate keys: last one wins.
        return json.loads(self.body)


class Response:
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type if body else None
        self.headers = list(headers)


def json_response(status: int, data: Json, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode("utf-8"), headers=headers)


def error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


Handler = Callable[[Request, dict[str, str]], Response]


def _json_column(value: object) -> Json:
    return json.loads(value) if isinstance(value, str) else value


def _drop_none(data: dict[str, Json]) -> dict[str, Json]:
    return {key: value for key, value in data.items() if value is not None}


def customer_json(row: sqlite3.Row, *, full: bool = False) -> dict[str, Json]:
    """A customer as the API returns it: documented fields, internal columns and stored extras."""
    extra = _json_column(row["extra"])
    out: dict[str, Json] = dict(extra) if isinstance(extra, dict) else {}
    opt_in = row["marketing_opt_in"]
    out.update(
        _drop_none(
            {
                "id": row["id"],
                "name": row["name"],
                "email": row["email"],
                "phone": row["phone"],
                "dateOfBirth": row["date_of_birth"],
                "status": row["status"],
                "tier": row["tier"],
                "address": _json_column(row["address"]),
                "tags": _json_column(row["tags"]),
                "marketingOptIn": bool(opt_in) if isinstance(opt_in, int) else opt_in,
                "partnerId": row["partner_id"],
                "createdAt": row["created_at"],
                # Internal columns, returned although the OpenAPI document does not declare them.
                "riskScore": row["risk_score"],
                "passwordHash": row["password_hash"],
                "internalNotes": row["internal_notes"],
            }
        )
    )
    if full:
        out["username"] = row["username"]
        out["passwordSalt"] = row["password_salt"]
    return out


def account_json(row: sqlite3.Row) -> dict[str, Json]:
    return {
        "id": row["id"],
        "customerId": row["customer_id"],
        "type": row["type"],
        "currency": row["currency"],
        "balance": row["balance"],
        "openedAt": row["opened_at"],
    }


def order_json(row: sqlite3.Row) -> dict[str, Json]:
    extra = _json_column(row["extra"])
    out: dict[str, Json] = dict(extra) if isinstance(extra, dict) else {}
    out.update(
        _drop_none(
            {
                "id": row["id"],
                "customerId": row["customer_id"],
                "status": row["status"],
                "total": row["total"],
                "currency": row["currency"],
                "items": _json_column(row["items"]),
                "note": row["note"],
                "createdAt": row["created_at"],
            }
        )
    )
    return out


def _split_fields(data: dict[str, Json], columns: dict[str, str]) -> tuple[dict[str, Json], dict[str, Json]]:
    known: dict[str, Json] = {}
    extra: dict[str, Json] = {}
    for key, value in data.items():
        if key in columns:
            known[columns[key]] = value
        else:
            extra[key] = value
    return known, extra


def _customer_values(data: dict[str, Json]) -> tuple[dict[str, Json], dict[str, Json]]:
    """Split a write body into column values and extras, hashing a ``password`` field."""
    body = dict(data)
    password = body.pop("password", None)
    known, extra = _split_fields(body, CUSTOMER_COLUMNS)
    for column in CUSTOMER_JSON_COLUMNS & known.keys():
        known[column] = json.dumps(known[column])
    if password is not None:
        salt = secrets.token_hex(8)
        known["password_salt"] = salt
        known["password_hash"] = hash_password(str(password), salt)
    return known, extra


# ---------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------

DEBUG_CONFIG: dict[str, str] = {
    "ENV": "production",
    "DEBUG": "true",
    "DATABASE_URL": "postgresql://customer_api:insecure-demo-password@db-primary.internal.example:5432/customers",
    "SESSION_SECRET": "demo-session-secret-do-not-use-0b5e7c1d",
    "PAYMENTS_API_TOKEN": "demo-payments-token-3f9a2c7e41d8",
    "ADMIN_EMAIL": "ops@customer-api.example",
}


class CustomerApi:
    """The ASGI application. Build it with :func:`create_app`.

    It keeps one SQLite connection, opened on first use and used from the event loop
    (guarded by a lock). It is closed on ASGI lifespan shutdown; when driving the app
    in-process without lifespan events, call :meth:`close` when done.
    """

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._exact: dict[str, dict[str, Handler]] = {
            "/v1/health": {"GET": self.health},
            "/v1/login": {"POST": self.login},
            "/v1/customers": {"GET": self.list_customers, "POST": self.create_customer},
            "/v1/customers/search": {"GET": self.search_customers},
            "/v1/internal/debug": {"GET": self.debug},
        }
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (
                re.compile(r"/v1/customers/(?P<customer_id>[^/]+)"),
                {"GET": self.get_customer, "PUT": self.update_customer, "DELETE": self.delete_customer},
            ),
            (re.compile(r"/v1/customers/(?P<customer_id>[^/]+)/accounts"), {"GET": self.list_accounts}),
            (
                re.compile(r"/v1/customers/(?P<customer_id>[^/]+)/orders"),
                {"GET": self.list_orders, "POST": self.create_order},
            ),
            (re.compile(r"/v1/customers/(?P<customer_id>[^/]+)/export"), {"GET": self.export_customer}),
            (re.compile(r"/v1/orders/(?P<order_id>[^/]+)"), {"GET": self.get_order}),
        ]

    # -- connection -----------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.db_path, timeout=10, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the database connection (it is reopened if the app serves again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- ASGI -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    with self._lock:
                        self._connection()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        with self._lock:
            db = _Db(self._connection())
            request = Request(scope, b"".join(chunks), db)
            try:
                response = self._dispatch(request)
            except Exception:
                response = self._debug_error_page(db)
        headers = [(b"x-powered-by", f"{SERVICE_NAME}/{VERSION} (python)".encode())]
        request_id = request.headers.get("x-request-id")
        if request_id is not None:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        if response.content_type is not None:
            headers.append((b"content-type", response.content_type.encode("latin-1")))
        if response.status != 204:
            headers.append((b"content-length", str(len(response.body)).encode("latin-1")))
        headers.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def _dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        methods = self._exact.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidate in self._patterns:
                match = pattern.fullmatch(path)
                if match is not None:
                    methods, params = candidate, match.groupdict()
                    break
        if methods is None:
            return error_response(404, "not found")
        handler = methods.get(request.method)
        if handler is None:
            return Response(
                405,
                json.dumps({"error": "method not allowed"}).encode(),
                headers=[("allow", ", ".join(methods))],
            )
        return handler(request, params)

    def _debug_error_page(self, db: _Db) -> Response:
        """Debug mode left on: the traceback and the SQL go back to the caller."""
        if db.conn.in_transaction:
            db.conn.rollback()
        trace = traceback.format_exc()
        logger.error("unhandled error\n%s", trace)
        lines = [f"500 Internal Server Error ({SERVICE_NAME} {VERSION}, debug mode)", "", trace]
        if db.statements:
            sql, params = db.statements[-1]
            lines += ["Last SQL statement:", sql, f"Parameters: {list(params)!r}", ""]
        return Response(500, "\n".join(lines).encode("utf-8"), "text/plain; charset=utf-8")

    # -- helpers --------------------------------------------------------------------

    def _customer_row(self, db: _Db, customer_id: int) -> sqlite3.Row | None:
        return db.one("SELECT * FROM customers WHERE id = ?", (customer_id,))

    # -- handlers -------------------------------------------------------------------

    def health(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"status": "ok"})

    def login(self, request: Request, params: dict[str, str]) -> Response:
        data = request.json()
        username, password = data["username"], data["password"]
        row = request.db.one(
            "SELECT id, password_hash, password_salt FROM customers WHERE username = ? OR email = ?",
            (username, username),
        )
        if row is None:
            return error_response(404, "unknown user")
        if hash_password(str(password), row["password_salt"]) != row["password_hash"]:
            return error_response(401, "wrong password")
        token = secrets.token_hex(32)
        with request.db.conn:
            request.db.execute(
                "INSERT INTO sessions (token, customer_id, created_at) VALUES (?, ?, ?)",
                (token, row["id"], _now()),
            )
        return json_response(200, {"token": token, "customerId": row["id"]})

    def list_customers(self, request: Request, params: dict[str, str]) -> Response:
        query = request.query
        limit = int(query.get("limit", "20"))  # no upper bound; SQLite reads a negative limit as "all"
        offset = int(query.get("offset", "0"))
        where: list[str] = []
        args: list[object] = []
        if "status" in query:
            where.append("status = ?")
            args.append(query["status"])
        for tag in request.query_all.get("tag", []):
            where.append("EXISTS (SELECT 1 FROM json_each(customers.tags) WHERE json_each.value = ?)")
            args.append(tag)
        for key, value in query.items():
            match = re.fullmatch(r"filter\[([^\]]+)\]", key)
            if match is not None:
                where.append("json_extract(address, ?) = ?")
                args += [f"$.{match.group(1)}", value]
        partner = request.headers.get("x-partner-id")
        if partner is not None:  # trusted blindly: whoever sends it picks the partner
            where.append("partner_id = ?")
            args.append(partner)
        sort = query.get("sort", "id")
        order_by = {"createdAt": "created_at"}.get(sort, sort)
        where_sql = f" WHERE {' AND '.join(where)}" if where else ""
        # SQL injection: `sort` goes into the statement as is.
        sql = f"SELECT * FROM customers{where_sql} ORDER BY {order_by} LIMIT ? OFFSET ?"
        rows = request.db.all(sql, [*args, limit, offset])
        return json_response(200, [customer_json(row) for row in rows])

    def search_customers(self, request: Request, params: dict[str, str]) -> Response:
        pattern = f"%{request.query['q']}%"
        sql = "SELECT * FROM customers WHERE (name LIKE ? OR email LIKE ?)"
        args: list[object] = [pattern, pattern]
        partner = request.headers.get("x-partner-id")
        if partner is not None:
            sql += " AND partner_id = ?"
            args.append(partner)
        rows = request.db.all(sql + " ORDER BY id LIMIT 50", args)
        return json_response(200, [customer_json(row) for row in rows])

    def create_customer(self, request: Request, params: dict[str, str]) -> Response:
        data: dict[str, Json] = dict(request.json())
        known, extra = _customer_values(data)
        if "password_hash" not in known:  # no password given: nobody can log in until one is set
            salt = secrets.token_hex(8)
            known.setdefault("password_salt", salt)
            known["password_hash"] = hash_password(secrets.token_hex(16), salt)
        known.setdefault("password_salt", secrets.token_hex(8))
        known.setdefault("partner_id", request.headers.get("x-partner-id", DEFAULT_PARTNER))
        known.setdefault("created_at", _now())
        known["extra"] = json.dumps(extra)
        columns = list(known)
        sql = f"INSERT INTO customers ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        with request.db.conn:
            cursor = request.db.execute(sql, [known[column] for column in columns])
        # lastrowid is the row's id, client-chosen when the body carried one.
        row = self._customer_row(request.db, cursor.lastrowid or 0)
        assert row is not None
        return json_response(201, customer_json(row), headers=[("location", f"/v1/customers/{row['id']}")])

    def get_customer(self, request: Request, params: dict[str, str]) -> Response:
        row = self._customer_row(request.db, int(params["customer_id"]))
        if row is None:
            return error_response(404, "customer not found")
        return json_response(200, customer_json(row))

    def update_customer(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        row = self._customer_row(request.db, customer_id)
        if row is None:
            return error_response(404, "customer not found")
        data: dict[str, Json] = dict(request.json())
        known, extra = _customer_values(data)
        stored_extra = _json_column(row["extra"])
        known["extra"] = json.dumps({**(stored_extra if isinstance(stored_extra, dict) else {}), **extra})
        assignments = ", ".join(f"{column} = ?" for column in known)
        with request.db.conn:
            # Mass assignment: a body `id` renumbers the row (its accounts and orders stay behind).
            request.db.execute(
                f"UPDATE customers SET {assignments} WHERE id = ?", [*known.values(), customer_id]
            )
        updated = self._customer_row(request.db, known.get("id", customer_id))
        if updated is None:
            return error_response(404, "customer not found")
        return json_response(200, customer_json(updated))

    def delete_customer(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        if self._customer_row(request.db, customer_id) is None:
            return error_response(404, "customer not found")
        with request.db.conn:
            for table, column in (
                ("customers", "id"),
                ("accounts", "customer_id"),
                ("orders", "customer_id"),
                ("sessions", "customer_id"),
            ):
                request.db.execute(f"DELETE FROM {table} WHERE {column} = ?", (customer_id,))
        return Response(204)

    def list_accounts(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        if self._customer_row(request.db, customer_id) is None:
            return error_response(404, "customer not found")
        rows = request.db.all("SELECT * FROM accounts WHERE customer_id = ? ORDER BY id", (customer_id,))
        return json_response(200, [account_json(row) for row in rows])

    def list_orders(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        if self._customer_row(request.db, customer_id) is None:
            return error_response(404, "customer not found")
        rows = request.db.all(
            "SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at, id", (customer_id,)
        )
        return json_response(200, [order_json(row) for row in rows])

    def create_order(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        if self._customer_row(request.db, customer_id) is None:
            return error_response(404, "customer not found")
        data: dict[str, Json] = dict(request.json())
        items = data.get("items", [])
        # Mass assignment: a body `customerId`, `status`, `total` or `id` wins over the server's values.
        values: dict[str, Json] = {
            "id": str(uuid.uuid4()),
            "customer_id": customer_id,
            "status": "pending",
            "total": _order_total(items),
            "currency": "EUR",
            "created_at": _now(),
        }
        known, extra = _split_fields(data, ORDER_COLUMNS)
        values.update(known)
        values["items"] = json.dumps(values.get("items", []))
        values["extra"] = json.dumps(extra)
        columns = list(values)
        sql = f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        with request.db.conn:
            request.db.execute(sql, [values[column] for column in columns])
        row = request.db.one("SELECT * FROM orders WHERE id = ?", (values["id"],))
        assert row is not None
        return json_response(201, order_json(row), headers=[("location", f"/v1/orders/{row['id']}")])

    def get_order(self, request: Request, params: dict[str, str]) -> Response:
        row = request.db.one("SELECT * FROM orders WHERE id = ?", (params["order_id"],))
        if row is None:
            return error_response(404, "order not found")
        return json_response(200, order_json(row))

    # -- undocumented endpoints -----------------------------------------------------------

    def debug(self, request: Request, params: dict[str, str]) -> Response:
        counts: dict[str, int] = {}
        for table in ("customers", "accounts", "orders", "sessions"):
            row = request.db.one(f"SELECT count(*) FROM {table}")
            counts[table] = row[0] if row is not None else 0
        return json_response(
            200,
            {
                "service": SERVICE_NAME,
                "version": VERSION,
                "python": sys.version.split()[0],
                "sqlite": sqlite3.sqlite_version,
                "config": {**DEBUG_CONFIG, "SQLITE_PATH": self.db_path},
                "counts": counts,
            },
        )

    def export_customer(self, request: Request, params: dict[str, str]) -> Response:
        customer_id = int(params["customer_id"])
        row = self._customer_row(request.db, customer_id)
        if row is None:
            return error_response(404, "customer not found")
        db = request.db
        accounts = db.all("SELECT * FROM accounts WHERE customer_id = ? ORDER BY id", (customer_id,))
        orders = db.all("SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at, id", (customer_id,))
        sessions = db.all(
            "SELECT token, created_at FROM sessions WHERE customer_id = ? ORDER BY created_at", (customer_id,)
        )
        return json_response(
            200,
            {
                "customer": customer_json(row, full=True),
                "accounts": [account_json(account) for account in accounts],
                "orders": [order_json(order) for order in orders],
                "sessions": [{"token": s["token"], "createdAt": s["created_at"]} for s in sessions],
                "exportedAt": _now(),
            },
        )


def create_app(db_path: str) -> CustomerApi:
    """Build the Customer API ASGI application on the SQLite database file ``db_path``.

    The schema and the seed data are created if the database is new; an existing
    database is used as it is.
    """
    if db_path in ("", ":memory:"):
        raise ValueError("customer_api needs a database file path (an in-memory database is not shared)")
    init_db(db_path)
    return CustomerApi(db_path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Customer API (the upstream apishield protects).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9000, help="port to bind (default: %(default)s)")
    parser.add_argument(
        "--db", default="customer-api.db", help="SQLite database file, created if new (default: %(default)s)"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: %(default)s)")
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(create_app(args.db), host=args.host, port=args.port, log_level=args.log_level, lifespan="on")


if __name__ == "__main__":
    main()
