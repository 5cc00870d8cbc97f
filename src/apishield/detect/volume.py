"""Volume anomalies: requests per principal and operation far above its EWMA baseline and peers' quantiles.

**What it watches.** Every request, per principal and operation
(``api.operation``), counted per bucket (``bucket``, one minute) with the
previous bucket weighted in (a sliding-window estimate, so a burst that
straddles a bucket boundary is seen whole).

**Baselines.** As Cloudflare's volumetric abuse detection, per endpoint and
per session rather than per address (ecosystem research §2.1, §2.3):

* *own*: an EWMA (``alpha``) of the requests in the buckets where the
  principal called the operation, judged as ``mean + 3 sd`` (the standard
  deviation at least Poisson's) once ``warmup`` such buckets were seen.
  Active buckets only: a user who opens the app three times a day has a
  baseline of its rate while active, not of a day that is mostly zeros;
* *peers'*: the 99th percentile of the same counts over the principals of
  its peer group (client and roles) and the operation, from a log-binned
  histogram, once ``peer_warmup`` buckets were seen. Each principal adds at
  most one bucket an hour, so the quantile is one over principals: a single
  busy principal (a script started before the group's baseline was warm)
  cannot make the group's p99 its own.

**The signal.** A bucket with at least ``min_requests`` requests that is
above ``own_factor`` times its own baseline and ``peer_factor`` times its
peers' p99, whichever are warm. With neither warm, only
``ceiling_requests`` judges: a new principal of a new client is not judged
by a baseline that does not exist yet. A bucket's threshold is computed
once, when the bucket first reaches the floor (``min_requests``), so most
events cost a dict lookup, an increment and a comparison. Buckets that
crossed their threshold are left out of both baselines.

**Why these defaults.** A customer of the reference traffic calls an
operation a few times a minute at most (an app that polls a pending
order's status, or retries on a flaky network, a few more); a partner's
batch job calls one tens of times a minute, steadily, and its baseline is
its own. Thirty a minute, three times one's own ``mean + 3 sd`` and four
times the peers' p99, is beyond every legitimate minute of the simulated
weeks, and a script that calls an operation every second crosses it within
its first minute. The peer group's p99 is trusted after fifty buckets: a
thin estimate (the maximum, near enough), which errs high.
"""

from __future__ import annotations

from typing import Any

from apishield.config.detectors import VolumePolicy
from apishield.detect.baseline import Ewma, Quantiles
from apishield.detect.detector import Detector, ending_with
from apishield.detect.facts import Facts
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["VolumeDetector", "VolumeState"]

_MAX_OPERATIONS = 256  # operations tracked per principal
PEER_EVERY_MS = 3_600_000  # a principal adds at most one bucket an hour to its peer group's histogram


class VolumeState(Ewma):
    """A principal's current bucket of one operation; itself the EWMA of its earlier active buckets."""

    __slots__ = ("bar", "count", "flagged", "peer", "peer_at", "peer_group", "prev", "start")

    def __init__(self, time: int, alpha: float, peer: Quantiles, peer_group: str) -> None:
        self.alpha = alpha
        self.mean = self.var = 0.0
        self.n = 0
        self.start = time
        self.count = 0
        self.prev = 0
        self.peer = peer
        self.peer_at = time - PEER_EVERY_MS  # when this principal last added a bucket to its peers'
        self.peer_group = peer_group
        self.bar = -1  # computed when first needed in a bucket
        self.flagged = False  # crossed its bar: kept out of the baselines


