"""The customer API of ``examples/customer_api``, written with FastAPI and protected in process by Shield.

The gateway demo puts apishield in front of an unprotected service, over HTTP.
Here the same API is a FastAPI application (pydantic models, SQLite) and the
same policy (``apishield.yaml`` beside this file, authorization rules included)
is enforced by :class:`apishield.Shield`, inside the application's process,
against the application's own OpenAPI document (``app.openapi()``):

* authentication (RFC 9068 access tokens from the demo issuer) and the scopes
  each operation documents with ``Security(OAUTH2, scopes=[...])``;
* request validation against the generated schemas, response stripping;
* object-level rules (a customer reads their own record, a partner its own
  customers), list filtering, property permissions (personal data, ``tier``);
* write and sub-resource pre-checks answered by :func:`customer_owner`, a
  query on the application's own database, instead of an HTTP read.

The endpoints themselves contain no authorization code at all: every check
above happens before they run, and what they return passes the response
rules before it leaves. ``who.subject`` and friends are available when an
endpoint needs the caller (``CurrentPrincipal``).

Run it (the demo issuer must be running for tokens: ``apishield demo`` starts one)::

    uvicorn --factory "app:create_app" --app-dir examples/fastapi_app --port 8080

``create_app(db_path, policy)`` builds the application; the database is created
and seeded on first use.
"""

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from apishield import Shield
from apishield.auth.principal import Principal
from apishield.middleware import ResourceRequest
from apishield.middleware.fastapi import PUBLIC, oauth2_scheme

HERE = Path(__file__).resolve().parent
ISSUER = "http://127.0.0.1:8081"
ORDER_NAMESPACE = uuid.UUID("6f1c2a4e-3b5d-4c8e-9a7f-0d2e4b6a8c1e")
SEED_PASSWORD = "correct horse battery staple"

# -- the contract, as pydantic models ---------------------------------------------------------------

READ_ONLY: dict[str, Any] = {"readOnly": True}
Tag = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(Model):
    error: str = Field(max_length=200)


class Health(Model):
    status: Literal["ok"]


class LoginRequest(Model):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128, json_schema_extra={"writeOnly": True})


class LoginResponse(Model):
    token: str = Field(pattern=r"^[0-9a-f]{64}$")
    customerId: int = Field(ge=1)


class Address(Model):
    line1: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=64)
    postalCode: str | None = Field(default=None, min_length=1, max_length=16)
    country: str = Field(pattern=r"^[A-Z]{2}$")


class Customer(Model):
    """One schema for requests and responses, as in the contract: read-only and write-only members."""

    id: int | None = Field(default=None, ge=1, json_schema_extra=READ_ONLY)
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(max_length=254, json_schema_extra={"format": "email"})
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")
    dateOfBirth: date | None = None
    status: Literal["active", "suspended", "closed"]
    tier: Literal["bronze", "silver", "gold"] | None = None
    address: Address | None = None
    tags: list[Tag] | None = Field(default=None, max_length=10, json_schema_extra={"uniqueItems": True})
    marketingOptIn: bool | None = None
    partnerId: str | None = Field(default=None, json_schema_extra=READ_ONLY)
    createdAt: datetime | None = Field(default=None, json_schema_extra=READ_ONLY)
    password: str | None = Field(
        default=None, min_length=12, max_length=128, json_schema_extra={"writeOnly": True}
    )


class Account(Model):
    id: str = Field(pattern=r"^acc_[0-9]+$")
    customerId: int = Field(ge=1)
    type: Literal["checking", "savings", "credit"]
    currency: Currency
    balance: float
    openedAt: datetime | None = None


class OrderItem(Model):
    sku: str = Field(pattern=r"^[A-Z0-9-]{3,32}$")
    name: str | None = Field(default=None, max_length=200)
    quantity: int = Field(ge=1, le=1000)
    unitPrice: float = Field(ge=0)
    bundle: list["OrderItem"] | None = Field(default=None, max_length=20)


class OrderInput(Model):
    currency: Currency
    items: list[OrderItem] = Field(min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=500)


class Order(Model):
    id: str
    customerId: int = Field(ge=1)
    status: Literal["pending", "paid", "shipped", "cancelled"]
    total: float
    currency: Currency
    items: list[OrderItem]
    note: str | None = Field(default=None, max_length=500)
    createdAt: datetime


