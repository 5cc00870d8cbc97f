"""Console test support: a gateway with audit, detection and the admin listener, on real sockets.

:func:`console_stack` starts a JWKS endpoint, a recording upstream that
answers ``GET /orders/{id}`` with 200 for the caller's own order (id 1) and
404 for any other, and the gateway in front of it as ``apishield serve``
builds it: the audit trail in SQLite, detection with the enumeration
detector at test-sized thresholds (a walk of six refused ids), and the admin
listener on an ephemeral port with a token file, serving the console.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from tests.support import Canned, Recorded, RecordingUpstream, Response, ServerThread, http, write_policy
from tests.tokens import JWKSServer, claims, ec_key, jwt_auth, sign

HERE = Path(__file__).parent
MARKUP_AGENT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def orders(recorded: Recorded) -> Canned:
    """The caller owns order 1 only: every other id is 404, as an object-level check would answer."""
    if recorded.target.split("?")[0] == "/orders/1":
        return Canned(body=b'{"id": 1}')
    return Canned(status=404, body=b'{"error": "not found"}')


@dataclass
class ConsoleStack:
    gateway: ServerThread
    gateway_app: Gateway
    upstream: RecordingUpstream
    admin_port: int
    token: str
    key: Any
    tmp: Path

    def bearer(self, subject: str) -> dict[str, str]:
        token = sign(self.key, claims(sub=subject, client_id="orders-app", scope="orders:read"))
        return {"Authorization": "Bearer " + token}

    def api(self, subject: str, target: str, agent: str | None = None) -> Response:
        headers = self.bearer(subject)
        if agent is not None:
            headers["User-Agent"] = agent
        return http(self.gateway.port, "GET", target, headers=headers)

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/console"

    def admin(
        self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        return http(self.admin_port, method, target, body, headers)


@contextlib.contextmanager
def console_stack(tmp: Path, *, detectors: dict[str, Any] | None = None) -> Iterator[ConsoleStack]:
    key = ec_key("console")
    jwks = ServerThread(JWKSServer(key)).start()
    upstream = RecordingUpstream()
    upstream.default = orders  # type: ignore[assignment]  # a callable answer, as RecordingUpstream allows
    up = ServerThread(upstream).start()
    token = secrets.token_urlsafe(24)
    token_file = tmp / "admin.token"
    token_file.write_text(token + "\n")
    os.chmod(token_file, 0o600)
    policy = write_policy(
        tmp,
        HERE / "orders.yaml",
        up.port,
        auth=jwt_auth(jwks.port),
        audit={"sink": "sqlite", "path": "audit.db", "flush_interval": 0.05},
        admin={"host": "127.0.0.1", "port": 0, "token_file": "admin.token"},
        detection={
            "alerts": {"path": "alerts.db"},
            "blocks": {"store": "memory"},
            "detectors": detectors
            or {"enumeration": {"min_denied_objects": 6, "walk_length": 6, "response": "alert"}},
        },
    )
    gateway = Gateway.from_runtime(load_runtime(policy))
    server = ServerThread(gateway).start()
    try:
        assert gateway.observability is not None and gateway.observability.admin is not None
        yield ConsoleStack(server, gateway, upstream, gateway.observability.admin.port, token, key, tmp)
    finally:
        server.stop()
        up.stop()
        jwks.stop()


def stored(stack: ConsoleStack, subject: str) -> int:
    """How many events of ``subject`` the audit store holds (the query layer, in a thread of its own:
    Playwright's synchronous API keeps an event loop running in the test's thread)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from apishield.audit.query import EventQuery, stats
    from apishield.audit.stores import SQLiteStore

    path = stack.tmp / "audit.db"
    if not path.exists():
        return 0

    async def count() -> int:
        store = SQLiteStore(path)
        try:
            return (await stats(store, EventQuery(subject=subject), ())).total.count
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result()


_COOKIE = re.compile(r"^([^=;]+)=([^;]*)")


def set_cookies(response: Response) -> dict[str, str]:
    """The ``Set-Cookie`` headers of a response, by cookie name (the whole header value)."""
    out = {}
    for name, value in response.raw_headers:
        if name == "set-cookie":
            match = _COOKIE.match(value)
            if match:
                out[match.group(1)] = value
    return out


def cookie_value(header: str) -> str:
    match = _COOKIE.match(header)
    assert match is not None
    return match.group(2)
