"""The detection engine: audit events in, signals out, sans I/O.

:class:`DetectionEngine` runs the enabled detectors over a stream of OCSF
events (API Activity from the gateway, Authentication from the issuer)::

    engine = DetectionEngine(policy.detection.detectors)
    signals = engine.observe(events)      # any batch size, in time order

* **Event time only.** Every window, warm-up and idle timeout is measured
  with the events' ``time`` (epoch ms), never the wall clock, so the same
  events give the same signals live, replayed from storage, in one batch or
  in a thousand, and in the simulator's compressed days.
* **One extraction per event.** :func:`apishield.detect.facts.extract` walks
  the nested event once; the engine then calls only the detectors the event
  concerns (an event with no object id never reaches the enumeration
  detector, only 429s reach the rate-limit one, and so on).
* **Bounded memory.** Every detector's per-key state is bounded by
  ``max_keys`` and forgotten after ``idle_timeout`` without events; the
  engine sweeps idle keys four times per idle period, at event times, so
  the sweep's cost is spread over the events in between.
* **Measured cost.** :meth:`DetectionEngine.stats` reports events seen and
  nanoseconds spent in :meth:`observe` (extraction included).

Events should arrive roughly in time order (the audit writer's order); a
late event is counted in the window it lands in.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apishield.config.detectors import DetectorsPolicy
from apishield.detect.baseline import KeyedStates
from apishield.detect.credentials import CredentialStuffingDetector
from apishield.detect.detector import SAMPLE_IDS as _SAMPLE_IDS
from apishield.detect.detector import Detector
from apishield.detect.enumeration import EnumerationDetector
from apishield.detect.facts import API, AUTH, extract
from apishield.detect.pressure import RateLimitPressureDetector
from apishield.detect.principal import PrincipalState
from apishield.detect.scraping import ScrapingDetector
from apishield.detect.shadow import ShadowApiDetector
from apishield.detect.signal import Signal
from apishield.detect.tokens import TokenSharingDetector
from apishield.detect.volume import VolumeDetector

__all__ = ["DetectionEngine", "EngineStats"]

_REUSE = frozenset({"refresh_token_reuse", "authorization_code_reuse"})


@dataclass(frozen=True)
class EngineStats:
    events: int
    skipped: int
    signals: int
    cost_ns: int
    keys: dict[str, int] = field(default_factory=dict)
    evicted: int = 0

    @property
    def us_per_event(self) -> float:
        return self.cost_ns / self.events / 1000 if self.events else 0.0


class DetectionEngine:
    """Runs the enabled detectors of a :class:`DetectorsPolicy` over audit events."""

    def __init__(self, policy: DetectorsPolicy | None = None) -> None:
        policy = policy or DetectorsPolicy()
        self.policy = policy
        idle = int(policy.idle_timeout * 1000)
        keys = policy.max_keys
        self.idle_ms = idle
        self.principals: KeyedStates[str, PrincipalState] = KeyedStates(keys, idle)
        self.enumeration = (
            EnumerationDetector(policy.enumeration, keys, idle) if policy.enumeration.enabled else None
        )
        self.credentials = (
            CredentialStuffingDetector(policy.credential_stuffing, keys, idle)
            if policy.credential_stuffing.enabled
            else None
        )
        self.tokens = (
            TokenSharingDetector(policy.token_sharing, keys, idle) if policy.token_sharing.enabled else None
        )
        self.scraping = ScrapingDetector(policy.scraping, keys, idle) if policy.scraping.enabled else None
        self.volume = VolumeDetector(policy.volume, keys, idle) if policy.volume.enabled else None
        self.shadow = ShadowApiDetector(policy.shadow_api, keys, idle) if policy.shadow_api.enabled else None
        self.pressure = (
            RateLimitPressureDetector(policy.rate_limit_pressure, keys, idle)
            if policy.rate_limit_pressure.enabled
            else None
        )
        self.detectors: list[Detector] = [
            d
            for d in (
                self.enumeration,
                self.credentials,
                self.tokens,
                self.scraping,
                self.volume,
                self.shadow,
                self.pressure,
            )
            if d is not None
        ]
        self.sweep_every = max(idle // 4, 1)
        self.next_sweep: int | None = None
        self.clock = 0  # the latest event time seen
        self.events = 0
        self.skipped = 0
        self.signals = 0
        self.cost_ns = 0

    def observe(self, events: Iterable[dict[str, Any]]) -> list[Signal]:
        """Feed events (in time order); returns the signals they raised, in event order."""
        started = _time.perf_counter_ns()
        out: list[Signal] = []
        enumeration = self.enumeration
        credentials = self.credentials
        tokens = self.tokens
        scraping = self.scraping
        volume = self.volume
        shadow = self.shadow
        pressure = self.pressure
        table = self.principals
        principals = table.data
        seen = 0
        skipped = 0
        for event in events:
            seen += 1
            f = extract(event)
            if f is None:
                skipped += 1
                continue
            t = f.time
            if t > self.clock:
                self.clock = t
                if self.next_sweep is None:
                    self.next_sweep = t + self.sweep_every
                elif t >= self.next_sweep:
                    self._sweep(t)
            if f.kind == API:
                p = principals.get(f.principal)
                if p is None:
                    p = table.admit(f.principal, PrincipalState(t))
                else:
                    p.seen = t
                status = f.status
                # the principal's recent event ids, for signals: once it is busy (three calls of an
                # operation within about a minute) or refused; a quiet principal's are never needed
                busy = volume.observe(f, p, out) if volume is not None else 3
                if busy >= 3 or not f.success:
                    p.ids[p.count % _SAMPLE_IDS] = f.uid
                    p.count += 1
                if f.success:
                    if scraping is not None and (f.records or f.length):
                        scraping.observe(f, p, out)
                elif status == 401 and credentials is not None:
                    credentials.observe(f, out)
                if pressure is not None and (status == 429 or p.pressure is not None):
                    pressure.observe(f, p, out)
                if tokens is not None and (f.token is not None or f.api_key is not None):
                    tokens.observe(f, p, out)
                if enumeration is not None and (f.denied or p.routes is not None) and f.route is not None:
                    enumeration.observe(f, p, out)
                if shadow is not None and f.operation == "undocumented":
                    shadow.observe(f, p, out)
            elif f.kind == AUTH:
                if f.detail in _REUSE:
                    if tokens is not None:
                        tokens.replay(f, out)
                elif credentials is not None:
                    credentials.observe(f, out)
        self.events += seen
        self.skipped += skipped
        self.signals += len(out)
        self.cost_ns += _time.perf_counter_ns() - started
        return out

    def _sweep(self, now: int) -> None:
        self.principals.sweep(now - self.idle_ms)
        for detector in self.detectors:
            detector.sweep(now)
        self.next_sweep = now + self.sweep_every

    def stats(self) -> EngineStats:
        keys = {"principals": len(self.principals)}
        if self.tokens is not None:
            keys["tokens"] = len(self.tokens.states)
        if self.credentials is not None:
            keys["addresses"] = len(self.credentials.ips)
            keys["accounts"] = len(self.credentials.accounts)
        evicted = self.principals.evicted + sum(getattr(d, "evicted", 0) for d in self.detectors)
        return EngineStats(
            events=self.events,
            skipped=self.skipped,
            signals=self.signals,
            cost_ns=self.cost_ns,
            keys=keys,
            evicted=evicted,
        )
