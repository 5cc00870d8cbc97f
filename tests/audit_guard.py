"""A pytest plugin: no audit event written during the test run contains a secret the tests used.

It watches both sides for the whole session:

* every event any :class:`~apishield.core.stages.audit.AuditQueue` receives
  (the gateway's, the middleware's, the issuer's: all sinks are fed from
  these queues), reduced to the credential-shaped pieces of its strings;
* every secret the run produced or used: values from ``secrets.token_urlsafe``
  and ``secrets.token_hex`` of 16 bytes or more (refresh tokens,
  authorization codes, API key secrets, client secrets, CSRF keys), every
  password hashed or verified by the issuer's hasher, and anything shaped
  like a JWS compact serialisation or an apishield API key.

At the end of the session the pieces are compared with the secrets; any
match fails the run with the event and the kind of secret (not the value).
``test_secret_guard.py`` checks that the guard does catch a planted secret.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apishield.auth.apikeys import PREFIX as API_KEY_PREFIX

_PIECE = re.compile(r"[A-Za-z0-9_\-.~+/=]{12,}")
_JWS = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}")
_API_KEY = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,}")


class Guard:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}  # value -> kind
        self.pieces: dict[str, str] = {}  # piece -> event uid
        self.shaped: list[tuple[str, str]] = []  # (kind, event uid): credential-shaped strings in events
        self.events = 0

    def secret(self, value: str, kind: str) -> None:
        if len(value) >= 12:
            self.secrets.setdefault(value, kind)

    def event(self, event: dict[str, Any]) -> None:
        self.events += 1
        uid = str(event.get("metadata", {}).get("uid", "?"))
        for text in _strings(event):
            if _JWS.search(text):
                self.shaped.append(("a JWT", uid))
            if _API_KEY.search(text):
                self.shaped.append(("an API key", uid))
            for piece in _PIECE.findall(text):
                self.pieces.setdefault(piece, uid)
                for part in re.split(r"[.=+/~]", piece):
                    if len(part) >= 12:
                        self.pieces.setdefault(part, uid)

    def findings(self) -> list[str]:
        found = [f"{kind} in event {uid}" for kind, uid in self.shaped]
        for value, kind in self.secrets.items():
            uid = self.pieces.get(value)
            if uid is not None:
                found.append(f"{kind} (…{value[-4:]}) in event {uid}")
        return found


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)


GUARD = Guard()


def _wrap_random(name: str) -> None:
    original: Callable[..., str] = getattr(secrets, name)

    def wrapped(nbytes: int | None = None) -> str:
        value = original(nbytes)
        if nbytes is None or nbytes >= 16:
            GUARD.secret(value, f"a value of secrets.{name}")
        return value

    setattr(secrets, name, wrapped)


def pytest_configure(config: pytest.Config) -> None:
    from apishield.core.stages.audit import AuditQueue
    from apishield.issuer.passwords import PasswordHasher

    _wrap_random("token_urlsafe")
    _wrap_random("token_hex")

    emit = AuditQueue.emit

    def watched_emit(self: AuditQueue, event: dict[str, Any]) -> None:
        GUARD.event(event)
        emit(self, event)

    AuditQueue.emit = watched_emit  # type: ignore[method-assign]

    hash_ = PasswordHasher.hash
    verify = PasswordHasher.verify

    def watched_hash(self: PasswordHasher, password: str) -> str:
        GUARD.secret(password, "a password or client secret")
        return hash_(self, password)

    def watched_verify(self: PasswordHasher, stored: str, password: str) -> bool:
        GUARD.secret(password, "a password or client secret")
        return verify(self, stored, password)

    PasswordHasher.hash = watched_hash  # type: ignore[method-assign]
    PasswordHasher.verify = watched_verify  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if GUARD.events == 0:
        return
    found = GUARD.findings()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"audit guard: {GUARD.events} events scanned against {len(GUARD.secrets)} secrets: " + (
        f"{len(found)} leaks" if found else "no secret found"
    )
    if reporter is not None:
        reporter.write_line(line)
        for finding in found[:20]:
            reporter.write_line("  " + finding)
    if found and not getattr(session.config, "_guard_expected", False):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
