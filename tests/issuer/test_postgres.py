"""The PostgreSQL store, shared by two issuer instances (the "several instances" deployment)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from apishield.issuer import IssuerApp, IssuerSettings, create_issuer_app
from apishield.issuer.admin import new_client, new_user
from apishield.issuer.models import UserRecord, hash_token
from apishield.issuer.passwords import PasswordHasher
from apishield.issuer.store import StoreConflict, open_issuer_store
from tests.issuer.conftest import FAST_HASH
from tests.issuer.helpers import MOBILE_REDIRECT, PASSWORD, form_of, redirect_params, s256
from tests.services import require_postgres
from tests.support import ServerThread, free_port

pytestmark = pytest.mark.postgres


@dataclass
class Pair:
    a: ServerThread
    b: ServerThread
    app_a: IssuerApp
    settings: IssuerSettings
    secret: str

    def url(self, server: ServerThread, name: str) -> str:
        return f"http://127.0.0.1:{server.port}/{name}"


def _drop(dsn: str, schema: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    dsn = require_postgres()
    schema = f"apishield_issuer_test_{secrets.token_hex(4)}"
    tmp: Path = tmp_path_factory.mktemp("pg")
    port_a, port_b = free_port(), free_port()
    settings = IssuerSettings(
        issuer=f"http://127.0.0.1:{port_a}",
        audience="customer-api",
        store=f"{dsn}?schema={schema}",
        keys_dir=str(tmp / "keys"),  # shared by both instances, like a mounted secret
        revocation_store=f"sqlite:///{tmp / 'revocations.db'}",
        password_hash=FAST_HASH,
    )
    app_a, app_b = create_issuer_app(settings), create_issuer_app(settings)
    hasher = PasswordHasher(FAST_HASH)
    now = time.time()
    new_client(
        app_a.store,
        hasher,
        client_id="mobile-app",
        client_type="public",
        grant_types=("authorization_code", "refresh_token"),
        scopes=("customers:read",),
        redirect_uris=(MOBILE_REDIRECT,),
        now=now,
    )
    _, secret = new_client(
        app_a.store,
        hasher,
        client_id="gateway",
        client_type="confidential",
        grant_types=("client_credentials",),
        scopes=("customers:read",),
        introspect_all=True,
        now=now,
    )
    new_user(app_a.store, hasher, username="alice", password=PASSWORD, now=now, claims={"customer_id": 1})
    a = ServerThread(app_a, port=port_a).start()
    b = ServerThread(app_b, port=port_b).start()
    try:
        assert secret is not None
        yield Pair(a, b, app_a, settings, secret)
    finally:
        a.stop()
        b.stop()
        _drop(dsn, schema)


def _code(pair: Pair, verifier: str) -> str:
    browser = requests.Session()
    query = {
        "response_type": "code",
        "client_id": "mobile-app",
        "redirect_uri": MOBILE_REDIRECT,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    page = browser.get(pair.url(pair.a, "authorize"), params=query, timeout=10)
    action, csrf = form_of(page.text)
    answer = browser.post(
        f"http://127.0.0.1:{pair.a.port}{action}",
        data={"csrf_token": csrf, "username": "alice", "password": PASSWORD, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    return redirect_params(answer)["code"]


def _redeem(pair: Pair, server: ServerThread, code: str, verifier: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": MOBILE_REDIRECT,
        "client_id": "mobile-app",
        "code_verifier": verifier,
    }
    return requests.post(pair.url(server, "token"), data=form, timeout=10)


def _introspect(pair: Pair, server: ServerThread, token: str) -> dict[str, object]:
    r = requests.post(
        pair.url(server, "introspect"), data={"token": token}, auth=("gateway", pair.secret), timeout=10
    )
    body: dict[str, object] = r.json()
    return body


def test_code_from_one_instance_redeemed_at_the_other(pair: Pair) -> None:
    verifier = secrets.token_urlsafe(32)
    r = _redeem(pair, pair.b, _code(pair, verifier), verifier)
    assert r.status_code == 200, r.text
    assert _introspect(pair, pair.a, r.json()["access_token"])["active"] is True


def test_refresh_reuse_across_instances_revokes_the_family(pair: Pair) -> None:
    verifier = secrets.token_urlsafe(32)
    first = _redeem(pair, pair.a, _code(pair, verifier), verifier).json()
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "client_id": "mobile-app",
    }
    second = requests.post(pair.url(pair.a, "token"), data=refresh, timeout=10).json()
    reuse = requests.post(pair.url(pair.b, "token"), data=refresh, timeout=10)
    assert reuse.json()["error"] == "invalid_grant"
    for server in (pair.a, pair.b):
        assert _introspect(pair, server, second["access_token"]) == {"active": False}
        assert _introspect(pair, server, second["refresh_token"]) == {"active": False}


def test_a_code_is_redeemed_once_under_concurrency(pair: Pair) -> None:
    verifier = secrets.token_urlsafe(32)
    code = _code(pair, verifier)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def redeem(server: ServerThread) -> None:
        barrier.wait()
        results.append(_redeem(pair, server, code, verifier).status_code)

    threads = [threading.Thread(target=redeem, args=(s,)) for s in (pair.a, pair.b, pair.a, pair.b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 400, 400, 400]


def test_store_operations(pair: Pair) -> None:
    store = open_issuer_store(pair.settings.store)
    try:
        assert store.get_client("gateway") is not None
        with pytest.raises(StoreConflict):
            store.add_user(UserRecord("alice", "x", {}, time.time()))
        assert store.get_refresh_token(hash_token("unknown")) is None
        assert not store.consume_code(hash_token("unknown"), time.time())
        assert store.disable_user("alice", time.time()) is not None
        user = store.get_user("alice")
        assert user is not None and user.disabled_at is not None
        store.prune(time.time())
    finally:
        store.close()
