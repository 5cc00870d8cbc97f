"""Liveness and readiness: is the process up, and should it be sent traffic?

``/healthz`` answers 200 while the process can answer at all (liveness: a
failing probe means restart it). ``/readyz`` answers 200 only when the
adapter has *started* (its owner calls :meth:`Readiness.started`; and not
yet :meth:`Readiness.stopping`, so a load balancer drains it during a
graceful stop) and every named check passes; otherwise 503 with the failing
checks' names in the JSON body::

    {"status": "fail", "failed": ["jwks"], "checks": {"started": "pass", "jwks": "fail"}}

A check is a name and a callable returning true when healthy; it may be a
coroutine function (a store ping), bounded by ``timeout`` seconds. A check
that raises or times out fails. Details stay in the logs: the body names
checks, never error text.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Check", "Readiness"]

logger = logging.getLogger("apishield.admin")

Probe = Callable[[], bool | Awaitable[bool]]


@dataclass(frozen=True)
class Check:
    """One named readiness condition."""

    name: str
    probe: Probe


class Readiness:
    def __init__(self, checks: Sequence[Check] = (), timeout: float = 2.0) -> None:
        names = [c.name for c in checks]
        if len(set(names)) != len(names) or "started" in names:
            raise ValueError(f"readiness check names must be distinct and not 'started': {names}")
        self.checks = list(checks)
        self.timeout = timeout
        self._started = False
        self._stopping = False

    def add(self, check: Check) -> None:
        if check.name == "started" or any(c.name == check.name for c in self.checks):
            raise ValueError(f"readiness check {check.name!r} already exists")
        self.checks.append(check)

    def started(self) -> None:
        """The adapter finished starting (its lifespan startup is complete)."""
        self._started = True

    def stopping(self) -> None:
        """The adapter is shutting down: report not ready from now on."""
        self._stopping = True

    @property
    def is_started(self) -> bool:
        return self._started and not self._stopping

    async def evaluate(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body) for ``/readyz``."""
        results = {"started": self.is_started}
        outcomes = await asyncio.gather(*(self._run(c) for c in self.checks))
        for check, ok in zip(self.checks, outcomes, strict=True):
            results[check.name] = ok
        failed = [name for name, ok in results.items() if not ok]
        body: dict[str, Any] = {
            "status": "pass" if not failed else "fail",
            "checks": {name: "pass" if ok else "fail" for name, ok in results.items()},
        }
        if failed:
            body["failed"] = failed
        return not failed, body

    async def _run(self, check: Check) -> bool:
        try:
            result = check.probe()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.timeout)
            return bool(result)
        except Exception as exc:  # a failing probe fails its check, nothing else
            logger.warning("readiness check %s failed: %s", check.name, str(exc)[:200] or type(exc).__name__)
            return False
