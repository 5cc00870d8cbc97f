"""OpenTelemetry spans (``audit.traces: true``): a request span and one per stage call, in both adapters.

The OpenTelemetry SDK with an in-memory exporter stands in for a collector;
the spans are made through the real API by the adapters, over real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the test extras install opentelemetry-sdk")

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from tests.middleware.support import shield_server  # noqa: E402
from tests.support import DATA, RecordingUpstream, ServerThread, eventually, http, write_policy  # noqa: E402

from apishield.proxy.gateway import Gateway  # noqa: E402
from apishield.runtime import load_runtime  # noqa: E402
from apishield.services.tracing import ExchangeTracer  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture()
def exporter() -> Iterator[tuple[InMemorySpanExporter, Any]]:
    exported = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    yield exported, provider.get_tracer("apishield-test")
    provider.shutdown()


def spans_of(exported: InMemorySpanExporter, request_id: str) -> tuple[Any, list[Any]]:
    spans = exported.get_finished_spans()
    server = next(
        s for s in spans if s.kind == SpanKind.SERVER and s.attributes["apishield.request_id"] == request_id
    )
    children = [s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id]
    return server, sorted(children, key=lambda s: s.start_time)


def servers(exported: InMemorySpanExporter) -> int:
    return sum(1 for s in exported.get_finished_spans() if s.kind == SpanKind.SERVER)


def check_request_span(server: Any, children: list[Any], status: int, route: str) -> None:
    assert server.name == f"GET {route}"
    assert server.attributes["http.route"] == route
    assert server.attributes["http.response.status_code"] == status
    # the caller's traceparent is the parent: one trace across the caller and the gateway
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert f"{server.parent.span_id:016x}" == PARENT
    names = [s.name for s in children]
    assert "apishield.route" in names and "apishield.response_headers" in names
    for child in children:
        assert child.kind == SpanKind.INTERNAL
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time


def test_gateway_spans(tmp_path: Path, exporter: tuple[InMemorySpanExporter, Any]) -> None:
    exported, tracer = exporter
    upstream = RecordingUpstream()
    upstream.answer("GET", "/items/3", body={"id": 3, "name": "lamp"})
    up = ServerThread(upstream).start()
    try:
        policy = write_policy(tmp_path, DATA / "shop31.yaml", up.port, audit={"traces": True, "path": "a.db"})
        gateway = Gateway.from_runtime(load_runtime(policy))
        assert gateway.observability is not None and gateway.observability.tracer is not None
        gateway.observability.tracer = ExchangeTracer(tracer)
        server = ServerThread(gateway).start()
        try:
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
            ok = http(server.port, "GET", "/items/3", headers=headers)
            refused = http(server.port, "GET", "/items/0", headers=headers)  # minimum 1
            assert ok.status == 200 and refused.status == 400
            eventually(lambda: servers(exported) == 2, "the spans of both requests")
            span, children = spans_of(exported, ok.headers["x-request-id"])
            check_request_span(span, children, 200, "/items/{itemId}")
            assert span.attributes["apishield.decision"] == "allowed"
            forwarded = [c.name for c in children].count("apishield.forward")
            assert forwarded == 4  # request head, body, upstream answer, reply: a span per stage call
            span, children = spans_of(exported, refused.headers["x-request-id"])
            check_request_span(span, children, 400, "/items/{itemId}")
            assert span.attributes["apishield.decision"] == "denied"
            validation = next(c for c in children if c.name == "apishield.request_validation")
            assert list(validation.attributes["apishield.outcome"]) == ["deny"]
            # refused before forwarding: the forward stage only saw the reply go by
            assert [c.name for c in children].count("apishield.forward") == 1
            assert span.status.status_code != StatusCode.ERROR
        finally:
            server.stop()
    finally:
        up.stop()


def test_middleware_spans(tmp_path: Path, exporter: tuple[InMemorySpanExporter, Any]) -> None:
    exported, tracer = exporter
    app = RecordingUpstream()
    app.answer("GET", "/items/3", body={"id": 3, "name": "lamp"})
    policy = write_policy(tmp_path, DATA / "shop31.yaml", 9, audit={"traces": True, "path": "a.db"})
    with shield_server(app, config=policy, decision_log="policy") as (server, shield):
        assert shield.observability is not None
        shield.observability.tracer = ExchangeTracer(tracer)
        r = http(server.port, "GET", "/items/3", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
        assert r.status == 200
        eventually(lambda: servers(exported) == 1, "the request's spans")
        span, children = spans_of(exported, r.headers["x-request-id"])
        check_request_span(span, children, 200, "/items/{itemId}")


def test_without_traces_no_spans_are_kept(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, DATA / "shop31.yaml", 9)
    runtime = load_runtime(policy)
    gateway = Gateway.from_runtime(runtime)
    assert gateway.observability is not None and gateway.observability.tracer is None
    assert runtime.pipeline.tracing is False
