"""API keys: format, hashing and verification (the sans-IO part).

A key is ``ask_<id>_<secret>``: ``id`` (12 characters) is public and used to
look the key up; ``secret`` (43 characters, 256 random bits) is shown once,
when the key is created, and only its SHA-256 is stored. A password hash
(argon2, scrypt) protects low-entropy secrets; a 256-bit random secret
needs none, and SHA-256 keeps verification cheap. Hashes are compared in
constant time. Keys expire, can be revoked, and record when they were
last used.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["APIKeyRecord", "generate_key", "hash_secret", "parse_key"]

PREFIX = "ask_"
_FORMAT = re.compile(r"ask_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class APIKeyRecord:
    key_id: str
    client: str
    scopes: frozenset[str]
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    description: str = ""

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def generate_key() -> tuple[str, str, str]:
    """A new key: (full key to show once, key id, secret hash to store)."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}{key_id}_{secret}", key_id, hash_secret(secret)


def parse_key(value: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _FORMAT.fullmatch(value)
    return (m.group(1), m.group(2)) if m else None
