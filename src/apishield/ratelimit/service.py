"""The adapter's side of rate limiting: the effects it resolves and the hook it calls at the end.

An adapter (the gateway, the middleware) owns one :class:`RateLimitService`
per pipeline, built by :meth:`RateLimitService.for_pipeline` (None when the
policy has no ``rate_limits:``). It:

* resolves :class:`~apishield.core.effects.CheckRateLimits` through the
  Redis store's batcher (:mod:`.redis_store`), and
  :class:`~apishield.core.effects.AwaitCapacity` by queueing the request at
  the in-flight gate with an asyncio future, woken when a slot is handed
  over or given up after the timeout;
* takes the after-effect :class:`~apishield.core.effects.RecordRateLimits`
  (:meth:`after`, which never waits);
* frees the exchange's concurrency slots when it ends (:meth:`release`,
  from a ``finally``) and wakes the waiters they are handed to;
* starts and stops the store's connection with the adapter
  (:meth:`start`, :meth:`stop`), and reports counters (:meth:`metrics`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from apishield.core.effects import AwaitCapacity, CheckRateLimits, RecordRateLimits
from apishield.core.exchange import Exchange
from apishield.ratelimit import notes
from apishield.ratelimit.plan import RateLimitPlan
from apishield.ratelimit.redis_store import RedisLimiter

__all__ = ["RateLimitService"]


class RateLimitService:
    def __init__(self, plan: RateLimitPlan) -> None:
        self.plan = plan
        policy = plan.policy
        self.remote: RedisLimiter | None = None
        if plan.local is None:
            self.remote = RedisLimiter(
                policy.store,
                timeout=policy.timeout,
                retry_interval=policy.retry_interval,
                cluster=policy.cluster,
            )
        self.counters: dict[str, int] = {"queued": 0, "queue_timeouts": 0}

    @classmethod
    def for_pipeline(cls, pipeline: Any) -> RateLimitService | None:
        """The service for a pipeline's rate-limit stages, or None when it has none."""
        from apishield.core.stages.rate_limit import RateLimitStage

        for stage in pipeline.stages:
            if isinstance(stage, RateLimitStage):
                return cls(stage.plan)
        return None

    async def start(self) -> None:
        if self.remote is not None:
            await self.remote.start()

    async def stop(self) -> None:
        if self.remote is not None:
            await self.remote.stop()

    @staticmethod
    def handles(effect: Any) -> bool:
        return isinstance(effect, (CheckRateLimits, AwaitCapacity))

    async def run(self, effect: Any) -> Any:
        if isinstance(effect, CheckRateLimits):
            if self.remote is None:
                raise RuntimeError("CheckRateLimits without a shared store")
            return await self.remote.decide(effect.calls)
        if isinstance(effect, AwaitCapacity):
            return await self._await_slot(effect.timeout)
        raise TypeError(f"unknown effect {effect!r}")

    def after(self, effects: list[Any]) -> None:
        if self.remote is None:
            return
        for effect in effects:
            if isinstance(effect, RecordRateLimits):
                self.remote.record(effect.calls)

    def release(self, ex: Exchange) -> None:
        for waiter in notes.release(ex):
            if not waiter.done():
                waiter.set_result(True)

    async def _await_slot(self, timeout: float) -> bool:
        gate = self.plan.gate
        assert gate is not None
        if gate.try_enter():  # freed since the stage asked: the slot is this request's
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        gate.wait(waiter)
        self.counters["queued"] += 1
        try:
            await asyncio.wait({waiter}, timeout=timeout)
        except asyncio.CancelledError:
            if not gate.withdraw(waiter) and waiter.done():  # it was handed a slot: pass it on
                handed = gate.leave()
                if handed is not None and not handed.done():
                    handed.set_result(True)
            raise
        if waiter.done():
            return True
        gate.withdraw(waiter)
        self.counters["queue_timeouts"] += 1
        return False

    def metrics(self) -> dict[str, Any]:
        """Counters for dashboards: queueing, and the shared store's batches and failures."""
        gate = self.plan.gate
        out: dict[str, Any] = dict(self.counters)
        if gate is not None:
            out["in_flight"] = gate.in_flight
            out["waiting"] = len(gate.waiters)
        if self.remote is not None:
            out.update(self.remote.stats)
            out["store_healthy"] = self.remote.healthy
        return out
