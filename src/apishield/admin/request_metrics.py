"""Request metrics computed from the audit events, off the request path.

Every exchange already ends in one OCSF API Activity event
(:mod:`apishield.audit.event`) that carries what a dashboard needs: the
operation, the method, allowed or denied, the status, the latency, the time
each stage took, each stage's decision and the rate-limit results. The
audit writer hands each batch it drains to its *taps*; :class:`RequestMetrics`
is one, so the request path pays nothing for metrics and the numbers agree
with the audit trail by construction.

Labels are bounded by design, before the registry's own series cap:

* ``operation`` is the event's ``api.operation``: an operationId of the
  document, ``METHOD template`` for an operation without one, or
  ``undocumented``; never the request path (``/customers/42`` is counted
  under ``getCustomer``). Given the document's operation ids, anything else
  (a redacted value, say) becomes ``_other``;
* ``method`` is one of the standard methods or ``other`` (a client can
  send any token as a method);
* ``decision`` is ``allowed`` or ``denied`` (the event's ``action_id``);
* ``status`` is the numeric status sent;
* ``stage`` and ``outcome`` come from the pipeline's code, ``limit`` from
  the policy's rate-limit ids.

Events come from the writer's thread or task; each batch is applied under
the registry lock in one go, so a scrape sees whole batches only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable
from typing import Any

from apishield.admin.registry import Registry

__all__ = ["REQUEST_BUCKETS", "STAGE_BUCKETS", "RequestMetrics"]

# seconds; a gateway decision takes tens of microseconds, an upstream milliseconds to seconds
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# seconds; one stage takes from under a microsecond (recorded as 0) to milliseconds
STAGE_BUCKETS = (5e-06, 1e-05, 2.5e-05, 5e-05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
_FIXED = frozenset({"undocumented"})


class RequestMetrics:
    """The audit-event tap: call it with each batch of events (``writer.taps.append(metrics)``)."""

    def __init__(
        self,
        registry: Registry,
        operations: Collection[str] | None = None,
        max_series: int = 2000,
    ) -> None:
        self.registry = registry
        self.operations = frozenset(operations) | _FIXED if operations is not None else None
        self.requests = registry.counter(
            "apishield_requests_total",
            "Requests answered, by operation, method, decision and status.",
            ("operation", "method", "decision", "status"),
            max_series,
        )
        self.duration = registry.histogram(
            "apishield_request_duration_seconds",
            "Time from the request's arrival to its answer, by operation.",
            ("operation",),
            REQUEST_BUCKETS,
            per_second=1e3,  # events carry milliseconds
            max_series=max_series,
        )
        self.stages = registry.histogram(
            "apishield_stage_duration_seconds",
            "Time spent in each pipeline stage for one request (all its phases).",
            ("stage",),
            STAGE_BUCKETS,
            per_second=1e6,  # events carry microseconds
            max_series=200,
        )
        self.decisions = registry.counter(
            "apishield_stage_decisions_total",
            "Decisions the stages recorded (deny, report, modify, error, allow), by stage.",
            ("stage", "outcome"),
            1000,
        )
        self.limits = registry.counter(
            "apishield_ratelimit_decisions_total",
            "Rate-limit checks, by limit id and outcome (allowed or refused).",
            ("limit", "outcome"),
            1000,
        )
        self.malformed = registry.counter(
            "apishield_metrics_malformed_events_total",
            "Audit events the metrics could not read (their counts are missing above).",
        )
        self.events = 0
        self._stage_series: dict[str, list[float]] = {}

    def __call__(self, batch: Iterable[dict[str, Any]]) -> None:
        with self.registry.locked():
            for event in batch:
                try:
                    self._observe(event)
                except Exception:  # a reshaped or redacted event must not stop the writer
                    self.malformed.inc()

    def _observe(self, event: dict[str, Any]) -> None:
        self.events += 1
        api = event.get("api") or {}
        operation = api.get("operation") or "undocumented"
        known = self.operations
        if known is not None and operation not in known:
            operation = "_other"
        method = event["http_request"]["http_method"]
        if method not in _METHODS:
            method = "other"
        response = event["http_response"]
        status = response["code"]
        decision = "allowed" if event.get("action_id") == 1 else "denied"
        self.requests.inc((operation, method, decision, str(status)))
        latency = response.get("latency")
        if latency is not None:
            self.duration.observe((operation,), latency)
        unmapped = event.get("unmapped")
        if not unmapped:
            return
        stage_us = unmapped.get("stage_us")
        if stage_us:
            known_series = self._stage_series
            bounds = self.stages.bounds
            for stage, micros in stage_us.items():
                series = known_series.get(stage)
                if series is None:
                    series = known_series[stage] = self.stages.series_for((str(stage),))
                series[bisect_left(bounds, micros) + 1] += 1
                series[0] += micros
        decisions = unmapped.get("decisions")
        if decisions:
            inc = self.decisions.inc
            for d in decisions:
                inc((d["stage"], d["outcome"]))
        limits = unmapped.get("rate_limits")
        if limits:
            for result in limits:
                self.limits.inc((str(result["id"]), "allowed" if result["allowed"] else "refused"))
