"""A running issuer (the demo's clients and users, plus a few more) shared by the issuer tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apishield.issuer import bootstrap_demo, create_issuer_app
from apishield.issuer.admin import new_client
from apishield.issuer.passwords import PasswordHasher
from apishield.issuer.settings import LoginThrottleSettings, PasswordHashSettings
from tests.issuer.helpers import WEB_REDIRECT, Clock, Issuer
from tests.support import ServerThread, free_port

# argon2id at its smallest cost keeps the suite fast; the default cost is tested in test_units.py
FAST_HASH = PasswordHashSettings(time_cost=1, memory_cost_kib=8192, parallelism=1)


def start_issuer(tmp: Path, **settings_update: object) -> Issuer:
    port = free_port()
    demo = bootstrap_demo(tmp / "issuer", f"http://127.0.0.1:{port}", "customer-api", password_hash=FAST_HASH)
    settings = demo.settings.model_copy(update=settings_update) if settings_update else demo.settings
    clock = Clock()
    app = create_issuer_app(settings, clock=clock)
    issuer = Issuer(app, ServerThread(app, port=port), demo, clock, tmp)
    issuer.secrets["partner-portal"] = demo.partner_portal_secret
    hasher = PasswordHasher(settings.password_hash)
    extra = {
        "web-portal": dict(
            client_type="confidential",
            grant_types=("authorization_code", "refresh_token"),
            scopes=("customers:read", "orders:read"),
            redirect_uris=(WEB_REDIRECT,),
        ),
        "resource-server": dict(
            client_type="confidential", grant_types=("client_credentials",), scopes=(), introspect_all=True
        ),
        "batch-job": dict(
            client_type="confidential", grant_types=("client_credentials",), scopes=("orders:read",)
        ),
    }
    for client_id, spec in extra.items():
        _, secret = new_client(app.store, hasher, client_id=client_id, now=time.time(), **spec)  # type: ignore[arg-type]
        assert secret is not None
        issuer.secrets[client_id] = secret
    issuer.server.start()
    return issuer


@pytest.fixture(scope="package")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    # sign-in failures of the negative tests must not throttle the others (tested on their own issuer)
    lenient = LoginThrottleSettings(max_failures_per_account=1000, max_failures_per_ip=1000)
    iss = start_issuer(tmp_path_factory.mktemp("issuer"), login_throttle=lenient)
    try:
        yield iss
    finally:
        iss.server.stop()


@pytest.fixture()
def clock(issuer: Issuer) -> Iterator[Clock]:
    """The shared issuer's clock; any offset a test sets is undone afterwards."""
    yield issuer.clock
    issuer.clock.offset = 0.0
