"""Rate limits, quotas, abuse brakes and load shedding (OWASP API4:2023).

Two stages share one :class:`~apishield.ratelimit.plan.RateLimitPlan`:

* :class:`EarlyRateLimitStage`, right after routing: the global in-flight
  cap (:mod:`apishield.ratelimit.concurrency`) and the limits that do not
  need the caller's identity, such as per-IP limits and the
  authentication-failure brake, decided *before* authentication;
* :class:`RateLimitStage`, after authorization: the per-client concurrency
  cap and the limits keyed on the verified caller.

Each decides its limits on the request head, or in the body phase for keys
that read the body. With the memory store a decision is a computation on
this process's state; with Redis it is an effect
(:class:`~apishield.core.effects.CheckRateLimits`) that the adapter batches
with other requests' into one round trip. A refusal is a 429 problem of type
``quota-exceeded`` naming the violated limits, with ``Retry-After``; a store
that cannot be reached means 503 (``fail_closed``) or no limit
(``fail_open``), recorded as an ``error`` decision either way.

On the way out (``on_reply``, in the early stage, which runs last of the
two), outcome limits (``count_if``) are charged when the answer matches:
401s for the brake at the gateway, or an upstream login that answered 200
with an error message. ``response`` is the upstream's answer as it arrived,
judged by :class:`RateLimitOutcomeStage` (the last stage, so the first to see
it) before response validation strips members or ``uniform_failure``
rewrites it; for an answer the gateway made, it is that answer. Then the
``RateLimit-Policy`` and
``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers,
:mod:`apishield.ratelimit.headers`) are added for the advertised limits the
request was checked against.

Slots of the concurrency caps are recorded on the exchange and freed by the
adapter's call to :func:`apishield.ratelimit.notes.release` when the
exchange ends.
"""

from __future__ import annotations

import time
from typing import Any

from apishield.core.effects import AwaitCapacity, CheckRateLimits, RecordRateLimits
from apishield.core.exchange import Exchange
from apishield.core.stage import Stage, problem_reply
from apishield.ratelimit.gcra import CHECK, CONSUME, RECORD, LimitCall, LimitResult
from apishield.ratelimit.headers import refusal_fields, reply_fields, retry_after_seconds
from apishield.ratelimit.notes import Notes, notes_of, peek
from apishield.ratelimit.plan import CompiledLimit, Facts, RateLimitPlan
from apishield.ratelimit.problems import ReducedCapacity, TooManyRequests

__all__ = ["EarlyRateLimitStage", "RateLimitOutcomeStage", "RateLimitStage"]

_MISSING: Any = object()
_STORE_DOWN = "the rate-limit store is unavailable"


class RateLimitStage(Stage):
    """Limits keyed on the verified caller, and the per-client concurrency cap."""

    name = "rate_limit"
    late = True

    def __init__(self, plan: RateLimitPlan) -> None:
        self.plan = plan
        self.local = plan.local
        self.style = plan.policy.headers

    # -- decode --------------------------------------------------------------------------------
    def on_request_head(self, ex: Exchange) -> None:
        op_id = ex.operation_id
        if op_id is None:
            return
        notes = notes_of(ex)
        if not self._concurrency(ex, notes):
            return
        ops = self.plan.operations.get(op_id)
        if ops is not None:
            self._limits(ex, notes, "late_head", ops.late_head)

    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        op_id = ex.operation_id
        ops = self.plan.operations.get(op_id) if op_id is not None else None
        if ops is not None and ops.late_body:
            self._limits(ex, notes_of(ex), "late_body", ops.late_body)

    def _concurrency(self, ex: Exchange, notes: Notes) -> bool:
        counter, key_part = self.plan.per_client, self.plan.per_client_key
        if counter is None or key_part is None or notes.keyed is not None or "per_client" in notes.decided:
            return True
        notes.decided.add("per_client")
        value = key_part.read(Facts(ex, notes, self.plan.trusted))
        if value is None:
            return True
        key = str(value)
        if counter.try_enter(key):
            notes.keyed, notes.keyed_key = counter, key
            return True
        problem = TooManyRequests(
            detail="Too many requests of this client are in progress; retry when one has finished.",
            headers=[(b"retry-after", b"1")],
            extensions={"violated-policies": ["concurrency"]},
        )
        self.reject(ex, problem, rule="concurrency.per_client")
        return False

    def _limits(
        self, ex: Exchange, notes: Notes, phase: str, entries: list[tuple[CompiledLimit, int]]
    ) -> None:
        if not entries or phase in notes.decided:
            return
        built = notes.calls.get(phase)
        if built is None:
            built = notes.calls[phase] = self._build(ex, notes, entries)
        limits, calls = built
        if not calls:
            notes.decided.add(phase)
            return
        if self.local is not None:
            results: list[LimitResult] | None = self.local.decide(calls)
        else:
            effect = CheckRateLimits(tuple(calls))
            found = ex.resolved.get(effect, _MISSING)
            if found is _MISSING:
                ex.pending = effect
                return
            results = found
        notes.decided.add(phase)
        if results is None:
            self._store_down(ex)
            return
        self._apply(ex, notes, limits, results)

    def _build(
        self, ex: Exchange, notes: Notes, entries: list[tuple[CompiledLimit, int]]
    ) -> tuple[list[CompiledLimit], list[LimitCall]]:
        facts = Facts(ex, notes, self.plan.trusted)
        limits: list[CompiledLimit] = []
        calls: list[LimitCall] = []
        for limit, cost in entries:
            value = limit.key_value(facts)
            if value is None:
                continue
            limits.append(limit)
            calls.append(limit.call(value, cost, CHECK if limit.count_if is not None else CONSUME))
        return limits, calls

    def _apply(
        self, ex: Exchange, notes: Notes, limits: list[CompiledLimit], results: list[LimitResult]
    ) -> None:
        violated: list[tuple[CompiledLimit, LimitResult]] = []
        for limit, result in zip(limits, results, strict=True):
            if result.allowed:
                if limit.advertise:
                    notes.results.append((limit, result))
            elif limit.enforce:
                violated.append((limit, result))
            else:
                ex.decide(self.name, "report", f"over the limit {limit.id}", limit.id)
        if not violated:
            return
        retry = retry_after_seconds([r for _, r in violated])
        names = [limit.id for limit, _ in violated]
        problem = TooManyRequests(
            detail=f"Too many requests; retry in {retry} second{'s' if retry != 1 else ''}.",
            headers=refusal_fields(self.style, [v for v in violated if v[0].advertise], retry),
            extensions={"violated-policies": names},
        )
        notes.results.clear()  # a 429 lists only the violated limits
        notes.violated = violated
        notes.refused = True
        self.reject(ex, problem, rule=",".join(names))

    def _store_down(self, ex: Exchange) -> None:
        if self.plan.fail_open:
            ex.decide(self.name, "error", _STORE_DOWN + "; request allowed (fail_open)")
            return
        problem = ReducedCapacity(
            detail="Request limits cannot be checked right now; retry shortly.",
            headers=[(b"retry-after", b"1")],
        )
        ex.decide(self.name, "error", _STORE_DOWN + "; request refused (fail_closed)", "on_store_error")
        ex.reply = problem_reply(problem, ex.request_id)


