"""The audit trail, the admin listener and blocks in the middleware, as in the gateway.

``Shield`` with the policy's ``audit:``, ``admin:`` and ``detection:`` sections,
under uvicorn (lifespan on): events reach the SQLite sink, ``/metrics`` on the
admin listener counts the requests by operation, and a block put in the
detection service's store is enforced on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

from apishield.detect.blocks import make_block
from tests.middleware.support import shield_server
from tests.support import DATA, RecordingUpstream, eventually, free_port, http, write_policy


def test_events_metrics_and_blocks_in_the_middleware(tmp_path: Path) -> None:
    app = RecordingUpstream()
    app.answer("GET", "/items", body=[])
    admin_port = free_port()
    (tmp_path / "admin.token").write_text("a-long-admin-token-for-the-test\n")
    policy = write_policy(
        tmp_path,
        DATA / "shop31.yaml",
        9,  # no upstream: the middleware calls the application in process
        audit={"path": "audit.db", "flush_interval": "20ms"},
        admin={"port": admin_port, "token_file": "admin.token"},
        detection={"alerts": {"path": "alerts.db"}, "blocks": {"store": "memory"}},
    )
    with shield_server(app, config=policy, decision_log="policy") as (server, shield):
        assert http(server.port, "GET", "/items").status == 200
        assert http(server.port, "GET", "/items/search?q=x&q=y").status == 400
        bearer = {"Authorization": "Bearer a-long-admin-token-for-the-test"}

        def counted() -> bool:
            r = http(admin_port, "GET", "/metrics", headers=bearer)
            return (
                r.status == 200
                and b'operation="listItems"' in r.body
                and b'operation="searchItems"' in r.body
            )

        eventually(counted, "the requests in /metrics")
        assert http(admin_port, "GET", "/metrics").status == 401

        def stored() -> int:
            with contextlib.closing(sqlite3.connect(tmp_path / "audit.db")) as db:
                return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])

        eventually(lambda: stored() >= 2, "the events in the SQLite sink")
        # a block in the detection service's store: the middleware's next request is refused
        assert shield.observability is not None and shield.observability.detection is not None
        service = shield.observability.detection
        block = make_block("ip", "127.0.0.1", until=time.time() + 60, reason="test")
        assert server.loop is not None
        asyncio.run_coroutine_threadsafe(service.blocks.add(block), server.loop).result(10)
        eventually(lambda: http(server.port, "GET", "/items").status == 403, "the block enforced")
        metrics = http(admin_port, "GET", "/metrics", headers=bearer).body
        assert b"apishield_detection_blocks_active 1" in metrics
        assert b"apishield_detection_events_total" in metrics
        reached = len(app.received)
        assert http(server.port, "GET", "/items").status == 403
        assert len(app.received) == reached  # a refused request never reaches the application
