"""The admin listener's credential: one bearer token, read once at start.

``admin.token_file`` (a path, relative to the policy's folder) or
``admin.token_env`` (an environment variable) holds the token; surrounding
whitespace is ignored. Both are read when the listener is built, so a
missing file or variable stops the start with an error naming the setting,
instead of a listener that refuses everyone. Without either, the policy
only allows a loopback listener (:class:`apishield.config.audit.AdminPolicy`)
and every local process is trusted, as with a database's local socket.

A request presents ``Authorization: Bearer <token>``. The check compares
SHA-256 digests with :func:`hmac.compare_digest`, so it takes the same time
whatever the presented token's length or content. A refusal is a
``401`` problem (RFC 9457) with ``WWW-Authenticate: Bearer`` (RFC 6750 §3).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from apishield.config.audit import AdminPolicy
from apishield.problem import Problem

__all__ = ["AdminConfigError", "AdminCredential", "AdminUnauthorized", "load_credential"]

_MIN_LENGTH = 16


class AdminConfigError(ValueError):
    """The admin listener cannot start as configured; the message names the setting."""


class AdminUnauthorized(Problem):
    status = 401
    slug = "admin-unauthorized"
    title = "Admin credential required"


class AdminCredential:
    """Checks an ``Authorization`` header value against the configured token (``None``: open)."""

    def __init__(self, token: str | None) -> None:
        self._digest = hashlib.sha256(token.encode()).digest() if token is not None else None

    @property
    def required(self) -> bool:
        return self._digest is not None

    def accepts(self, authorization: bytes | None) -> bool:
        if self._digest is None:
            return True
        presented = b""
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                presented = value.strip()
        return hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest) and bool(presented)


def load_credential(policy: AdminPolicy, base_dir: Path) -> AdminCredential:
    """The token in ``admin.token_file`` or ``admin.token_env``; :class:`AdminConfigError` if unusable."""
    if policy.token_env is not None:
        value = os.environ.get(policy.token_env)
        if value is None or not value.strip():
            raise AdminConfigError(
                f"admin.token_env: environment variable {policy.token_env} is not set or empty"
            )
        return AdminCredential(_checked(value.strip(), "admin.token_env"))
    if policy.token_file is not None:
        path = Path(policy.token_file)
        path = path if path.is_absolute() else base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise AdminConfigError(f"admin.token_file: cannot read {policy.token_file}: {reason}") from None
        if not text.strip():
            raise AdminConfigError(f"admin.token_file: {policy.token_file} is empty")
        return AdminCredential(_checked(text.strip(), "admin.token_file"))
    return AdminCredential(None)


def _checked(token: str, setting: str) -> str:
    if len(token) < _MIN_LENGTH:
        raise AdminConfigError(f"{setting}: the admin token is shorter than {_MIN_LENGTH} characters")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in token):
        raise AdminConfigError(f"{setting}: the admin token must be printable ASCII without spaces")
    return token
