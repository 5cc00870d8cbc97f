"""Console sign-in: the admin token once, then a server-side session with its CSRF token.

The investigator pastes the admin token (``admin.token_file`` or
``admin.token_env``) into the sign-in form; it is checked by the listener's
:class:`~apishield.admin.credential.AdminCredential` (SHA-256 digests
compared in constant time). A success opens a :class:`Session`:

* its id is 32 random bytes, sent only in the ``apishield_console`` cookie
  (``HttpOnly; SameSite=Strict; Path=/console``, and ``Secure`` unless the
  listener is on loopback); the server keeps the SHA-256 of the id, never the
  id itself, in memory only (a restart signs everyone out);
* it ends after ``idle`` seconds without a request, ``absolute`` seconds
  after sign-in whatever the activity, or at sign-out;
* it holds a CSRF token (synchronizer pattern): every state-changing form
  carries it, and :meth:`Sessions.check_csrf` compares it in constant time.

Sign-in itself is protected by a double-submit token (a short-lived cookie
and the same value in the form), and failed attempts are throttled per
client address and in total (:class:`LoginThrottle`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from apishield.admin.credential import AdminCredential

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "PATH",
    "LoginThrottle",
    "Session",
    "Sessions",
    "cookie",
    "expired_cookie",
    "is_loopback",
]

COOKIE = "apishield_console"
LOGIN_COOKIE = "apishield_console_login"
PATH = "/console"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
MAX_SESSIONS = 256


def is_loopback(host: str) -> bool:
    """The hosts the admin policy accepts without a credential: cookies need no ``Secure`` there."""
    return host in {"127.0.0.1", "::1", "localhost"} or host.startswith("127.")


def cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> bytes:
    """A ``Set-Cookie`` value scoped to the console."""
    parts = [f"{name}={value}", f"Path={PATH}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode()


def expired_cookie(name: str, *, secure: bool) -> bytes:
    return cookie(name, "", secure=secure, max_age=0)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass
class Session:
    csrf: str
    created: float
    seen: float
    label: str = "admin"  # who acknowledged or blocked, in the stores and the log
    flash: list[str] = field(default_factory=list)  # one-shot messages shown on the next page


class Sessions:
    """The open sessions of this process, and the sign-in check."""

    def __init__(
        self,
        credential: AdminCredential,
        *,
        idle: float = IDLE_SECONDS,
        absolute: float = ABSOLUTE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credential = credential
        self.idle = idle
        self.absolute = absolute
        self.clock = clock
        self._open: OrderedDict[bytes, Session] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False without a configured admin token: the console then refuses to serve."""
        return self.credential.required

    def token_matches(self, presented: str) -> bool:
        if not self.enabled or not presented:
            return False
        return self.credential.accepts(b"Bearer " + presented.strip().encode("utf-8", "replace"))

    def open(self) -> tuple[str, Session]:
        """A new session: its id (for the cookie only) and its state."""
        self._sweep()
        while len(self._open) >= MAX_SESSIONS:
            self._open.popitem(last=False)  # the oldest sign-in goes first
        ident = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(csrf=secrets.token_urlsafe(32), created=now, seen=now)
        self._open[_digest(ident)] = session
        return ident, session

    def get(self, ident: str | None) -> Session | None:
        """The live session an id names (its idle timer restarted), or None."""
        if not ident:
            return None
        key = _digest(ident)
        session = self._open.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen >= self.idle or now - session.created >= self.absolute:
            del self._open[key]
            return None
        session.seen = now
        return session

    def close(self, ident: str | None) -> None:
        if ident:
            self._open.pop(_digest(ident), None)

    def __len__(self) -> int:
        return len(self._open)

    @staticmethod
    def check_csrf(session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())

    def _sweep(self) -> None:
        now = self.clock()
        for key in [
            k for k, s in self._open.items() if now - s.seen >= self.idle or now - s.created >= self.absolute
        ]:
            del self._open[key]


class LoginThrottle:
    """Failed sign-ins: at most ``per_address`` per address and ``overall`` in total per ``window``.

    An address past its share, or everyone once the total is reached, is
    refused (429) until the oldest failure leaves the window, whether the
    token presented would have been right or not.
    """

    def __init__(
        self,
        per_address: int = 5,
        overall: int = 50,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 4096,
    ) -> None:
        self.per_address = per_address
        self.overall = overall
        self.window = window
        self.clock = clock
        self.max_addresses = max_addresses
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def _trim(self, failures: deque[float], now: float) -> None:
        while failures and now - failures[0] >= self.window:
            failures.popleft()

    def retry_after(self, address: str) -> int:
        """Seconds before ``address`` may try again; 0 when it may now."""
        now = self.clock()
        self._trim(self._all, now)
        waits = []
        if len(self._all) >= self.overall:
            waits.append(self.window - (now - self._all[0]))
        failures = self._by_address.get(address)
        if failures is not None:
            self._trim(failures, now)
            if len(failures) >= self.per_address:
                waits.append(self.window - (now - failures[0]))
        return max(1, int(max(waits)) + 1) if waits else 0

    def failed(self, address: str) -> None:
        now = self.clock()
        self._all.append(now)
        failures = self._by_address.pop(address, None) or deque()
        failures.append(now)
        self._by_address[address] = failures
        while len(self._by_address) > self.max_addresses:
            self._by_address.popitem(last=False)
