"""The metrics as a tap of the real audit writer: events through the queue, the writer, a JSONL sink."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from apishield.admin import build_admin_server
from apishield.audit.writer import AuditWriter
from apishield.config.audit import AdminPolicy, AuditPolicy
from apishield.core.stages.audit import AuditQueue
from tests.admin.support import LoopThread, event, parse_exposition
from tests.support import eventually, http


def test_the_writer_feeds_the_request_metrics(tmp_path: Path) -> None:
    loop = LoopThread()
    queue = AuditQueue()
    policy = AuditPolicy(sink="jsonl", path="audit.jsonl", flush_interval=0.01)
    writer = AuditWriter.from_policy(queue, policy, tmp_path, "test")
    assert writer is not None
    loop.run(writer.start())
    pipeline = SimpleNamespace(recorder=queue)  # what the metrics read of a pipeline
    admin = build_admin_server(AdminPolicy(port=0), tmp_path, writer=writer, pipeline=pipeline)  # type: ignore[arg-type]
    loop.run(admin.start())
    try:
        events = [event("getItem", "GET", f"/items/{i}", 200, 2.0) for i in range(25)]
        events += [event("deleteItem", "DELETE", f"/items/{i}", 403, 1.0, allowed=False) for i in range(5)]

        def emit() -> None:
            for e in events:
                queue.emit(e)

        loop.call(emit)
        eventually(lambda: writer.stats.written == len(events), "the sink has every event")
        metrics = parse_exposition(http(admin.port, "GET", "/metrics").body.decode())
        assert (
            metrics.value(
                "apishield_requests_total",
                operation="getItem",
                method="GET",
                decision="allowed",
                status="200",
            )
            == 25
        )
        assert (
            metrics.value(
                "apishield_requests_total",
                operation="deleteItem",
                method="DELETE",
                decision="denied",
                status="403",
            )
            == 5
        )
        assert metrics.value("apishield_audit_events_written_total") == len(events)
        assert metrics.value("apishield_audit_events_emitted_total") == len(events)
        assert metrics.value("apishield_audit_sink_up") == 1
        assert metrics.value("apishield_audit_queue_depth") == 0
        assert metrics.value("apishield_audit_tap_errors_total") == 0
        assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == len(events)
    finally:
        loop.run(admin.stop())
        loop.run(writer.stop())
        loop.close()
    assert writer.taps == []
