"""Password hashes for client secrets and user passwords (argon2id, RFC 9106).

Client secrets (RFC 6749 §2.3.1) and user passwords are stored only as
argon2id hashes (RFC 9106 §3; cost from :class:`PasswordHashSettings`). A
verification costs about 0.1 s of CPU by design, which is right for a sign-in
and wrong for every ``client_credentials`` request of a busy client, so
:class:`SecretVerifier` remembers a *successful* verification for a few
minutes: the cache key is an HMAC of the client id and the presented secret
under a random per-process key (the secret itself is never kept), and an entry
only counts while the client's stored hash is still the one it was verified
against, so a changed secret or a revoked client takes effect at once.

Unknown accounts cost the same as known ones (:meth:`PasswordHasher.dummy_verify`)
so response times do not tell which usernames exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from apishield.issuer.settings import PasswordHashSettings

__all__ = ["PasswordHasher", "SecretVerifier", "generate_client_secret"]


def generate_client_secret() -> str:
    """A new client secret: 256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


class PasswordHasher:
    """argon2id hashing with the configured cost; verification reads the cost from the hash."""

    def __init__(self, settings: PasswordHashSettings | None = None) -> None:
        s = settings or PasswordHashSettings()
        self._hasher = argon2.PasswordHasher(
            time_cost=s.time_cost,
            memory_cost=s.memory_cost_kib,
            parallelism=s.parallelism,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def dummy_verify(self, password: str) -> bool:
        """Spend the time of one verification, for an account that does not exist; always False."""
        if self._dummy is None:
            self._dummy = self.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)
        return False


class SecretVerifier:
    """Verifies client secrets, remembering recent successes (see the module docstring)."""

    def __init__(self, hasher: PasswordHasher, ttl: float = 300.0, max_entries: int = 10_000) -> None:
        self.hasher = hasher
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._ok: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _fingerprint(self, client_id: str, secret: str) -> bytes:
        message = client_id.encode("utf-8") + b"\x00" + secret.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def verify(self, client_id: str, secret: str, stored_hash: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        fingerprint = self._fingerprint(client_id, secret)
        hit = self._ok.get(fingerprint)
        if hit is not None and hit[1] > now and hmac.compare_digest(hit[0], stored_hash):
            return True
        if not self.hasher.verify(stored_hash, secret):
            return False
        with self._lock:
            if len(self._ok) >= self.max_entries:
                self._ok.clear()
            self._ok[fingerprint] = (stored_hash, now + self.ttl)
        return True
