"""Metric names, labels and histograms, as scraped from a running admin listener.

Events go in through the writer's tap interface; ``/metrics`` is read over a
real socket and parsed line by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apishield.admin import AdminServer, build_admin_server
from apishield.admin.registry import Registry
from apishield.admin.request_metrics import RequestMetrics
from apishield.auth.jwks import KeySetState
from apishield.auth.token_cache import TokenCache
from apishield.config.audit import AdminPolicy
from tests.admin.support import BatchWriter, Exposition, LoopThread, event, parse_exposition
from tests.support import http

TOKEN = "metrics-test-token-0123456789"
OPERATIONS = ["listItems", "getItem", "updateItem", "login"]


@pytest.fixture()
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture()
def writer() -> BatchWriter:
    return BatchWriter()


@pytest.fixture()
def admin(
    loop: LoopThread, writer: BatchWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AdminServer]:
    monkeypatch.setenv("APISHIELD_TEST_ADMIN_TOKEN", TOKEN)
    policy = AdminPolicy(port=0, token_env="APISHIELD_TEST_ADMIN_TOKEN")
    server = build_admin_server(policy, tmp_path, writer=writer, operations=OPERATIONS)
    loop.run(server.start())
    yield server
    loop.run(server.stop())


def scrape(server: AdminServer, accept: str | None = None) -> tuple[Exposition, dict[str, str]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if accept is not None:
        headers["Accept"] = accept
    response = http(server.port, "GET", "/metrics", headers=headers)
    assert response.status == 200, response.body
    return parse_exposition(response.body.decode()), response.headers


STAGES = {"route": 3, "hygiene": 1, "authentication": 12, "request_validation": 40, "audit": 0}


def traffic() -> list[dict[str, Any]]:
    """Requests whose paths carry ids; the metrics must only ever show operations."""
    events = []
    for item in range(1, 31):
        events.append(
            event(
                "getItem",
                "GET",
                f"/items/{item}",
                200,
                1.5 * item,
                route="/items/{itemId}",
                stage_us=STAGES,
                decisions=[{"stage": "route", "outcome": "allow", "reason": "matched"}],
                rate_limits=[{"id": "per-client", "allowed": True, "remaining": 30 - item}],
            )
        )
    for item in range(5):
        events.append(
            event(
                "updateItem",
                "PUT",
                f"/items/{1000 + item}",
                403,
                0.4,
                allowed=False,
                route="/items/{itemId}",
                stage_us={"route": 2, "authorization": 7},
                decisions=[{"stage": "authorization", "outcome": "deny", "reason": "not the owner"}],
                rate_limits=[{"id": "per-client", "allowed": False, "remaining": 0}],
            )
        )
    events.append(event("undocumented", "GET", "/admin/users/77/secrets", 404, 0.2, allowed=False))
    events.append(event("undocumented", "BREW", "/coffee/123", 405, 0.2, allowed=False))
    return events


def test_request_metrics_names_types_and_label_names(admin: AdminServer, writer: BatchWriter) -> None:
    writer.deliver(traffic())
    metrics, _ = scrape(admin)
    expected = {
        "apishield_requests_total": ("counter", {"operation", "method", "decision", "status"}),
        "apishield_request_duration_seconds": ("histogram", {"operation"}),
        "apishield_stage_duration_seconds": ("histogram", {"stage"}),
        "apishield_stage_decisions_total": ("counter", {"stage", "outcome"}),
        "apishield_ratelimit_decisions_total": ("counter", {"limit", "outcome"}),
        "apishield_build_info": ("gauge", {"version", "python"}),
        "apishield_audit_queue_depth": ("gauge", set()),
        "apishield_audit_events_written_total": ("counter", set()),
        "apishield_audit_events_spilled_total": ("counter", set()),
        "apishield_audit_events_replayed_total": ("counter", set()),
        "apishield_audit_events_dropped_total": ("counter", set()),
        "apishield_audit_sink_up": ("gauge", set()),
        "process_cpu_seconds_total": ("counter", set()),
        "process_start_time_seconds": ("gauge", set()),
    }
    for name, (kind, labels) in expected.items():
        assert metrics.types.get(name) == kind, name
        assert metrics.helps.get(name), f"{name} has no help"
        sample_name = f"{name}_count" if kind == "histogram" else name
        assert metrics.label_names(sample_name) == {frozenset(labels)}, name
    for name in metrics.types:
        assert name.startswith(("apishield_", "process_")), name
        if metrics.types[name] == "counter":
            assert name.endswith("_total"), name
    for name in ("apishield_request_duration_seconds", "apishield_stage_duration_seconds"):
        assert metrics.label_names(f"{name}_bucket") == {
            frozenset(metrics.label_names(f"{name}_count").pop() | {"le"})
        }


def test_request_counts_by_operation_method_decision_and_status(
    admin: AdminServer, writer: BatchWriter
) -> None:
    writer.deliver(traffic())
    metrics, _ = scrape(admin)
    requests = "apishield_requests_total"
    assert metrics.value(requests, operation="getItem", method="GET", decision="allowed", status="200") == 30
    assert metrics.value(requests, operation="updateItem", method="PUT", decision="denied", status="403") == 5
    assert (
        metrics.value(requests, operation="undocumented", method="GET", decision="denied", status="404") == 1
    )
    # a client may send any token as a method: it is not a label value
    assert (
        metrics.value(requests, operation="undocumented", method="other", decision="denied", status="405")
        == 1
    )
    assert sum(s.value for s in metrics.of(requests)) == len(traffic())
    assert metrics.value("apishield_stage_decisions_total", stage="authorization", outcome="deny") == 5
    assert metrics.value("apishield_ratelimit_decisions_total", limit="per-client", outcome="allowed") == 30
    assert metrics.value("apishield_ratelimit_decisions_total", limit="per-client", outcome="refused") == 5
    assert metrics.value("apishield_audit_events_written_total") == len(traffic())


def test_labels_carry_operation_ids_never_raw_paths(admin: AdminServer, writer: BatchWriter) -> None:
    writer.deliver(traffic())
    metrics, _ = scrape(admin)
    operations = {s.labels["operation"] for s in metrics.samples if "operation" in s.labels}
    assert operations == {"getItem", "updateItem", "undocumented"}
    for sample in metrics.samples:
        for value in sample.labels.values():
            assert "/" not in value, f"{sample.name} has a path-like label value {value!r}"
    # an operation the document does not have (a redacted value, a forged event) is folded
    writer.deliver([event("redacted:0123456789abcdef", "GET", "/items/9", 200, 1.0)])
    metrics, _ = scrape(admin)
    assert (
        metrics.value(
            "apishield_requests_total", operation="_other", method="GET", decision="allowed", status="200"
        )
        == 1
    )


def test_histogram_buckets_are_cumulative_and_end_at_count(admin: AdminServer, writer: BatchWriter) -> None:
    writer.deliver(traffic())
    writer.deliver(traffic()[:7])
    metrics, _ = scrape(admin)
    for family, label in (
        ("apishield_request_duration_seconds", "operation"),
        ("apishield_stage_duration_seconds", "stage"),
    ):
        series = {s.labels[label] for s in metrics.of(f"{family}_count")}
        assert series
        for key in series:
            buckets = metrics.of(f"{family}_bucket", **{label: key})
            bounds = [float(b.labels["le"]) for b in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == float("inf")
            counts = [b.value for b in buckets]
            assert counts == sorted(counts), f"{family}{{{key}}} buckets are not cumulative"
            assert counts[-1] == metrics.value(f"{family}_count", **{label: key})
    # 37 getItem observations of 1.5 ms x item: sum and bucket placement in seconds
    latencies = [1.5 * i for i in range(1, 31)] + [1.5 * i for i in range(1, 8)]
    duration = "apishield_request_duration_seconds"
    assert metrics.value(f"{duration}_count", operation="getItem") == 37
    assert metrics.value(f"{duration}_sum", operation="getItem") == pytest.approx(sum(latencies) / 1000)
    assert metrics.value(f"{duration}_bucket", operation="getItem", le="0.005") == sum(
        1 for ms in latencies if ms <= 5
    )
    stage = "apishield_stage_duration_seconds"
    assert metrics.value(f"{stage}_count", stage="request_validation") == 37
    assert metrics.value(f"{stage}_sum", stage="request_validation") == pytest.approx(37 * 40e-6)
    assert metrics.value(f"{stage}_bucket", stage="request_validation", le="2.5e-05") == 0
    assert metrics.value(f"{stage}_bucket", stage="request_validation", le="5e-05") == 37


def test_openmetrics_when_the_scraper_asks(admin: AdminServer, writer: BatchWriter) -> None:
    writer.deliver(traffic()[:3])
    text, headers = scrape(admin)
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert not text.eof and text.types["apishield_requests_total"] == "counter"
    om, headers = scrape(admin, "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.eof
    assert om.types["apishield_requests"] == "counter" and "apishield_requests_total" not in om.types
    assert [(s.name, s.labels) for s in om.samples] == [(s.name, s.labels) for s in text.samples]


def test_label_values_are_escaped(loop: LoopThread, tmp_path: Path) -> None:
    writer = BatchWriter()
    server = build_admin_server(AdminPolicy(port=0), tmp_path, writer=writer)  # no operation list
    loop.run(server.start())
    try:
        writer.deliver([event('say "hi"\\\nthere', "GET", "/x", 200, 1.0)])
        response = http(server.port, "GET", "/metrics")
        metrics = parse_exposition(response.body.decode())
        assert metrics.value("apishield_requests_total", method="GET", status="200") == 1
        assert metrics.of("apishield_requests_total")[0].labels["operation"] == 'say "hi"\\\nthere'
    finally:
        loop.run(server.stop())


def test_series_are_capped_with_an_overflow_bucket() -> None:
    registry = Registry()
    tap = RequestMetrics(registry, operations=None, max_series=5)
    tap([event(f"op{i}", "GET", f"/things/{i}", 200, 1.0) for i in range(40)])
    from apishield.admin.exposition import render
    from apishield.admin.sources import watch_registry

    watch_registry(registry)
    metrics = parse_exposition(render(registry).decode())
    requests = metrics.of("apishield_requests_total")
    assert len(requests) == 6  # five label sets, then one overflow series
    overflow = [s for s in requests if s.labels["operation"] == "_overflow"]
    assert len(overflow) == 1 and overflow[0].value == 35
    assert set(overflow[0].labels.values()) == {"_overflow"}
    assert sum(s.value for s in requests) == 40
    assert metrics.value("apishield_metrics_overflow_total", metric="apishield_requests") == 35
    assert (
        metrics.value("apishield_metrics_overflow_total", metric="apishield_request_duration_seconds") == 35
    )


def test_malformed_events_are_counted_not_raised() -> None:
    registry = Registry()
    tap = RequestMetrics(registry)
    broken: dict[str, Any] = {"class_uid": 6003, "api": {"operation": "getItem"}}
    tap([broken, event("getItem", "GET", "/items/1", 200, 1.0)])
    assert tap.malformed.values[()] == 1
    assert tap.requests.values[("getItem", "GET", "allowed", "200")] == 1


def test_sources_read_at_scrape_time(loop: LoopThread, tmp_path: Path) -> None:
    """Token caches, JWKS fetches and the writer's counters, read from the live objects."""
    from types import SimpleNamespace

    cache: TokenCache[str] = TokenCache(10)
    cache.put("a", "principal", 10**12)
    for token in ("a", "a", "a", "b"):
        cache.get(token, 0.0)
    keys = KeySetState("https://issuer.example", 60, 3600, 300, 10, 600)
    keys.fetched(object(), "max-age=300", 1000.0)
    keys.failed("connection refused", 2000.0)
    keys.failed("connection refused", 2100.0)
    provider = SimpleNamespace(issuer="https://issuer.example", jwks_uri="https://issuer.example/jwks")
    auth = SimpleNamespace(
        token_cache=cache,
        introspection_cache=TokenCache(10),
        api_key_cache=TokenCache(10),
        issuers={"https://issuer.example": SimpleNamespace(provider=provider, keys=keys)},
    )
    writer = BatchWriter()
    server = build_admin_server(AdminPolicy(port=0), tmp_path, writer=writer, auth=auth)  # type: ignore[arg-type]
    loop.run(server.start())
    try:
        writer.stats.spilled, writer.stats.replayed, writer.stats.queue_depth = 12, 9, 4
        writer.stats.sink_up = False
        metrics = parse_exposition(http(server.port, "GET", "/metrics").body.decode())
        assert metrics.value("apishield_token_cache_hits_total", cache="jwt") == 3
        assert metrics.value("apishield_token_cache_misses_total", cache="jwt") == 1
        assert metrics.value("apishield_token_cache_entries", cache="jwt") == 1
        assert metrics.value("apishield_token_cache_hits_total", cache="introspection") == 0
        issuer = "https://issuer.example"
        assert metrics.value("apishield_jwks_fetches_total", issuer=issuer, outcome="success") == 1
        assert metrics.value("apishield_jwks_fetches_total", issuer=issuer, outcome="failure") == 2
        assert metrics.value("apishield_audit_events_spilled_total") == 12
        assert metrics.value("apishield_audit_events_replayed_total") == 9
        assert metrics.value("apishield_audit_queue_depth") == 4
        assert metrics.value("apishield_audit_sink_up") == 0
        cache.get("a", 0.0)
        again = parse_exposition(http(server.port, "GET", "/metrics").body.decode())
        assert again.value("apishield_token_cache_hits_total", cache="jwt") == 4
    finally:
        loop.run(server.stop())
    assert writer.taps == []  # stopping detaches the tap


def test_metrics_off_leaves_health_only(loop: LoopThread, tmp_path: Path) -> None:
    server = build_admin_server(AdminPolicy(port=0, metrics=False), tmp_path, writer=BatchWriter())
    loop.run(server.start())
    try:
        assert http(server.port, "GET", "/metrics").status == 404
        assert http(server.port, "GET", "/healthz").status == 200
    finally:
        loop.run(server.stop())