# -- storage ---------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, username TEXT UNIQUE, name TEXT NOT NULL, email TEXT NOT NULL,
    phone TEXT, date_of_birth TEXT, status TEXT NOT NULL, tier TEXT NOT NULL DEFAULT 'bronze',
    address TEXT, tags TEXT NOT NULL DEFAULT '[]', marketing_opt_in INTEGER NOT NULL DEFAULT 0,
    partner_id TEXT NOT NULL, created_at TEXT NOT NULL,
    password_hash TEXT NOT NULL, password_salt TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, customer_id INTEGER NOT NULL, type TEXT NOT NULL, currency TEXT NOT NULL,
    balance REAL NOT NULL, opened_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL, total REAL NOT NULL,
    currency TEXT NOT NULL, items TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, customer_id INTEGER NOT NULL);
"""

# (id, username, name, email, phone, birth, status, tier, city, country, tags, partner, created)
SEED_CUSTOMERS = [
    (
        1,
        "alice",
        "Alice Martin",
        "alice.martin@example.com",
        "+33612345678",
        "1988-04-12",
        "active",
        "gold",
        "Paris",
        "FR",
        ["vip", "newsletter"],
        "p-acme",
        "2023-01-15T09:30:00Z",
    ),
    (
        2,
        "bob",
        "Bob Schneider",
        "bob.schneider@example.com",
        "+4915123456789",
        "1979-11-02",
        "active",
        "silver",
        "Berlin",
        "DE",
        ["b2b"],
        "p-acme",
        "2023-02-03T14:05:00Z",
    ),
    (
        3,
        "carol",
        "Carol Nguyen",
        "carol.nguyen@example.org",
        "+33478123456",
        "1992-07-23",
        "suspended",
        "bronze",
        "Paris",
        "FR",
        ["newsletter"],
        "p-globex",
        "2023-03-21T08:12:00Z",
    ),
    (
        4,
        "dave",
        "Dave Okafor",
        "dave.okafor@example.net",
        "+447700900123",
        "1985-01-30",
        "active",
        "silver",
        "London",
        "GB",
        ["newsletter", "b2b"],
        "p-globex",
        "2023-05-09T17:45:00Z",
    ),
    (
        5,
        "erin",
        "Erin Kowalski",
        "erin.kowalski@example.com",
        "+48601234567",
        "1990-09-14",
        "closed",
        "bronze",
        "Warsaw",
        "PL",
        [],
        "p-acme",
        "2023-06-30T11:00:00Z",
    ),
    (
        6,
        "frank",
        "Frank Rossi",
        "frank.rossi@example.org",
        "+393471234567",
        "1975-03-05",
        "active",
        "gold",
        "Milan",
        "IT",
        ["vip"],
        "p-globex",
        "2023-08-18T10:20:00Z",
    ),
]
SEED_ACCOUNTS = [
    ("acc_10001", 1, "checking", "EUR", 2450.75),
    ("acc_10002", 1, "savings", "EUR", 18200.00),
    ("acc_10003", 2, "checking", "EUR", 310.20),
    ("acc_10004", 3, "checking", "EUR", 95.00),
    ("acc_10005", 3, "credit", "EUR", -250.00),
    ("acc_10006", 4, "checking", "GBP", 5120.40),
    ("acc_10007", 5, "savings", "PLN", 0.00),
    ("acc_10008", 6, "checking", "EUR", 74210.15),
    ("acc_10009", 6, "savings", "EUR", 250000.00),
]
# (customer, status, sku, name, quantity, unit price, created): order n has id seed_order_id(n)
SEED_ORDERS = [
    (1, "shipped", "LAPTOP-14", "Laptop 14-inch", 1, 1299.00, "2024-02-10T16:20:00Z"),
    (1, "paid", "USB-C-CABLE", "USB-C cable 2 m", 3, 12.50, "2024-05-02T08:05:00Z"),
    (2, "pending", "PRINTER-LJ", "Laser printer", 1, 219.99, "2024-03-14T12:00:00Z"),
    (3, "cancelled", "PHONE-X", "Smartphone", 1, 899.00, "2024-01-08T19:30:00Z"),
    (3, "paid", "CASE-X", "Phone case", 2, 19.90, "2024-01-09T09:10:00Z"),
    (4, "shipped", "HEADSET-BT", "Bluetooth headset", 1, 149.00, "2024-04-22T15:45:00Z"),
    (5, "cancelled", "KETTLE-2L", "Electric kettle", 1, 129.00, "2023-07-01T07:00:00Z"),
    (6, "paid", "MONITOR-27", "27-inch monitor", 2, 329.00, "2024-06-11T13:25:00Z"),
    (6, "pending", "CHAIR-ERGO", "Ergonomic chair", 1, 499.00, "2024-06-12T10:00:00Z"),
]


def seed_order_id(number: int) -> str:
    return str(uuid.uuid5(ORDER_NAMESPACE, f"order-{number}"))


def hash_password(password: str, salt: str) -> str:
    return hashlib.scrypt(password.encode(), salt=salt.encode(), n=2**14, r=8, p=1).hex()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """One SQLite connection shared by the worker threads, one statement at a time."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        with self.lock:
            self.conn.executescript(SCHEMA)
            if self.conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 0:
                self._seed()

    def _seed(self) -> None:
        salt = "seed-salt"
        digest = hash_password(SEED_PASSWORD, salt)
        self.conn.execute("BEGIN")
        for c in SEED_CUSTOMERS:
            address = {"line1": "1 Main Street", "city": c[8], "country": c[9]}
            self.conn.execute(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (*c[:8], json.dumps(address), json.dumps(c[10]), c[11], c[12], digest, salt),
            )
        self.conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, '2023-01-15T09:45:00Z')", SEED_ACCOUNTS
        )
        for n, (customer, status, sku, name, quantity, price, created) in enumerate(SEED_ORDERS, start=1):
            items = [{"sku": sku, "name": name, "quantity": quantity, "unitPrice": price}]
            self.conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, 'EUR', ?, NULL, ?)",
                (seed_order_id(n), customer, status, round(quantity * price, 2), json.dumps(items), created),
            )
        self.conn.execute("COMMIT")

    def all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
            return row

    def run(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> int:
        with self.lock:
            return self.conn.execute(sql, args).lastrowid or 0

    def close(self) -> None:
        self.conn.close()


def customer_of(row: sqlite3.Row) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        dateOfBirth=row["date_of_birth"],
        status=row["status"],
        tier=row["tier"],
        address=json.loads(row["address"]) if row["address"] else None,
        tags=json.loads(row["tags"]),
        marketingOptIn=bool(row["marketing_opt_in"]),
        partnerId=row["partner_id"],
        createdAt=row["created_at"],
    )


