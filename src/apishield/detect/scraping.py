"""Scraping and exfiltration: records or bytes returned to a principal far above its own and its peers'.

**What it watches.** Every successful answer, per principal: the records it
returned (``unmapped.records``: the length of a JSON array body, 1 for an
object) and its bytes (``http_response.length``), summed over a sliding
window (``window``, 5 minutes). Once a window is busy (past a fifth of
``min_records`` or ``min_bytes``), the objects read are tracked (route and
path parameter) and an object read again within the window is not counted
again: a retry storm, or an app refreshing its owner's long order list, is
not harvesting. List pages have no object id and always count. Quiet
windows, most of them, cost two additions.

**Baselines.** Two, both learnt from closed windows in which the principal
was active:

* its *own*: an EWMA of records and of bytes per active window, judged as
  ``mean + 3 sd`` (the standard deviation at least Poisson's), after
  ``warmup`` active windows. Windows that crossed the bar are left out of
  both baselines: a scraper must not teach the baseline its own volume
  (with them, a partner's stolen credentials used daily went unnoticed
  from the third day of a simulated week);
* its *peers'*: the 99th percentile of records and bytes per active window
  over the principals of its peer group (the client and the roles: mobile
  customers, support agents, one partner's jobs), after ``peer_warmup``
  windows of the group; each principal adds at most one window an hour, so
  no single principal makes the group's quantile.

**The signal.** A window's records (or bytes) above ``min_records`` (or
``min_bytes``) *and* above ``own_factor`` times its own baseline *and* above
``peer_factor`` times its peers'. Both, because each alone misleads: a
partner's nightly export is far above the customers' but not above its
own; a support agent who reads fifty customers an hour is far above the
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
legitimate windows inside the bar (a partner's catch-up run at three times
its usual work, a support agent's busy day, a customer with eighty orders
whose app refreshes them), and fifty records is more than most customers'
whole data. A scraper at machine speed (a few requests a second, or pages
of fifty) crosses it within a minute and two hundred requests. Salt and
Noname baseline response sizes per identity the same way (ecosystem
research §2.2).
"""

from __future__ import annotations

import math
from typing import Any

from apishield.config.detectors import ScrapingPolicy
from apishield.detect.baseline import Ewma, Quantiles
from apishield.detect.detector import Detector, ending_with
from apishield.detect.facts import Facts, object_of
from apishield.detect.principal import PrincipalState
from apishield.detect.signal import Signal
from apishield.detect.volume import PEER_EVERY_MS

__all__ = ["ScrapingDetector", "ScrapingState"]

_MAX_OBJECTS = 4096  # distinct objects counted per key and window


class _Peer:
    __slots__ = ("bytes", "name", "records")

    def __init__(self, name: str) -> None:
        self.name = name
        self.records = Quantiles()
        self.bytes = Quantiles()


