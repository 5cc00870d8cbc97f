"""Scraping and exfiltration: records or bytes returned to a principal far above its own and its peers'.

**What it watches.** Every successful answer, per principal: the records it
returned (``unmapped.records``: the length of a JSON array body, 1 for an
object) and its bytes (``http_response.length``), summed over a sliding
window (``window``, 5 minutes); and the distinct objects read (the path
parameters of successful requests), for the coverage of the id space.

**Baselines.** Two, both learnt from closed windows in which the principal
was active:

* its *own*: an EWMA of records and of bytes per active window, judged as
  ``mean + 3 sd`` (the standard deviation at least Poisson's), after
  ``warmup`` active windows;
* its *peers'*: the 99th percentile of records and bytes per active window
  over every principal of its peer group (the client and the roles: mobile
  customers, support agents, one partner's jobs), after ``peer_warmup``
  windows of the group.

**The signal.** A window's records (or bytes) above ``min_records`` (or
``min_bytes``) *and* above ``own_factor`` times its own baseline *and* above
``peer_factor`` times its peers'. Both, because each alone misleads: a
partner's nightly export is far above the customers' but not above its
own; a support agent who reads fifty customers an hour is far above her
customers' but not above other agents'. A principal without a warm own
baseline is judged by its peers; with neither warm, only by
``ceiling_records``. The coverage of the id space goes in the evidence: the
distinct objects read in the window and how densely they fill the span of
their numeric ids (1.0 when every id from the lowest to the highest was
read, as a crawler does; a support agent's customers are scattered). Fifty
or more objects at a density of one half or more raise the severity.

**Why these defaults.** Five minutes holds a partner's batch run and a
support agent's few tickets; a factor of four over one's own ``mean + 3 sd``
and three over the peers' p99 leave the reference traffic's heaviest
legitimate windows (the morning peak, a partner's hourly full sync) inside
the bar, and fifty records is more than a customer's whole data. A scraper
at machine speed (a few requests a second, or pages of a hundred) crosses
it within a minute. Salt and Noname baseline response sizes per identity
the same way (ecosystem research §2.2).
"""

from __future__ import annotations

from typing import Any

from apishield.config.detectors import ScrapingPolicy
from apishield.detect.baseline import Ewma, Quantiles
from apishield.detect.detector import Detector
from apishield.detect.facts import Facts, object_of
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal

__all__ = ["ScrapingDetector", "ScrapingState"]

_MAX_OBJECTS = 4096  # distinct objects counted per key and window


class _Peer:
    __slots__ = ("bytes", "name", "records")

    def __init__(self, name: str) -> None:
        self.name = name
        self.records = Quantiles()
        self.bytes = Quantiles()


class ScrapingState:
    __slots__ = (
        "bar_bytes",
        "bar_records",
        "bytes",
        "checked",
        "coverage",
        "flagged",
        "objects",
        "own_bytes",
        "own_records",
        "peer",
        "prev_bytes",
        "prev_records",
        "records",
        "start",
    )

    def __init__(self, time: int, alpha: float, peer: _Peer) -> None:
        self.start = time
        self.records = 0
        self.bytes = 0
        self.prev_records = 0
        self.prev_bytes = 0
        self.objects: dict[str, None] = {}
        self.own_records = Ewma(alpha)
        self.own_bytes = Ewma(alpha)
        self.peer = peer
        self.bar_records = -1  # computed when first needed in a window
        self.bar_bytes = -1
        self.checked = 0  # objects when coverage was last computed
        self.coverage = 0.0
        self.flagged = False  # crossed its bar: kept out of the baselines


