"""The decision log: one structured record per noteworthy request.

Until the audit trail lands, decisions are written as JSON to the
``apishield.decisions`` logger: every denial, every report-mode finding,
every modification (stripped members, replaced bodies) and every
undocumented status. Values are never copied from the request; reasons and
JSON pointers only.
"""

from __future__ import annotations

import logging
import time

import orjson

from apishield.core.exchange import Exchange
from apishield.core.stage import Stage

__all__ = ["DecisionLogStage"]

logger = logging.getLogger("apishield.decisions")


class DecisionLogStage(Stage):
    name = "decision_log"

    def on_reply(self, ex: Exchange) -> None:
        if not any(d.outcome != "allow" for d in ex.decisions) or not logger.isEnabledFor(logging.INFO):
            return
        reply = ex.reply
        record = {
            "request_id": ex.request_id,
            "method": ex.request.method,
            "route": ex.operation.template if ex.operation else None,
            "operation": ex.operation_id,
            "status": reply.status if reply else None,
            "upstream_status": ex.upstream_status,
            "latency_ms": round((time.perf_counter_ns() - ex.started_ns) / 1e6, 3),
            "decisions": [d.as_dict() for d in ex.decisions if d.outcome != "allow"],
        }
        logger.info(orjson.dumps(record).decode())