class ScrapingState(Ewma):
    """A principal's current window; itself the EWMA of the records of its earlier active windows."""

    __slots__ = (
        "bar_bytes",
        "bar_records",
        "bytes",
        "bytes_mean",
        "bytes_var",
        "checked",
        "coverage",
        "flagged",
        "objects",
        "peer",
        "peer_at",
        "prev_bytes",
        "prev_records",
        "records",
        "start",
    )

    def __init__(self, time: int, alpha: float, peer: _Peer) -> None:
        self.alpha = alpha
        self.mean = self.var = 0.0
        self.n = 0
        self.bytes_mean = self.bytes_var = 0.0  # the same EWMA of the bytes
        self.start = time
        self.records = 0
        self.bytes = 0
        self.prev_records = 0
        self.prev_bytes = 0
        # (route, object id) read, from the moment the window is busy
        self.objects: dict[tuple[str, str], None] | None = None
        self.peer = peer
        self.peer_at = time - PEER_EVERY_MS  # when this principal last added a window to its peers'
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
        # a window is busy (objects tracked, repeats not counted) from a fifth of the floor
        self.busy_records = max(self.floor_records // 5, 1)
        self.busy_bytes = max(self.floor_bytes // 5, 1)

    def _bars(self, s: ScrapingState) -> None:
        """The window's thresholds, from the baselines as they were when it opened (computed when needed)."""
        p = self.p
        own_warm = s.n >= p.warmup
        peer = s.peer
        peer_warm = peer.records.seen >= p.peer_warmup
        if not own_warm and not peer_warm:
            s.bar_records = p.ceiling_records
            s.bar_bytes = p.ceiling_records * 1024
            return
        records = float(p.min_records)
        size = float(p.min_bytes)
        if own_warm:
            records = max(records, p.own_factor * s.high(3.0))
            size = max(size, p.own_factor * (s.bytes_mean + 3.0 * math.sqrt(max(s.bytes_var, s.bytes_mean))))
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
            if s.n == 0:
                s.bytes_mean = s.bytes_var = float(s.bytes)
            else:
                d = s.bytes - s.bytes_mean
                s.bytes_mean += s.alpha * d
                s.bytes_var = (1.0 - s.alpha) * (s.bytes_var + s.alpha * d * d)
            s.add(s.records)
            if time - s.peer_at >= PEER_EVERY_MS:
                s.peer_at = time
                s.peer.records.add(s.records)
                s.peer.bytes.add(s.bytes)
        if elapsed < 2 * self.window:
            s.prev_records, s.prev_bytes = s.records, s.bytes
            s.start = time - elapsed % self.window
        else:
            s.prev_records = s.prev_bytes = 0
            s.start = time
        s.records = s.bytes = 0
        s.objects = None
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
        objects = s.objects
        if objects is None:
            records = s.records = s.records + f.records
            size = s.bytes = s.bytes + f.length
            if records + s.prev_records < self.busy_records and size + s.prev_bytes < self.busy_bytes:
                return
            objects = s.objects = {}
            oid = object_of(f)
            if oid is not None:
                objects[(f.route or "", oid)] = None
        else:
            # a busy window: an object read again in it is not counted again (a retry, a
            # refresh of one's own list); answers without an object id (list pages) always are
            oid = object_of(f)
            if oid is not None:
                key = (f.route or "", oid)
                if key in objects:
                    return
                if len(objects) < _MAX_OBJECTS:
                    objects[key] = None
            records = s.records = s.records + f.records
            size = s.bytes = s.bytes + f.length
        if records + s.prev_records < self.floor_records and size + s.prev_bytes < self.floor_bytes:
            return
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
        objects = s.objects or {}
        if len(objects) * 4 > s.checked * 5:
            # how densely the objects read cover the span of their numeric ids (1.0: every id from
            # the lowest to the highest); recomputed each time the objects grow by a quarter
            s.checked = len(objects)
            numeric = [int(o) for _, o in objects if o.isdigit() and len(o) < 19]
            if len(numeric) > 1:
                s.coverage = len(numeric) / (max(numeric) - min(numeric) + 1)
        coverage = s.coverage
        dense = coverage >= 0.5 and len(objects) >= 50
        severity = min(pol.severity + (1 if dense or records >= 10 * s.bar_records else 0), 5)
        repeat = self.may_signal(f.principal, f.time, severity)
        if not repeat:
            return
        own_warm = s.n >= pol.warmup
        peer_warm = s.peer.records.seen >= pol.peer_warmup
        evidence: dict[str, Any] = {
            "records": records,
            "bytes": size,
            "window_s": self.window // 1000,
            "threshold_records": s.bar_records,
            "threshold_bytes": s.bar_bytes,
            "own_baseline_records": round(s.mean, 1) if own_warm else None,
            "peer_p99_records": round(s.peer.records.value, 1) if peer_warm else None,
            "peer_group": s.peer.name,
            "distinct_objects": len(objects),
            "id_span_density": round(coverage, 4),
            "last_route": route,
        }
        what = f"{records} records" if records >= s.bar_records else f"{size} bytes"
        basis = []
        if own_warm:
            basis.append(f"own baseline {s.mean:.0f}")
        if peer_warm:
            basis.append(f"peers' p99 {s.peer.records.value:.0f}")
        summary = (
            f"{f.principal} received {what} in {self.window // 60000} min "
            f"({', '.join(basis) or 'no baseline yet'}; {len(objects)} distinct objects)"
        )
        self.emit(
            out,
            f.principal,
            f.time,
            severity,
            summary,
            evidence,
            ending_with(p.recent(), f.uid),
            repeat,
            scope=route,
        )
