"""Metrics from the events of real requests through the gateway, scraped from the admin listener.

The gateway runs on a real socket in front of a recording upstream; the
events its audit stage produced are handed to the metrics tap as the audit
writer does, and the limiter service and auth state are the gateway's own.
"""

from __future__ import annotations

from pathlib import Path

from apishield.admin import build_admin_server
from apishield.config.audit import AdminPolicy
from apishield.proxy.gateway import Gateway
from apishield.runtime import load_runtime
from tests.admin.support import BatchWriter, LoopThread, parse_exposition
from tests.support import DATA, RecordingUpstream, ServerThread, eventually, http, write_policy


def test_gateway_traffic_is_counted_by_operation_not_path(tmp_path: Path) -> None:
    upstream = RecordingUpstream()
    upstream.answer("GET", "/items/7", body={"id": 7, "name": "seven"})
    upstream.answer("GET", "/items/8", body={"id": 8, "name": "eight"})
    up = ServerThread(upstream).start()
    rate_limits = {"limits": [{"id": "per-client", "key": "client_ip", "rate": "6/m"}]}
    policy = write_policy(tmp_path, DATA / "shop31.yaml", up.port, rate_limits=rate_limits)
    runtime = load_runtime(policy)
    gateway = Gateway.from_runtime(runtime)
    gateway.decision_fd = None  # the events are read from the queue, not from standard error
    served = ServerThread(gateway).start()
    loop = LoopThread()
    writer = BatchWriter()
    admin = build_admin_server(
        AdminPolicy(port=0),
        runtime.loaded.base_dir,
        writer=writer,
        auth=runtime.auth,
        limiter=gateway.ratelimits,
        pipeline=runtime.pipeline,
        operations=runtime.api.operations,
    )
    loop.run(admin.start())
    try:
        statuses = [http(served.port, "GET", f"/items/{i}").status for i in (7, 8, 7, 8)]
        statuses.append(http(served.port, "GET", "/no/such/path/12345").status)
        statuses.append(http(served.port, "GET", "/items/not-a-number").status)
        statuses += [http(served.port, "GET", "/items/7").status for _ in range(3)]
        assert statuses[:6] == [200, 200, 200, 200, 404, 400] and statuses[-1] == 429
        queue = runtime.pipeline.recorder
        eventually(lambda: queue.emitted >= len(statuses), "an event for every request")
        writer.deliver(list(queue.recent))

        metrics = parse_exposition(http(admin.port, "GET", "/metrics").body.decode())
        requests = metrics.of("apishield_requests_total")
        assert sum(s.value for s in requests) == len(statuses)
        assert metrics.value(
            "apishield_requests_total",
            operation="getItem",
            method="GET",
            decision="allowed",
            status="200",
        ) == statuses.count(200)
        assert {s.labels["operation"] for s in requests} <= {"getItem", "undocumented"}
        assert "/items/7" not in metrics_text(admin.port) and "12345" not in metrics_text(admin.port)
        refused = metrics.value("apishield_ratelimit_decisions_total", limit="per-client", outcome="refused")
        assert refused == statuses.count(429)
        stages = {s.labels["stage"] for s in metrics.of("apishield_stage_duration_seconds_count")}
        assert {"route", "hygiene"} <= stages
        assert metrics.value("apishield_audit_events_emitted_total") == queue.emitted
        assert metrics.value("apishield_ratelimit_queued_total") == 0  # the gateway's limiter service
    finally:
        loop.run(admin.stop())
        loop.close()
        served.stop()
        up.stop()


def metrics_text(port: int) -> str:
    return http(port, "GET", "/metrics").body.decode()
