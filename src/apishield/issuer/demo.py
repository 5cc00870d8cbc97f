"""The issuer of ``apishield demo``: the example customer API's two callers and six customers.

:func:`bootstrap_demo` prepares, idempotently, everything in one folder:

* ``issuer.yaml`` (settings), ``issuer.db`` (SQLite store), ``keys/`` (signing
  keys, 0700/0600) and ``revocations.db`` (the revocation log the gateway polls);
* client ``mobile-app``: public, ``authorization_code`` + ``refresh_token`` with
  PKCE S256 (RFC 7636), exact redirect URIs :data:`MOBILE_REDIRECT_URIS`;
* client ``partner-portal``: confidential, ``client_credentials``, with the
  claims ``partner_id: p-acme`` and ``roles: [partner]``. Its secret is
  generated once, kept in ``partner-portal.secret`` (0600) for the demo's
  walkthrough and ``apishield token --secret-file``, and returned;
* client ``globex-portal``: a second partner (``p-globex``), so the demo and the
  tests can show that one partner never reaches another's customers;
* users alice, bob, carol, dave, erin and frank (customers 1 to 6 of the
  example service, password "correct horse battery staple") with the claims
  ``customer_id``, ``partner_id`` and ``roles: [customer]``, and ``sam``, a
  support agent (``roles: [support]``) who may read every customer.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apishield.issuer.admin import AdminError, new_client, new_user
from apishield.issuer.keys import KeyRing
from apishield.issuer.passwords import PasswordHasher, generate_client_secret
from apishield.issuer.settings import IssuerSettings, PasswordHashSettings, load_issuer_settings
from apishield.issuer.store import open_issuer_store

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "MOBILE_REDIRECT_URIS", "SCOPES", "DemoIssuer", "bootstrap_demo"]

DEMO_PASSWORD = "correct horse battery staple"
SCOPES = ("customers:read", "customers:write", "customers:admin", "orders:read", "orders:write", "pii:read")
MOBILE_SCOPES = ("customers:read", "customers:write", "orders:read", "orders:write")
PARTNER_SCOPES = ("customers:read", "orders:read")
MOBILE_REDIRECT_URIS = ("http://127.0.0.1:8765/callback", "com.example.customerapp:/oauth/callback")
# (username, customer id, partner) as seeded in examples/customer_api
DEMO_USERS = (
    ("alice", 1, "p-acme"),
    ("bob", 2, "p-acme"),
    ("carol", 3, "p-globex"),
    ("dave", 4, "p-globex"),
    ("erin", 5, "p-acme"),
    ("frank", 6, "p-globex"),
)


@dataclass(frozen=True)
class DemoIssuer:
    """What the demo needs to run the issuer and point the gateway at it."""

    folder: Path
    settings_path: Path
    settings: IssuerSettings
    partner_portal_secret: str
    secret_file: Path

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    @property
    def jwks_uri(self) -> str:
        return self.settings.endpoint("jwks.json")

    @property
    def token_endpoint(self) -> str:
        return self.settings.endpoint("token")

    @property
    def authorization_endpoint(self) -> str:
        return self.settings.endpoint("authorize")

    @property
    def revocation_store(self) -> str:
        """The URL to use as the gateway's ``auth.revocation.store``."""
        return self.settings.revocation_store

    def token_command(self) -> str:
        """The shell command that prints a partner-portal access token (for the walkthrough)."""
        return (
            f"apishield token --client partner-portal --issuer {self.settings.issuer} "
            f"--secret-file {self.secret_file}"
        )

    def gateway_jwt_provider(self) -> dict[str, Any]:
        """An ``auth.jwt[]`` entry for the gateway's policy that trusts this issuer."""
        return {
            "issuer": self.settings.issuer,
            "audience": self.settings.audience,
            "jwks_uri": self.jwks_uri,
            "algorithms": [self.settings.signing_alg],
        }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def bootstrap_demo(
    folder: Path,
    issuer_url: str,
    audience: str,
    *,
    revocation_store: str | None = None,
    password_hash: PasswordHashSettings | None = None,
) -> DemoIssuer:
    """Create (or reuse) the demo issuer's settings, store, keys, clients and users in ``folder``.

    ``revocation_store`` defaults to ``sqlite:///revocations.db`` in ``folder``;
    ``password_hash`` to argon2id's RFC 9106 profile (tests pass a cheaper one).
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    settings_path = folder / "issuer.yaml"
    port = issuer_url.rsplit(":", 1)[-1].split("/", 1)[0]
    document: dict[str, Any] = {
        "issuer": issuer_url,
        "audience": audience,
        "store": "sqlite:///issuer.db",
        "keys_dir": "keys",
        "revocation_store": revocation_store or "sqlite:///revocations.db",
        "scopes": list(SCOPES),
        "listen": {"host": "127.0.0.1", "port": int(port) if port.isdigit() else 9400},
    }
    if password_hash is not None:
        document["password_hash"] = password_hash.model_dump()
    settings_path.write_text(
        "# Settings of the demo's embedded authorization server (apishield issuer serve -c issuer.yaml).\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    settings = load_issuer_settings(settings_path)
    KeyRing(Path(settings.keys_dir), settings.signing_alg, keep_for=settings.token_lifetime + 300)
    hasher = PasswordHasher(settings.password_hash)
    store = open_issuer_store(settings.store)
    secret_file = folder / "partner-portal.secret"
    now = time.time()
    try:
        if store.get_client("mobile-app") is None:
            new_client(
                store,
                hasher,
                client_id="mobile-app",
                name="Customer mobile app",
                client_type="public",
                grant_types=("authorization_code", "refresh_token"),
                scopes=MOBILE_SCOPES,
                redirect_uris=MOBILE_REDIRECT_URIS,
                now=now,
                known_scopes=SCOPES,
            )
        secret: str | None = None
        if store.get_client("partner-portal") is None:
            _, secret = new_client(
                store,
                hasher,
                client_id="partner-portal",
                name="Partner portal (ACME)",
                client_type="confidential",
                grant_types=("client_credentials",),
                scopes=PARTNER_SCOPES,
                claims={"partner_id": "p-acme", "roles": ["partner"]},
                now=now,
                known_scopes=SCOPES,
            )
        elif secret_file.is_file():
            secret = secret_file.read_text(encoding="utf-8").strip()
            stored = store.get_client("partner-portal")
            if stored is None or stored.secret_hash is None or not hasher.verify(stored.secret_hash, secret):
                secret = None
        if not secret:  # the client exists but its secret was lost: give it a new one
            secret = generate_client_secret()
            store.set_client_secret("partner-portal", hasher.hash(secret))
        _write_private(secret_file, secret + "\n")
        if store.get_client("globex-portal") is None:
            _, globex_secret = new_client(
                store,
                hasher,
                client_id="globex-portal",
                name="Partner portal (Globex)",
                client_type="confidential",
                grant_types=("client_credentials",),
                scopes=PARTNER_SCOPES,
                claims={"partner_id": "p-globex", "roles": ["partner"]},
                now=now,
                known_scopes=SCOPES,
            )
            _write_private(folder / "globex-portal.secret", f"{globex_secret}\n")
        if store.get_user("sam") is None:
            with contextlib.suppress(AdminError):
                new_user(
                    store,
                    hasher,
                    username="sam",
                    password=DEMO_PASSWORD,
                    now=now,
                    claims={"roles": ["support"]},
                )
        for username, customer_id, partner in DEMO_USERS:
            if store.get_user(username) is None:
                with contextlib.suppress(AdminError):  # created concurrently
                    new_user(
                        store,
                        hasher,
                        username=username,
                        password=DEMO_PASSWORD,
                        now=now,
                        claims={"customer_id": customer_id, "partner_id": partner, "roles": ["customer"]},
                    )
    finally:
        store.close()
    return DemoIssuer(folder, settings_path, settings, secret, secret_file)
