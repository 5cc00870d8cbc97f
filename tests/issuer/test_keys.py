"""Signing keys: owner-only files, every algorithm verifiable by the project's verifier, rotation."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from apishield.auth.rfc9068 import AccessTokenPolicy, verify_access_token
from apishield.issuer.keys import KeyFileError, KeyRing
from apishield.issuer.rfc9068 import AccessTokenMinter
from apishield.jose import import_jwks, parse_compact_jws
from tests.issuer.conftest import start_issuer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_created_owner_only(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", "ES256", keep_for=900)
    assert _mode(tmp_path / "keys") == 0o700
    files = list((tmp_path / "keys").iterdir())
    assert {f.name for f in files} >= {"manifest.json", "csrf.key", f"{ring.active.kid}.pem"}
    for f in files:
        if f.name != ".lock":
            assert _mode(f) == 0o600, f
    # a second start loads the same key
    assert KeyRing(tmp_path / "keys", "ES256", keep_for=900).active.kid == ring.active.kid


def test_loose_permissions_are_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", "ES256", keep_for=900)
    key_file = tmp_path / "keys" / f"{ring.active.kid}.pem"
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyFileError, match="chmod 0600"):
        KeyRing(tmp_path / "keys", "ES256", keep_for=900)
    os.chmod(key_file, 0o600)
    os.chmod(tmp_path / "keys", 0o755)
    with pytest.raises(KeyFileError, match="chmod 0700"):
        KeyRing(tmp_path / "keys", "ES256", keep_for=900)


def test_tampered_key_file_is_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", "ES256", keep_for=900)
    other = KeyRing(tmp_path / "other", "ES256", keep_for=900)
    (tmp_path / "keys" / f"{ring.active.kid}.pem").write_bytes(other.active.pem())
    with pytest.raises(KeyFileError, match="does not match its key id"):
        KeyRing(tmp_path / "keys", "ES256", keep_for=900)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
def test_every_signing_algorithm_verifies(tmp_path: Path, alg: str) -> None:
    ring = KeyRing(tmp_path / "keys", alg, keep_for=900)
    minter = AccessTokenMinter("https://issuer.example", "api", 600, ring)
    now = time.time()
    minted = minter.mint(subject="alice", client_id="app", scope="a b", now=now, extra={"customer_id": 1})
    jws = parse_compact_jws(minted.token)
    assert jws.header == {"alg": alg, "typ": "at+jwt", "kid": ring.active.kid}
    policy = AccessTokenPolicy(issuer="https://issuer.example", audience="api", algorithms=frozenset({alg}))
    keys = import_jwks(ring.jwks(), allowed_algs=frozenset({alg}))
    verified = verify_access_token(jws, policy, keys, now)
    assert verified.claims["customer_id"] == 1 and verified.scopes == {"a", "b"}


def test_configured_claims_cannot_override_registered_ones(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", "ES256", keep_for=900)
    minter = AccessTokenMinter("https://issuer.example", "api", 600, ring)
    extra = {"sub": "admin", "aud": "other", "scope": "all", "partner_id": "p-acme"}
    minted = minter.mint(subject="alice", client_id="app", scope="a", now=time.time(), extra=extra)
    assert minted.claims["sub"] == "alice" and minted.claims["aud"] == "api" and minted.claims["scope"] == "a"
    assert minted.claims["partner_id"] == "p-acme"


def test_rotation_publishes_both_keys_then_retires_the_old_one(tmp_path: Path) -> None:
    iss = start_issuer(tmp_path)
    try:
        old_token = iss.client_credentials()["access_token"]
        old_kid = parse_compact_jws(old_token).kid
        # another process (apishield issuer rotate-keys) rotates
        ring = KeyRing(
            Path(iss.demo.settings.keys_dir), "ES256", keep_for=iss.demo.settings.token_lifetime + 300
        )
        new = ring.rotate()
        time.sleep(1.1)  # the running issuer re-reads the manifest at most once a second
        kids = [k["kid"] for k in iss.jwks()["keys"]]
        assert kids == [old_kid, new.kid]
        new_token = iss.client_credentials()["access_token"]
        assert parse_compact_jws(new_token).kid == new.kid
        assert iss.verify(new_token) and iss.verify(old_token)
        assert iss.introspect(old_token)["active"] is True
        # once every token the old key signed has expired, it leaves the JWKS
        iss.clock.offset = iss.demo.settings.token_lifetime + 301
        assert [k["kid"] for k in iss.jwks()["keys"]] == [new.kid]
    finally:
        iss.server.stop()


def test_retired_key_files_are_deleted_on_the_next_rotation(tmp_path: Path) -> None:
    clock = [1000.0]
    ring = KeyRing(tmp_path / "keys", "ES256", keep_for=100, clock=lambda: clock[0])
    first = ring.active.kid
    ring.rotate()
    clock[0] += 101
    ring.rotate()
    assert not (tmp_path / "keys" / f"{first}.pem").exists()
    assert len(ring.jwks()["keys"]) == 2