def order_of(row: sqlite3.Row) -> Order:
    return Order(
        id=row["id"],
        customerId=row["customer_id"],
        status=row["status"],
        total=row["total"],
        currency=row["currency"],
        items=json.loads(row["items"]),
        note=row["note"],
        createdAt=row["created_at"],
    )


# -- the application -------------------------------------------------------------------------------

SCOPES = {
    "customers:read": "Read customer records.",
    "customers:write": "Create and update customer records.",
    "customers:admin": "Delete customer records.",
    "orders:read": "Read orders.",
    "orders:write": "Place orders.",
    "pii:read": "Read personal data (e-mail, phone, date of birth, address).",
}
OAUTH2 = oauth2_scheme(
    {
        "authorizationCode": {
            "authorizationUrl": f"{ISSUER}/authorize",
            "tokenUrl": f"{ISSUER}/token",
            "scopes": SCOPES,
        },
        "clientCredentials": {"tokenUrl": f"{ISSUER}/token", "scopes": SCOPES},
    },
    description="Access tokens from the demo authorization server.",
)
CustomerId = Annotated[int, PathParam(ge=1, description="The customer's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Error, "description": "No such resource."}}


# The verified caller, for an operation that needs these scopes (documented in app.openapi() for Shield).
CustomersRead = Annotated[Principal, Security(OAUTH2, scopes=["customers:read"])]
CustomersWrite = Annotated[Principal, Security(OAUTH2, scopes=["customers:write"])]
CustomersAdmin = Annotated[Principal, Security(OAUTH2, scopes=["customers:admin"])]
OrdersRead = Annotated[Principal, Security(OAUTH2, scopes=["orders:read"])]
OrdersWrite = Annotated[Principal, Security(OAUTH2, scopes=["orders:write"])]


def build_app(store: Store) -> FastAPI:
    """The FastAPI application alone (no Shield): the endpoints trust that Shield decided."""
    app = FastAPI(
        title="Customer API",
        version="1.4.2",
        summary="Customers, their accounts and their orders.",
        separate_input_output_schemas=False,  # one Customer schema, as in the contract
    )

    @app.exception_handler(StarletteHTTPException)
    async def error_body(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    def customer_row(customer_id: int) -> sqlite3.Row:
        row = store.one("SELECT * FROM customers WHERE id = ?", (customer_id,))
        if row is None:
            raise HTTPException(404, "customer not found")
        return row

    @app.get("/v1/health", operation_id="getHealth", tags=["meta"], openapi_extra=PUBLIC)
    def get_health() -> Health:
        return Health(status="ok")

    @app.post(
        "/v1/login",
        operation_id="login",
        tags=["auth"],
        openapi_extra=PUBLIC,
        responses={401: {"model": Error, "description": "Login failed."}},
    )
    def login(body: LoginRequest) -> LoginResponse:
        row = store.one(
            "SELECT id, password_hash, password_salt FROM customers WHERE username = ? OR email = ?",
            (body.username, body.username),
        )
        if row is None or not secrets.compare_digest(
            hash_password(body.password, row["password_salt"]), row["password_hash"]
        ):
            raise HTTPException(401, "wrong username or password")
        token = secrets.token_hex(32)
        store.run("INSERT INTO sessions VALUES (?, ?)", (token, row["id"]))
        return LoginResponse(token=token, customerId=row["id"])

    @app.get(
        "/v1/customers", operation_id="listCustomers", tags=["customers"], response_model_exclude_none=True
    )
    def list_customers(
        who: CustomersRead,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
        status: Literal["active", "suspended", "closed"] | None = None,
    ) -> list[Customer]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = store.all(
            f"SELECT * FROM customers {where} ORDER BY id LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return [customer_of(r) for r in rows]

    @app.post(
        "/v1/customers",
        operation_id="createCustomer",
        tags=["customers"],
        status_code=201,
        response_model_exclude_none=True,
    )
    def create_customer(body: Customer, who: CustomersWrite, response: Response) -> Customer:
        salt = secrets.token_hex(8)
        partner = str(who.claims.get("partner_id") or "p-acme")
        new_id = store.run(
            "INSERT INTO customers (name, email, phone, date_of_birth, status, tier, address, tags,"
            " marketing_opt_in, partner_id, created_at, password_hash, password_salt)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                body.name,
                body.email,
                body.phone,
                body.dateOfBirth.isoformat() if body.dateOfBirth else None,
                body.status,
                body.tier or "bronze",
                body.address.model_dump_json(exclude_none=True) if body.address else None,
                json.dumps(body.tags or []),
                int(bool(body.marketingOptIn)),
                partner,
                now(),
                hash_password(body.password or secrets.token_hex(16), salt),
                salt,
            ),
        )
        response.headers["location"] = f"/v1/customers/{new_id}"
        return customer_of(customer_row(new_id))

    @app.get(
        "/v1/customers/search",
        operation_id="searchCustomers",
        tags=["customers"],
        response_model_exclude_none=True,
    )
    def search_customers(
        who: CustomersRead, q: Annotated[str, Query(min_length=2, max_length=64)]
    ) -> list[Customer]:
        pattern = f"%{q}%"
        rows = store.all(
            "SELECT * FROM customers WHERE name LIKE ? OR email LIKE ? ORDER BY id LIMIT 50",
            (pattern, pattern),
        )
        return [customer_of(r) for r in rows]

    @app.get(
        "/v1/customers/{customerId}",
        operation_id="getCustomer",
        tags=["customers"],
        responses=NOT_FOUND,
        response_model_exclude_none=True,
    )
    def get_customer(customerId: CustomerId, who: CustomersRead) -> Customer:
        return customer_of(customer_row(customerId))

    @app.put(
        "/v1/customers/{customerId}",
        operation_id="updateCustomer",
        tags=["customers"],
        responses=NOT_FOUND,
        response_model_exclude_none=True,
    )
    def update_customer(customerId: CustomerId, body: Customer, who: CustomersWrite) -> Customer:
        customer_row(customerId)
        store.run(
            "UPDATE customers SET name = ?, email = ?, phone = ?, status = ?, tier = COALESCE(?, tier),"
            " tags = ?, marketing_opt_in = ? WHERE id = ?",
            (
                body.name,
                body.email,
                body.phone,
                body.status,
                body.tier,
                json.dumps(body.tags or []),
                int(bool(body.marketingOptIn)),
                customerId,
            ),
        )
        return customer_of(customer_row(customerId))

    @app.delete(
        "/v1/customers/{customerId}",
        operation_id="deleteCustomer",
        tags=["customers"],
        status_code=204,
        responses=NOT_FOUND,
    )
    def delete_customer(customerId: CustomerId, who: CustomersAdmin) -> Response:
        customer_row(customerId)
        for table, column in (("customers", "id"), ("accounts", "customer_id"), ("orders", "customer_id")):
            store.run(f"DELETE FROM {table} WHERE {column} = ?", (customerId,))
        return Response(status_code=204)

    @app.get(
        "/v1/customers/{customerId}/accounts",
        operation_id="listAccounts",
        tags=["accounts"],
        responses=NOT_FOUND,
    )
    def list_accounts(customerId: CustomerId, who: CustomersRead) -> list[Account]:
        rows = store.all("SELECT * FROM accounts WHERE customer_id = ? ORDER BY id", (customerId,))
        return [
            Account(
                id=r["id"],
                customerId=r["customer_id"],
                type=r["type"],
                currency=r["currency"],
                balance=r["balance"],
                openedAt=r["opened_at"],
            )
            for r in rows
        ]

    @app.get(
        "/v1/customers/{customerId}/orders",
        operation_id="listOrders",
        tags=["orders"],
        responses=NOT_FOUND,
        response_model_exclude_none=True,
    )
    def list_orders(customerId: CustomerId, who: OrdersRead) -> list[Order]:
        rows = store.all("SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at, id", (customerId,))
        return [order_of(r) for r in rows]

    @app.post(
        "/v1/customers/{customerId}/orders",
        operation_id="createOrder",
        tags=["orders"],
        status_code=201,
        responses=NOT_FOUND,
        response_model_exclude_none=True,
    )
    def create_order(customerId: CustomerId, body: OrderInput, who: OrdersWrite, response: Response) -> Order:
        order_id = str(uuid.uuid4())
        total = round(sum(i.quantity * i.unitPrice for i in body.items), 2)
        items = json.dumps([i.model_dump(exclude_none=True) for i in body.items])
        store.run(
            "INSERT INTO orders VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
            (order_id, customerId, total, body.currency, items, body.note, now()),
        )
        response.headers["location"] = f"/v1/orders/{order_id}"
        row = store.one("SELECT * FROM orders WHERE id = ?", (order_id,))
        assert row is not None
        return order_of(row)

    @app.get(
        "/v1/orders/{orderId}",
        operation_id="getOrder",
        tags=["orders"],
        responses=NOT_FOUND,
        response_model_exclude_none=True,
    )
    def get_order(orderId: uuid.UUID, who: OrdersRead) -> Order:
        row = store.one("SELECT * FROM orders WHERE id = ?", (str(orderId),))
        if row is None:
            raise HTTPException(404, "order not found")
        return order_of(row)

    return app


def owner_loader(store: Store) -> Any:
    """The pre-checks' ``resource``: who a customer record belongs to, from the application's database."""

    def customer_owner(request: ResourceRequest) -> dict[str, Any] | None:
        row = store.one("SELECT id, partner_id FROM customers WHERE id = ?", (request.path["customerId"],))
        return None if row is None else {"id": row["id"], "partnerId": row["partner_id"]}

    return customer_owner


def create_app(
    db_path: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    decision_log: Literal["policy"] | None = "policy",
) -> Any:
    """The application behind Shield; ``policy`` defaults to ``apishield.yaml`` beside this file.

    ``decision_log`` is where Shield writes its audit events: ``"policy"``, the policy's
    ``audit:`` sink; None: in memory only.
    """
    store = Store(db_path or os.environ.get("CUSTOMER_API_DB", str(HERE / "customers.db")))
    app = build_app(store)
    owner = owner_loader(store)
    app.add_middleware(
        Shield,
        config=policy or HERE / "apishield.yaml",
        openapi=app.openapi,
        resources={op: owner for op in ("updateCustomer", "listAccounts", "listOrders", "createOrder")},
        decision_log=decision_log,
    )
    app.state.store = store
    return app
