"""OpenTelemetry spans of an exchange, made after the answer from the pipeline's own stage times.

With ``audit.traces: true`` the pipeline keeps each stage call as
``(stage, start, end)`` in ``perf_counter`` nanoseconds (a list append per
stage: the request path pays nothing else). After the answer is sent, the
adapter hands the exchange to :class:`ExchangeTracer`, which makes:

* one ``SERVER`` span per request, named ``METHOD route-template`` (``METHOD
  undocumented`` when no operation matched: never the raw path, which can
  carry identifiers), the child of the caller's W3C ``traceparent`` when it
  sent one (W3C Trace Context, Level 1); attributes after the HTTP semantic
  conventions (``http.request.method``, ``http.route``,
  ``http.response.status_code``, ``client.address``) and apishield's own
  (``apishield.operation``, ``apishield.request_id``, ``apishield.decision``);
  status ``ERROR`` for a 5xx;
* one ``INTERNAL`` span per stage call, ``apishield.<stage>``, with the
  stage's decisions (``apishield.outcome``, ``apishield.rule``): a stage that
  ran in several phases (request head, body, answer) has a span per phase.

Spans are created with explicit start and end times (``perf_counter`` moved
to the epoch once per process), through the process's tracer provider: the
application configures the SDK, the sampler and the exporter as usual, and
without an SDK the API's no-op provider makes all of this free.
"""

from __future__ import annotations

import time
from typing import Any

from apishield.core.exchange import Exchange

__all__ = ["ExchangeTracer", "TracingUnavailable"]


class TracingUnavailable(Exception):
    """``audit.traces: true`` without the ``opentelemetry-api`` package."""


class ExchangeTracer:
    def __init__(self, tracer: Any = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            raise TracingUnavailable(
                "audit.traces: true needs the opentelemetry-api package (pip install 'apishield[otel]')"
            ) from None
        self._trace = trace
        self._propagate = propagate
        self.tracer = tracer if tracer is not None else trace.get_tracer("apishield")
        self.offset = time.time_ns() - time.perf_counter_ns()  # perf_counter ns -> epoch ns

    def record(self, ex: Exchange) -> None:
        """The spans of a finished exchange (``ex.spans`` set by a tracing pipeline)."""
        trace = self._trace
        offset = self.offset
        head = ex.request
        carrier: dict[str, str] = {}
        for header in (b"traceparent", b"tracestate"):
            value = head.header(header)
            if value is not None:
                carrier[header.decode()] = value.decode("latin-1")
        parent = self._propagate.extract(carrier) if carrier else None
        operation = ex.operation
        route = operation.template if operation is not None else "undocumented"
        status = ex.reply.status if ex.reply is not None else 500
        denied = any(d.outcome == "deny" for d in ex.decisions)
        attributes: dict[str, Any] = {
            "http.request.method": head.method,
            "http.route": route,
            "http.response.status_code": status,
            "apishield.operation": operation.operation_id if operation is not None else "undocumented",
            "apishield.request_id": ex.request_id,
            "apishield.decision": "denied" if denied or (ex.reply and ex.reply.problem) else "allowed",
        }
        if head.client is not None:
            attributes["client.address"] = head.client[0]
        server = self.tracer.start_span(
            f"{head.method} {route}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            start_time=ex.started_ns + offset,
            attributes=attributes,
        )
        if status >= 500:
            server.set_status(trace.Status(trace.StatusCode.ERROR))
        context = trace.set_span_in_context(server)
        by_stage: dict[str, list[tuple[str, str | None]]] = {}
        for decision in ex.decisions:
            by_stage.setdefault(decision.stage, []).append((decision.outcome, decision.rule))
        for name, start, end in ex.spans or ():
            stage_attributes: dict[str, Any] = {"apishield.stage": name}
            decided = by_stage.get(name)
            if decided:
                stage_attributes["apishield.outcome"] = [outcome for outcome, _ in decided]
                rules = [rule for _, rule in decided if rule]
                if rules:
                    stage_attributes["apishield.rule"] = rules
            span = self.tracer.start_span(
                f"apishield.{name}",
                context=context,
                kind=trace.SpanKind.INTERNAL,
                start_time=start + offset,
                attributes=stage_attributes,
            )
            span.end(end_time=end + offset)
        server.end(end_time=time.perf_counter_ns() + offset)
