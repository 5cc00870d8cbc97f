"""The reference scenario on real sockets: issuer, example service and gateway with the example policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apishield.demo import demo_policy, example_dir, load_example_app
from apishield.demo_client import mobile_token, partner_token
from apishield.issuer import create_issuer_app
from apishield.issuer.demo import DEMO_PASSWORD, bootstrap_demo
from apishield.issuer.settings import PasswordHashSettings
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from tests.support import ServerThread, free_port, http

FAST_HASH = PasswordHashSettings(time_cost=1, memory_cost_kib=8192, parallelism=1)
CALLBACK = "http://127.0.0.1:8765/callback"


@dataclass
class Scenario:
    gateway: ServerThread
    upstream: ServerThread
    issuer_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, who: str | None, method: str, target: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return http(self.gateway.port, method, target, body, headers)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp: Path = tmp_path_factory.mktemp("scenario")
    folder = example_dir()
    issuer_port, upstream_port, port = free_port(), free_port(), free_port()
    issuer_url = f"http://127.0.0.1:{issuer_port}"
    demo = bootstrap_demo(tmp / "issuer", issuer_url, "customer-api", password_hash=FAST_HASH)
    issuer = ServerThread(create_issuer_app(demo.settings), issuer_port).start()
    upstream = ServerThread(load_example_app(folder, tmp / "customers.db"), upstream_port).start()
    policy = demo_policy(
        folder, tmp, upstream_port, port, demo.gateway_jwt_provider(), demo.revocation_store, free_port()
    )
    gateway = ServerThread(Gateway.from_runtime(load_runtime(policy)), port).start()
    try:
        s = Scenario(gateway, upstream, issuer_url)
        scopes = "customers:read customers:write orders:read orders:write"
        for user in ("alice", "bob", "carol", "sam"):
            s.tokens[user] = mobile_token(issuer_url, user, DEMO_PASSWORD, CALLBACK, scopes)["access_token"]
        s.tokens["acme"] = partner_token(
            issuer_url, "partner-portal", demo.partner_portal_secret, "customers:read orders:read"
        )
        globex_secret = (tmp / "issuer" / "globex-portal.secret").read_text().strip()
        s.tokens["globex"] = partner_token(
            issuer_url, "globex-portal", globex_secret, "customers:read orders:read"
        )
        yield s
    finally:
        gateway.stop()
        upstream.stop()
        issuer.stop()
