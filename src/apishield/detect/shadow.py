"""Shadow-API probing: bursts of requests to paths that no documented operation matches.

**What it watches.** Requests the gateway answered without an operation
(``api.operation`` ``undocumented``: no path of the OpenAPI document
matched, or the method is not one of the path's), per principal, in a
sliding window (``window``, 5 minutes): how many, and how many distinct
paths. The gateway's router refuses such a request before authentication
runs, so its event is anonymous and the principal is the client address
(behind carrier-grade NAT, many people's).

**The signal.** ``min_paths`` distinct undocumented paths, or
``min_requests`` undocumented requests whatever the paths. Distinct paths
are the signature of a wordlist (``/admin``, ``/v1/internal/debug``,
``/v2/customers``, ``/.env``...) looking for endpoints the service has
but does not document: the "shadow" and "zombie" APIs that discovery
products list (ecosystem research §2.1, Salt). An old app that keeps
calling one removed endpoint makes many requests to one path: the request
bound catches it only if it hammers.

**Baseline.** None is learnt: a documented API answers legitimate clients
on documented paths, so the expected rate of undocumented requests is
near zero and an absolute bar is both explainable and stable. There is no
warm-up for the same reason.

**Why these defaults.** The reference traffic's undocumented requests come
from outdated app versions (one removed path, once per session, from
addresses that carriers share among many users); twelve distinct paths in
five minutes is beyond any of them, and a scanner at a few requests a
second crosses it within seconds. Sixty requests to any paths in five
minutes is the bound for a client hammering one.
"""

from __future__ import annotations

from typing import Any

from apishield.config.detectors import ShadowApiPolicy
from apishield.detect.detector import Detector, ending_with, sample
from apishield.detect.facts import Facts, path_of
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["ShadowApiDetector", "ShadowState"]

_MAX_PATHS = 256


class ShadowState:
    __slots__ = ("paths", "prev_paths", "prev_requests", "requests", "start")

    def __init__(self, time: int) -> None:
        self.start = time
        self.requests = 0
        self.paths: dict[str, None] = {}
        self.prev_requests = 0
        self.prev_paths = 0


class ShadowApiDetector(Detector):
    name = "shadow_api"

    def __init__(self, policy: ShadowApiPolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> None:
        """A request no documented operation matched."""
        time = f.time
        s = p.shadow
        if s is None:
            s = p.shadow = ShadowState(time)
        elif time - s.start >= self.window:
            elapsed = time - s.start
            if elapsed < 2 * self.window:
                s.prev_requests, s.prev_paths = s.requests, len(s.paths)
                s.start = time - elapsed % self.window
            else:
                s.prev_requests = s.prev_paths = 0
                s.start = time
            s.requests = 0
            s.paths = {}
        s.requests += 1
        path = path_of(f)
        if len(s.paths) < _MAX_PATHS:
            s.paths[path] = None
        pol = self.p
        requests = s.requests
        paths = len(s.paths)
        remaining = self.window - (time - s.start)
        if remaining > 0:
            requests += s.prev_requests * remaining // self.window
            paths += s.prev_paths * remaining // self.window
        if paths < pol.min_paths and requests < pol.min_requests:
            return
        key = f.principal
        repeat = self.may_signal(key, time, pol.severity)
        if not repeat:
            return
        evidence: dict[str, Any] = {
            "requests": requests,
            "distinct_paths": paths,
            "window_s": self.window // 1000,
            "thresholds": {"paths": pol.min_paths, "requests": pol.min_requests},
            "sample_paths": sample(s.paths),
            "ip": f.ip,
            "user_agent": f.agent,
            "last_status": f.status,
        }
        summary = (
            f"{key} sent {requests} requests to {paths} undocumented paths in "
            f"{self.window // 60000} min (e.g. {path[:80]})"
        )
        self.emit(
            out,
            key,
            time,
            pol.severity,
            summary,
            evidence,
            ending_with(p.recent(), f.uid),
            repeat,
            scope="undocumented",
        )
