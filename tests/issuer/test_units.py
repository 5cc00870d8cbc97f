"""Settings, the demo bootstrap, password hashing, PKCE vectors: the parts without a server."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
import requests

from apishield.config.load import ConfigError
from apishield.issuer import IssuerSettings, bootstrap_demo, create_issuer_app, load_issuer_settings
from apishield.issuer.passwords import PasswordHasher, SecretVerifier
from apishield.issuer.rfc9449 import normalize_htu
from apishield.issuer.settings import LoginThrottleSettings
from apishield.issuer.store import open_issuer_store
from apishield.issuer.throttle import LoginThrottle
from tests.issuer.conftest import FAST_HASH
from tests.issuer.helpers import s256
from tests.support import ServerThread, free_port


@pytest.mark.parametrize(
    "issuer, message",
    [
        ("http://auth.example", "https"),
        ("https://auth.example/", "trailing slash"),
        ("https://auth.example?x=1", "no query or fragment"),
        ("https://user@auth.example", "user information"),
    ],
)
def test_issuer_identifier_rules(issuer: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IssuerSettings(issuer=issuer, audience="api")


def test_lifetimes_are_bounded() -> None:
    with pytest.raises(ValueError, match="code_lifetime"):
        IssuerSettings(issuer="https://a.example", audience="api", code_lifetime="11m")  # type: ignore[arg-type]
    settings = IssuerSettings(issuer="https://a.example", audience="api", token_lifetime="5m")  # type: ignore[arg-type]
    assert settings.token_lifetime == 300 and settings.code_lifetime == 60 and settings.signing_alg == "ES256"


def test_relative_paths_resolve_against_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    cfg = tmp_path / "conf" / "issuer.yaml"
    cfg.write_text("issuer: https://a.example\naudience: api\nstore: sqlite:///data/issuer.db\n")
    settings = load_issuer_settings(cfg)
    assert settings.store == f"sqlite:///{tmp_path / 'conf' / 'data' / 'issuer.db'}"
    assert settings.keys_dir == str(tmp_path / "conf" / "issuer-keys")
    assert settings.revocation_store == f"sqlite:///{tmp_path / 'conf' / 'revocations.db'}"


def test_settings_problems_are_all_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "issuer.yaml"
    cfg.write_text("issuer: http://auth.example\naudience: api\nsigning_alg: HS256\nscopes: ['a b']\n")
    with pytest.raises(ConfigError) as err:
        load_issuer_settings(cfg)
    text = str(err.value)
    assert ":1: issuer:" in text and ":3: signing_alg:" in text and ":4: scopes" in text


def test_issuer_with_a_path(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tenant1"
    demo = bootstrap_demo(tmp_path / "d", url, "customer-api", password_hash=FAST_HASH)
    server = ServerThread(create_issuer_app(demo.settings), port=port).start()
    try:
        meta = requests.get(
            f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server/tenant1", timeout=5
        )
        assert meta.json()["issuer"] == url  # RFC 8414 §3.1: inserted between host and path
        assert meta.json()["token_endpoint"] == url + "/token"
        r = requests.post(
            url + "/token",
            data={"grant_type": "client_credentials"},
            auth=("partner-portal", demo.partner_portal_secret),
            timeout=5,
        )
        assert r.status_code == 200, r.text
        assert requests.get(f"http://127.0.0.1:{port}/token", timeout=5).status_code == 404
    finally:
        server.stop()


def test_bootstrap_demo_is_idempotent(tmp_path: Path) -> None:
    first = bootstrap_demo(tmp_path, "http://127.0.0.1:9400", "customer-api", password_hash=FAST_HASH)
    second = bootstrap_demo(tmp_path, "http://127.0.0.1:9400", "customer-api", password_hash=FAST_HASH)
    assert first.partner_portal_secret == second.partner_portal_secret
    assert stat.S_IMODE(first.secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    store = open_issuer_store(second.settings.store)
    try:
        assert sorted(c.client_id for c in store.list_clients()) == [
            "globex-portal",
            "mobile-app",
            "partner-portal",
        ]
        users = {u.username: dict(u.claims) for u in store.list_users()}
    finally:
        store.close()
    assert users["alice"] == {"customer_id": 1, "partner_id": "p-acme", "roles": ["customer"]}
    assert users["frank"] == {"customer_id": 6, "partner_id": "p-globex", "roles": ["customer"]}
    assert users["sam"] == {"roles": ["support"]}
    assert len(users) == 7  # six customers and a support agent
    provider = second.gateway_jwt_provider()
    assert provider == {
        "issuer": "http://127.0.0.1:9400",
        "audience": "customer-api",
        "jwks_uri": "http://127.0.0.1:9400/jwks.json",
        "algorithms": ["ES256"],
    }
    # a lost secret file gets the client a new secret
    second.secret_file.unlink()
    third = bootstrap_demo(tmp_path, "http://127.0.0.1:9400", "customer-api", password_hash=FAST_HASH)
    assert third.partner_portal_secret != first.partner_portal_secret


def test_default_password_hash_is_argon2id_rfc9106() -> None:
    hashed = PasswordHasher().hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(hashed, "correct horse battery staple")
    assert not PasswordHasher().verify(hashed, "wrong")
    assert not PasswordHasher().verify("not a hash", "x")


def test_secret_verifier_remembers_successes_only_for_the_same_hash() -> None:
    hasher = PasswordHasher(FAST_HASH)
    verifier = SecretVerifier(hasher)
    stored = hasher.hash("s3cret-s3cret")
    assert verifier.verify("c", "s3cret-s3cret", stored)
    assert verifier.verify("c", "s3cret-s3cret", stored)
    assert not verifier.verify("c", "wrong", stored)
    assert not verifier.verify("c", "s3cret-s3cret", hasher.hash("another"))  # secret changed
    assert not verifier.verify("other-client", "wrong", stored)


def test_pkce_s256_vector_rfc7636_appendix_b() -> None:
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_htu_normalisation() -> None:
    assert normalize_htu("HTTPS://Auth.Example:443/token?x#y") == "https://auth.example/token"
    assert normalize_htu("http://127.0.0.1:80/token") == "http://127.0.0.1/token"
    assert normalize_htu("http://127.0.0.1:9400/token") != normalize_htu("http://127.0.0.1:9401/token")


def test_throttle_window() -> None:
    throttle = LoginThrottle(
        LoginThrottleSettings(window=10, max_failures_per_account=2, max_failures_per_ip=3)
    )
    now = time.time()
    throttle.failed("Bob", "10.0.0.1", now)
    assert throttle.retry_after("bob", "10.0.0.2", now) == 0
    throttle.failed("BOB ", "10.0.0.2", now + 1)
    assert throttle.retry_after("bob", "10.0.0.3", now + 2) == pytest.approx(8)
    assert throttle.retry_after("bob", "10.0.0.3", now + 10.5) == 0
    throttle.succeeded("bob")
    assert throttle.retry_after("bob", "10.0.0.3", now + 2) == 0


def test_demo_token_command(tmp_path: Path) -> None:
    demo = bootstrap_demo(tmp_path, "http://127.0.0.1:9400", "customer-api", password_hash=FAST_HASH)
    expected = "apishield token --client partner-portal --issuer http://127.0.0.1:9400 --secret-file "
    assert demo.token_command() == expected + str(demo.secret_file)
