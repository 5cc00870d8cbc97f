"""What every detector shares: its policy's response, signal rate-limiting, bounded state.

A detector is a plain object with per-key state in :class:`KeyedStates` and
an ``observe(facts, out)`` method the engine calls for the events it is
interested in; it appends :class:`Signal` objects to ``out``. Detectors never
read the wall clock: every window and warm-up is measured in event time, so
replaying stored events gives the signals the live stream gave.

Signals are rate-limited per (detector, key): while a condition holds, a
detector would otherwise signal on every event. :meth:`Detector.may_signal`
lets one through when the key was not signalled within ``resignal_after``,
or when the severity rose since; ``evidence["repeat"]`` numbers the signals
of one episode (an episode ends when the key stayed quiet for twice
``resignal_after``), so the alerting side sees escalating evidence instead
of a flood.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from apishield.config.detectors import DetectorPolicy
from apishield.detect.signal import Signal

__all__ = ["SAMPLE_IDS", "Detector", "ending_with", "ring_values", "sample"]

SAMPLE_IDS = 8  # event ids kept per key for a signal's event_ids
_SAMPLE_VALUES = 10  # object ids, paths, addresses quoted in evidence


def sample(values: dict[str, Any] | list[str], limit: int = _SAMPLE_VALUES) -> list[str]:
    """The most recent ``limit`` values of an insertion-ordered collection, as a list."""
    items = list(values)
    return items[-limit:]


def new_ids() -> deque[str]:
    return deque(maxlen=SAMPLE_IDS)


def ending_with(ids: list[str], uid: str) -> list[str]:
    """``ids`` with ``uid`` (the event that tipped a signal) last, at most ``SAMPLE_IDS`` of them."""
    if ids and ids[-1] == uid:
        return ids
    return [*(i for i in ids if i != uid), uid][-SAMPLE_IDS:]


def ring_values(ring: list[str], count: int) -> list[str]:
    """The values of a ring of ``SAMPLE_IDS`` slots written ``count`` times, oldest first."""
    if count <= SAMPLE_IDS:
        return ring[:count]
    at = count % SAMPLE_IDS
    return ring[at:] + ring[:at]


class Detector:
    """Base class: response, signal rate-limiting and sweeping of a detector's state."""

    name: ClassVar[str] = ""

    def __init__(self, policy: DetectorPolicy, max_keys: int, idle_ms: int) -> None:
        self.policy = policy
        self.response: str | None = None if policy.response == "alert" else policy.response
        self.resignal_ms = int(policy.resignal_after * 1000)
        self.max_keys = max_keys
        self.idle_ms = idle_ms
        # key -> [time of the last signal, its severity, signals in this episode]
        self.signalled: dict[str, list[int]] = {}
        self.signals = 0

    def may_signal(self, key: str, time: int, severity: int) -> int:
        """0 if a signal on ``key`` now would repeat itself; else its number in the episode (1, 2...)."""
        last = self.signalled.get(key)
        if last is None:
            self.signalled[key] = [time, severity, 1]
            return 1
        elapsed = time - last[0]
        if elapsed < self.resignal_ms and severity <= last[1]:
            return 0
        repeat = last[2] + 1 if elapsed < 2 * self.resignal_ms else 1
        last[0], last[1], last[2] = time, severity, repeat
        return repeat

    def emit(
        self,
        out: list[Signal],
        key: str,
        time: int,
        severity: int,
        summary: str,
        evidence: dict[str, Any],
        event_ids: Any,
        repeat: int,
        scope: str | None = None,
        response: bool = True,
    ) -> None:
        evidence["repeat"] = repeat
        self.signals += 1
        out.append(
            Signal(
                detector=self.name,
                key=key,
                severity=severity,
                time_ms=time,
                summary=summary,
                evidence=evidence,
                event_ids=tuple(event_ids),
                response=self.response if response else None,
                scope=scope,
            )
        )

    def sweep(self, now: int) -> None:
        """Forget keys idle since ``now - idle_ms`` and signal records older than both bounds."""
        cutoff = now - max(self.idle_ms, 2 * self.resignal_ms)
        stale = [k for k, v in self.signalled.items() if v[0] < cutoff]
        for k in stale:
            del self.signalled[k]
        if len(self.signalled) > self.max_keys:
            for k in list(self.signalled)[: len(self.signalled) - self.max_keys]:
                del self.signalled[k]

    def keys(self) -> int:
        """Keys with state (for memory accounting)."""
        return 0