class ScrapingDetector(Detector):
    name = "scraping"

    def __init__(self, policy: ScrapingPolicy, max_keys: int, idle_ms: int) -> None:
        super().__init__(policy, max_keys, idle_ms)
        self.p = policy
        self.window = int(policy.window * 1000)
        self.peers: dict[str, _Peer] = {}
        # every bar is at least this: below it, nothing is computed
        self.floor_records = min(policy.min_records, policy.ceiling_records)
        self.floor_bytes = min(policy.min_bytes, policy.ceiling_records * 1024)

    def _bars(self, s: ScrapingState) -> None:
        """The window's thresholds, from the baselines as they were when it opened (computed when needed)."""
        p = self.p
        own_warm = s.own_records.n >= p.warmup
        peer = s.peer
        peer_warm = peer.records.seen >= p.peer_warmup
        if not own_warm and not peer_warm:
            s.bar_records = p.ceiling_records
            s.bar_bytes = p.ceiling_records * 1024
            return
        records = float(p.min_records)
        size = float(p.min_bytes)
        if own_warm:
            records = max(records, p.own_factor * s.own_records.high(3.0))
            size = max(size, p.own_factor * s.own_bytes.high(3.0))
        if peer_warm:
            records = max(records, p.peer_factor * peer.records.value)
            size = max(size, p.peer_factor * peer.bytes.value)
        s.bar_records = int(records + 0.999)
        s.bar_bytes = int(size + 0.999)

    def _roll(self, s: ScrapingState, time: int) -> None:
        elapsed = time - s.start
        if s.flagged:
            s.flagged = False
        elif s.records or s.bytes:
            s.own_records.add(s.records)
            s.own_bytes.add(s.bytes)
            s.peer.records.add(s.records)
            s.peer.bytes.add(s.bytes)
        if elapsed < 2 * self.window:
            s.prev_records, s.prev_bytes = s.records, s.bytes
            s.start = time - elapsed % self.window
        else:
            s.prev_records = s.prev_bytes = 0
            s.start = time
        s.records = s.bytes = 0
        s.objects = {}
        s.checked = 0
        s.coverage = 0.0
        s.bar_records = -1

    def _new(self, f: Facts, p: PrincipalState) -> ScrapingState:
        group = p.peer_group(f)
        peer = self.peers.get(group)
        if peer is None:
            if len(self.peers) >= 4096:
                self.peers.clear()
            peer = self.peers[group] = _Peer(group)
        s = p.scraping = ScrapingState(f.time, self.p.alpha, peer)
        return s

    def observe(self, f: Facts, p: PrincipalState, out: list[Signal]) -> None:
        """A successful answer with records or bytes."""
        time = f.time
        s = p.scraping
        if s is None:
            s = self._new(f, p)
        elif time - s.start >= self.window:
            self._roll(s, time)
        records = s.records = s.records + f.records
        size = s.bytes = s.bytes + f.length
        if records + s.prev_records < self.floor_records and size + s.prev_bytes < self.floor_bytes:
            return
        # a busy window: the objects read are counted from here on, for the evidence
        oid = object_of(f)
        if oid is not None and len(s.objects) < _MAX_OBJECTS:
            s.objects[oid] = None
        if s.bar_records < 0:
            self._bars(s)
        if records + s.prev_records < s.bar_records and size + s.prev_bytes < s.bar_bytes:
            return
        remaining = self.window - (time - s.start)
        if remaining > 0:
            records += s.prev_records * remaining // self.window
            size += s.prev_bytes * remaining // self.window
        if records < s.bar_records and size < s.bar_bytes:
            return
        s.flagged = True
        self._signal(f, p, s, records, size, out)

    def _signal(
        self, f: Facts, p: PrincipalState, s: ScrapingState, records: int, size: int, out: list[Signal]
    ) -> None:
        pol = self.p
        route = f.route
        if len(s.objects) * 4 > s.checked * 5:
            # how densely the objects read cover the span of their numeric ids (1.0: every id from
            # the lowest to the highest); recomputed each time the objects grow by a quarter
            s.checked = len(s.objects)
            numeric = [int(o) for o in s.objects if o.isdigit() and len(o) < 19]
            if len(numeric) > 1:
                s.coverage = len(numeric) / (max(numeric) - min(numeric) + 1)
        coverage = s.coverage
        dense = coverage >= 0.5 and len(s.objects) >= 50
        severity = min(pol.severity + (1 if dense or records >= 10 * s.bar_records else 0), 5)
        repeat = self.may_signal(f.principal, f.time, severity)
        if not repeat:
            return
        own = s.own_records
        own_warm = own.n >= pol.warmup
        peer_warm = s.peer.records.seen >= pol.peer_warmup
        evidence: dict[str, Any] = {
            "records": records,
            "bytes": size,
            "window_s": self.window // 1000,
            "threshold_records": s.bar_records,
            "threshold_bytes": s.bar_bytes,
            "own_baseline_records": round(own.mean, 1) if own_warm else None,
            "peer_p99_records": round(s.peer.records.value, 1) if peer_warm else None,
            "peer_group": s.peer.name,
            "distinct_objects": len(s.objects),
            "id_span_density": round(coverage, 4),
            "last_route": route,
        }
        what = f"{records} records" if records >= s.bar_records else f"{size} bytes"
        basis = []
        if own_warm:
            basis.append(f"own baseline {own.mean:.0f}")
        if peer_warm:
            basis.append(f"peers' p99 {s.peer.records.value:.0f}")
        summary = (
            f"{f.principal} received {what} in {self.window // 60000} min "
            f"({', '.join(basis) or 'no baseline yet'}; {len(s.objects)} distinct objects)"
        )
        self.emit(out, f.principal, f.time, severity, summary, evidence, p.recent(), repeat, scope=route)
