"""Throttling sign-in attempts per account and per client address (RFC 9700 §4.5 asks for
protection of user credentials; OWASP ASVS 2.2.1 "anti-automation").

A failed sign-in counts against the username given (known or not, so the
throttle reveals nothing about which accounts exist) and against the client's
IP address. Once either has ``max_failures`` failures within ``window``
seconds, further attempts are refused without checking the password until the
oldest failure leaves the window. A successful sign-in clears its account's
count, not the address's.

The counts live in memory (per issuer process) and are bounded: when more
than ``max_keys`` addresses or accounts are tracked, the least recently
failed are forgotten. Known limit: whoever knows a username can keep that
account throttled; the address limit stops one address from doing it to many.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from apishield.issuer.settings import LoginThrottleSettings

__all__ = ["LoginThrottle"]


class _Window:
    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self.failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self.failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float:
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[-self.limit] + self.window - now

    def fail(self, key: str, now: float) -> None:
        times = self._recent(key, now)
        if times is None:
            times = self.failures[key] = deque(maxlen=self.limit)
            while len(self.failures) > self.max_keys:
                self.failures.popitem(last=False)
        else:
            self.failures.move_to_end(key)
        times.append(now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)


class LoginThrottle:
    def __init__(self, settings: LoginThrottleSettings, max_keys: int = 100_000) -> None:
        self._accounts = _Window(settings.max_failures_per_account, settings.window, max_keys)
        self._addresses = _Window(settings.max_failures_per_ip, settings.window, max_keys)
        self._lock = threading.Lock()

    @staticmethod
    def _account(username: str) -> str:
        return username.strip().casefold()[:200]

    def retry_after(self, username: str, address: str, now: float) -> float:
        """Seconds until an attempt for ``username`` from ``address`` is allowed (0 = now)."""
        with self._lock:
            return max(
                self._accounts.retry_after(self._account(username), now),
                self._addresses.retry_after(address, now),
            )

    def failed(self, username: str, address: str, now: float) -> None:
        with self._lock:
            self._accounts.fail(self._account(username), now)
            self._addresses.fail(address, now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._accounts.clear(self._account(username))