class VolumeDetector(Detector):
    name = "volume"

    def __init__(self, policy: VolumePolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.bucket = int(policy.bucket * 1000)
        self.peers: dict[tuple[str, str], Quantiles] = {}
        self.names: dict[str, str] = {}
        # every bar is at least this: below it, nothing is computed
        self.floor = min(policy.min_requests, policy.ceiling_requests)

    def _bar(self, s: VolumeState) -> int:
        """The bucket's threshold, from the baselines as they were when it opened (computed when needed)."""
        p = self.p
        own_warm = s.n >= p.warmup
        peer_warm = s.peer.seen >= p.peer_warmup
        if not own_warm and not peer_warm:
            s.bar = p.ceiling_requests
            return s.bar
        bar = float(p.min_requests)
        if own_warm:
            bar = max(bar, p.own_factor * s.high(3.0))
        if peer_warm:
            bar = max(bar, p.peer_factor * s.peer.value)
        s.bar = int(bar + 0.999)
        return s.bar

    def _new(self, f: Facts, p: PrincipalState, op: str) -> VolumeState:
        group = p.peer_group(f)
        peer_key = (group, op)
        peer = self.peers.get(peer_key)
        if peer is None:
            if len(self.peers) >= 4096:
                self.peers.clear()
            peer = self.peers[peer_key] = Quantiles()
        if len(p.ops) >= _MAX_OPERATIONS:
            p.ops.clear()
        return VolumeState(f.time, self.p.alpha, peer, group)

    def _name(self, op: str) -> str:
        """The one string object kept for an operation name (its dict lookups then compare by identity)."""
        if len(self.names) >= 65_536:
            self.names.clear()
        self.names[op] = op
        return op

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> int:
        """Count the request; returns the principal's requests of this operation in the last bucket or so."""
        time = f.time
        op = f.operation or "?"
        op = self.names.get(op) or self._name(op)
        s = p.ops.get(op)
        if s is None:
            s = p.ops[op] = self._new(f, p, op)
        elif time - s.start >= self.bucket:
            elapsed = time - s.start
            if s.flagged:
                s.flagged = False
            else:
                s.add(s.count)
                if time - s.peer_at >= PEER_EVERY_MS:
                    s.peer_at = time
                    s.peer.add(s.count)
            if elapsed < 2 * self.bucket:
                s.prev = s.count
                s.start = time - elapsed % self.bucket
            else:
                s.prev = 0
                s.start = time
            s.count = 0
            s.bar = -1
        s.count += 1
        count = s.count
        if count + s.prev < self.floor:
            return count + s.prev
        bar = s.bar if s.bar >= 0 else self._bar(s)
        if count + s.prev < bar:
            return count + s.prev
        remaining = self.bucket - (time - s.start)
        if remaining > 0 and s.prev:
            count += s.prev * remaining // self.bucket
        if count >= s.bar:
            s.flagged = True
            self._signal(f, p, s, op, count, out)
        return count

    def _signal(
        self, f: Facts, p: PrincipalState, s: VolumeState, op: str, count: int, out: list[Signal]
    ) -> None:
        pol = self.p
        time = f.time
        severity = pol.severity + (1 if count >= 10 * s.bar and pol.severity < 5 else 0)
        repeat = self.may_signal(f.principal, time, severity)
        if not repeat:
            return
        own_warm = s.n >= pol.warmup
        peer_warm = s.peer.seen >= pol.peer_warmup
        evidence: dict[str, Any] = {
            "operation": op,
            "requests": count,
            "bucket_s": self.bucket // 1000,
            "threshold": s.bar,
            "own_mean": round(s.mean, 2) if own_warm else None,
            "own_high": round(s.high(3.0), 2) if own_warm else None,
            "peer_group": s.peer_group,
            "peer_p99": round(s.peer.value, 2) if peer_warm else None,
            "status": f.status,
            "ip": f.ip,
        }
        basis = []
        if own_warm:
            basis.append(f"own mean {s.mean:.1f}")
        if peer_warm:
            basis.append(f"peers' p99 {s.peer.value:.1f}")
        summary = (
            f"{f.principal} called {op} {count} times in {self.bucket // 1000} s "
            f"({', '.join(basis) or 'no baseline yet'}; threshold {s.bar})"
        )
        self.emit(
            out,
            f.principal,
            time,
            severity,
            summary,
            evidence,
            ending_with(p.recent(), f.uid),
            repeat,
            scope=op,
        )
