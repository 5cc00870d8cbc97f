"""The sink of ``audit.sink: off`` when metrics or detection still need the events: it keeps nothing.

The writer drains the queue and hands every batch to its taps (metrics,
detectors) as usual; this sink accepts each batch and forgets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apishield.audit.chain import Link

__all__ = ["DiscardSink"]


class DiscardSink:
    name = "off"
    setting = "audit.sink"

    def describe(self) -> str:
        return "nowhere (audit.sink: off)"

    async def open(self) -> None:
        return None

    async def write(
        self,
        events: list[dict[str, Any]],
        encoded: list[bytes],
        links: Sequence[Link | None] | None = None,
    ) -> None:
        return None

    async def expire(self, before_ms: int) -> int:
        return 0

    async def close(self) -> None:
        return None
