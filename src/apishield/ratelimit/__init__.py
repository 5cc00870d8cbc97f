"""Rate limiting, quotas, abuse brakes and load shedding (OWASP API4:2023).

The decision core's part is pure: :mod:`.gcra` (the algorithm and the
in-process store), :mod:`.plan` (the compiled policy), :mod:`.concurrency`
(in-flight counters), :mod:`.headers` (RateLimit fields), :mod:`.problems`
(429 and 503 answers), :mod:`.notes` (per-exchange state and the release
hook); the stages are :mod:`apishield.core.stages.rate_limit`. The adapter's
part does the I/O: :mod:`.redis_store` (one Lua script, batched round trips)
and :mod:`.service` (the effects and the release hook). See
``docs/rate-limits.md``.
"""

from __future__ import annotations

from apishield.ratelimit.gcra import LimitCall, LimitResult, MemoryStore
from apishield.ratelimit.service import RateLimitService

__all__ = ["LimitCall", "LimitResult", "MemoryStore", "RateLimitService"]