class EarlyRateLimitStage(RateLimitStage):
    """Load shedding and limits that need no identity; charges outcomes and writes the headers."""

    name = "rate_limit_early"
    late = False

    def on_request_head(self, ex: Exchange) -> None:
        op_id = ex.operation_id
        if op_id is None:
            return
        notes = notes_of(ex)
        if not self._gate(ex, notes):
            return
        ops = self.plan.operations.get(op_id)
        if ops is not None:
            self._limits(ex, notes, "early_head", ops.early_head)

    def on_request_body(self, ex: Exchange, body: bytes) -> None:
        op_id = ex.operation_id
        ops = self.plan.operations.get(op_id) if op_id is not None else None
        if ops is not None and ops.early_body:
            self._limits(ex, notes_of(ex), "early_body", ops.early_body)

    def _gate(self, ex: Exchange, notes: Notes) -> bool:
        gate = self.plan.gate
        if gate is None or notes.gate is not None:
            return True
        timeout = self.plan.queue_timeout
        effect = AwaitCapacity(timeout) if timeout > 0 else None
        handed = ex.resolved.get(effect, _MISSING) if effect is not None else False
        if handed is _MISSING:
            if gate.try_enter():
                notes.gate = gate
                return True
            if effect is not None and gate.can_wait():
                ex.pending = effect  # the adapter queues the request (see ratelimit.concurrency)
                return False
        elif handed:
            notes.gate = gate
            return True
        problem = ReducedCapacity(
            detail="The service is overloaded; retry shortly.",
            headers=[(b"retry-after", b"1")],
            extensions={"violated-policies": ["max_in_flight"]},
        )
        self.reject(ex, problem, rule="concurrency.max_in_flight")
        return False

    # -- encode --------------------------------------------------------------------------------
    def on_reply(self, ex: Exchange) -> None:
        notes = peek(ex)
        if notes is None or ex.reply is None:
            return
        op_id = ex.operation_id
        ops = self.plan.operations.get(op_id) if op_id is not None else None
        if ops is not None and ops.outcomes and not notes.refused:
            self._outcomes(ex, notes, ops.outcomes)
        if notes.results and self.style != "off":
            ex.reply.headers = [*ex.reply.headers, *reply_fields(self.style, notes.results)]

    def _outcomes(self, ex: Exchange, notes: Notes, entries: list[tuple[CompiledLimit, int]]) -> None:
        facts = Facts(ex, notes, self.plan.trusted)
        calls: list[LimitCall] = []
        for limit, cost in entries:
            assert limit.count_if is not None
            value = limit.key_value(facts)
            if value is None:
                continue
            matched = notes.outcomes.get(limit.index)
            if matched is None:  # an answer the gateway made
                matched = limit.count_if.holds(facts)
            if not matched:
                continue
            calls.append(limit.call(value, cost, RECORD))
        if not calls:
            return
        if self.local is not None:
            self.local.decide(calls, time.monotonic())
        else:
            ex.after_effects.append(RecordRateLimits(tuple(calls)))


class RateLimitOutcomeStage(Stage):
    """Judges ``count_if`` on the upstream's answer as it arrived, before other stages change it."""

    name = "rate_limit_outcome"

    def __init__(self, plan: RateLimitPlan) -> None:
        self.plan = plan

    def on_upstream_response(self, ex: Exchange) -> None:
        op_id = ex.operation_id
        ops = self.plan.operations.get(op_id) if op_id is not None else None
        notes = peek(ex)
        if ops is None or not ops.outcomes or notes is None:
            return
        facts = Facts(ex, notes, self.plan.trusted)
        for limit, _ in ops.outcomes:
            assert limit.count_if is not None
            notes.outcomes[limit.index] = limit.count_if.holds(facts)
