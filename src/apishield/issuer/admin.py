"""Registering clients and users, and taking them away (RFC 6749 §2, RFC 8252, RFC 9700 §2.1).

Shared by ``apishield clients|users`` and the demo bootstrap. The rules:

* client types (RFC 6749 §2.1): a ``public`` client has no secret and uses
  ``authorization_code`` (with PKCE) and ``refresh_token``; only a
  ``confidential`` client may use ``client_credentials`` (§4.4). A confidential
  client gets a 256-bit secret, shown once and stored as an argon2id hash;
* redirect URIs (§3.1.2, RFC 9700 §2.1, RFC 8252 §7): absolute, no fragment,
  ``https``, or ``http`` to a loopback address, or a private-use scheme in
  reverse-domain form (``com.example.app:/callback``) for native apps; the
  authorization endpoint compares them as exact strings;
* configured claims may not use a registered claim name
  (:data:`apishield.issuer.rfc9068.RESERVED_CLAIMS`);
* revoking a client or disabling a user revokes every live token they hold
  and publishes the ``jti`` values to the gateways' revocation store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from apishield.issuer.models import GRANT_TYPES, ClientRecord, ClientType, UserRecord
from apishield.issuer.passwords import PasswordHasher, generate_client_secret
from apishield.issuer.rfc9068 import RESERVED_CLAIMS
from apishield.issuer.settings import SCOPE_TOKEN
from apishield.issuer.store import IssuerStore, Revoked, StoreConflict
from apishield.services.revocation_store import RevocationStore

__all__ = [
    "AdminError",
    "check_redirect_uri",
    "new_client",
    "new_user",
    "publish_revocations",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_URI_CHARS = re.compile(r"[\x21-\x7e]{1,2000}")
_NETLOC = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
MIN_PASSWORD = 8


class AdminError(ValueError):
    """A registration was refused; the message says why and is meant for the operator."""


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise AdminError(
            f"{what} {value!r} must be 1-100 characters: letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    return value


def check_redirect_uri(uri: str) -> str:
    if not _URI_CHARS.fullmatch(uri):
        raise AdminError(f"redirect URI {uri!r} must be an ASCII URI without spaces (RFC 3986)")
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and not _NETLOC.fullmatch(parts.netloc):
        raise AdminError(f"redirect URI {uri!r} has an invalid host")
    if parts.fragment or "#" in uri:
        raise AdminError(f"redirect URI {uri!r} must not have a fragment (RFC 6749 §3.1.2)")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return uri
    if _PRIVATE_SCHEME.fullmatch(parts.scheme) and parts.path.startswith("/"):
        return uri
    raise AdminError(
        f"redirect URI {uri!r} must be https://..., http:// to a loopback address, "
        "or a private-use scheme such as com.example.app:/callback (RFC 8252 §7)"
    )


def _claims(claims: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(claims or {})
    for key in out:
        if not key or key in RESERVED_CLAIMS:
            raise AdminError(f"claim {key!r} is a registered JWT claim and cannot be configured")
    return out


def _scopes(scopes: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(scopes))
    known_set = set(known)
    for scope in out:
        if not SCOPE_TOKEN.fullmatch(scope):
            raise AdminError(f"{scope!r} is not a scope token (RFC 6749 §3.3)")
        if known_set and scope not in known_set:
            listed = " ".join(sorted(known_set))
            raise AdminError(f"scope {scope!r} is not one of the issuer's scopes: {listed}")
    return out


def new_client(
    store: IssuerStore,
    hasher: PasswordHasher,
    *,
    client_id: str,
    client_type: ClientType,
    grant_types: Iterable[str],
    scopes: Iterable[str],
    now: float,
    redirect_uris: Iterable[str] = (),
    claims: Mapping[str, Any] | None = None,
    name: str = "",
    introspect_all: bool = False,
    known_scopes: Iterable[str] = (),
) -> tuple[ClientRecord, str | None]:
    """Register a client; returns it and its secret (None for a public client), to show once."""
    _name(client_id, "client id")
    grants = tuple(dict.fromkeys(grant_types))
    if not grants:
        raise AdminError("give at least one grant type")
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise AdminError(f"unknown grant type {grant!r}; use {', '.join(GRANT_TYPES)}")
    if client_type not in ("public", "confidential"):
        raise AdminError("the client type is public or confidential")
    if client_type == "public" and "client_credentials" in grants:
        raise AdminError("a public client cannot use client_credentials (RFC 6749 §4.4)")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise AdminError("refresh_token needs authorization_code (client_credentials gets no refresh token)")
    if client_type == "public" and introspect_all:
        raise AdminError("only a confidential client may introspect other clients' tokens")
    uris = tuple(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris))
    if "authorization_code" in grants and not uris:
        raise AdminError("authorization_code needs at least one --redirect-uri")
    if "authorization_code" not in grants and uris:
        raise AdminError("redirect URIs are only for clients using authorization_code")
    secret = generate_client_secret() if client_type == "confidential" else None
    record = ClientRecord(
        client_id=client_id,
        name=name or client_id,
        client_type=client_type,
        secret_hash=hasher.hash(secret) if secret is not None else None,
        grant_types=grants,
        scopes=_scopes(scopes, known_scopes),
        redirect_uris=uris,
        claims=_claims(claims),
        introspect_all=introspect_all,
        created_at=now,
    )
    try:
        store.add_client(record)
    except StoreConflict:
        raise AdminError(f"a client {client_id!r} already exists") from None
    return record, secret


def new_user(
    store: IssuerStore,
    hasher: PasswordHasher,
    *,
    username: str,
    password: str,
    now: float,
    claims: Mapping[str, Any] | None = None,
) -> UserRecord:
    _name(username, "username")
    if not MIN_PASSWORD <= len(password) <= 1024:
        raise AdminError(f"the password must have {MIN_PASSWORD} to 1024 characters")
    record = UserRecord(username, hasher.hash(password), _claims(claims), now)
    try:
        store.add_user(record)
    except StoreConflict:
        raise AdminError(f"a user {username!r} already exists") from None
    return record


async def publish_revocations(revocations: RevocationStore, revoked: Revoked) -> None:
    """Tell the gateways (through ``auth.revocation.store``) to refuse these access tokens."""
    for jti, until in revoked:
        await revocations.revoke("jti", jti, until)
