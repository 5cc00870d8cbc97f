"""Compiling ``rate_limits:`` into a plan: per operation, which limits apply where, at what cost.

Each limit is placed, once, at load time:

* **early** (just after routing, before authentication) when its key and
  condition do not read ``principal`` or ``token``: client-IP limits and the
  authentication-failure brake are decided *before* credentials are checked,
  so a blocked address costs no signature check or key lookup;
* **late** (after authorization) otherwise: per-client, per-subject and
  per-key limits need the verified caller;
* in the **body** phase when its key or condition reads ``body`` (the
  account a login tries), else on the request head, before the body is read.

Keys are CEL expressions over the request (:data:`LIMIT_VARIABLES`); the
common ones (``client_ip``, ``operation``, ``principal.client_id``...) are
read directly instead of through CEL. A key that evaluates to null or fails
to evaluate exempts the request from that limit (an anonymous caller has no
``client_id``); a ``when`` or ``count_if`` that fails to evaluate counts as
true (an abuse control fails safe).

Store keys name the limit and the key value; for Redis the value is hashed
(no client ids, subjects or accounts in the store) and wrapped in a hash tag,
``apishield:rl:{per-client:<hash>}``, so each counter has its own cluster
slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from apishield.config.load import ConfigError, ConfigIssue
from apishield.config.model import Config
from apishield.config.ratelimit import LimitSpec, RateLimitPolicy, parse_rate
from apishield.core.activation import activation
from apishield.core.client_ip import TrustedProxies, client_address, client_net
from apishield.core.exchange import Exchange
from apishield.ratelimit.concurrency import InFlightGate, KeyedCounter
from apishield.ratelimit.gcra import CONSUME, LimitCall, MemoryStore
from apishield.ratelimit.notes import _UNSET, Notes

__all__ = ["CompiledLimit", "KeyPart", "OperationLimits", "RateLimitPlan", "compile_rate_limits"]

_OWN = frozenset({"client_ip", "client_net", "operation", "method", "body"})
_PRINCIPAL = frozenset({"principal", "token"})


class Facts:
    """The request facts keys and conditions read, computed on demand for one exchange."""

    __slots__ = ("ex", "notes", "trusted")

    def __init__(self, ex: Exchange, notes: Notes, trusted: TrustedProxies) -> None:
        self.ex = ex
        self.notes = notes
        self.trusted = trusted

    def client_ip(self) -> str:
        return client_address(self.ex, self.trusted).ip

    def body(self) -> Any:
        notes = self.notes
        if notes.body is _UNSET or (notes.body is None and self.ex.has_body_value):
            notes.body = _parse_body(self.ex)
        return notes.body

    def activation(self, names: frozenset[str]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if "client_ip" in names:
            extra["client_ip"] = self.client_ip()
        if "client_net" in names:
            extra["client_net"] = client_net(self.client_ip())
        if "operation" in names:
            extra["operation"] = self.ex.operation_id
        if "method" in names:
            extra["method"] = self.ex.request.method
        if "body" in names:
            extra["body"] = self.body()
        return activation(self.ex, names, **extra)


def _parse_body(ex: Exchange) -> Any:
    if ex.has_body_value:
        return ex.body_value
    raw = ex.request_body
    if not raw:
        return None
    media = (ex.request.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()
    if media == b"application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return None
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form
    if media == b"application/json" or media.endswith(b"+json"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    return None


_FAST: dict[str, Callable[[Facts], Any]] = {
    "client_ip": Facts.client_ip,
    "client_net": lambda f: client_net(f.client_ip()),
    "operation": lambda f: f.ex.operation_id,
    "method": lambda f: f.ex.request.method,
    "principal.client_id": lambda f: f.ex.principal.client_id,
    "principal.subject": lambda f: f.ex.principal.subject,
    "principal.api_key_id": lambda f: f.ex.principal.api_key_id,
    "principal.issuer": lambda f: f.ex.principal.issuer,
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    except TypeError:
        return str(value)


@dataclass(frozen=True)
class KeyPart:
    source: str
    variables: frozenset[str]
    read: Callable[[Facts], Any]

    @classmethod
    def compile(cls, source: str) -> KeyPart:
        from apishield.cel import CELEvalError, compile_expression
        from apishield.config.ratelimit import LIMIT_VARIABLES

        fast = _FAST.get(source.strip())
        expression = compile_expression(source, variables=LIMIT_VARIABLES)
        variables = frozenset(expression.variables)
        if fast is not None:
            return cls(source, variables, fast)

        def read(facts: Facts) -> Any:
            try:
                return expression.evaluate(facts.activation(variables))
            except CELEvalError:
                return None

        return cls(source, variables, read)


@dataclass(frozen=True)
class Condition:
    source: str
    variables: frozenset[str]
    expression: Any  # apishield.cel.CompiledExpression

    @classmethod
    def compile(cls, source: str, variables: frozenset[str]) -> Condition:
        from apishield.cel import compile_expression

        expression = compile_expression(source, variables=variables)
        return cls(source, frozenset(expression.variables), expression)

    def holds(self, facts: Facts) -> bool:
        from apishield.cel import CELEvalError

        try:
            return bool(self.expression.evaluate_bool(facts.activation(self.variables)))
        except CELEvalError:
            return True  # fail safe: the control applies


@dataclass(eq=False)
class CompiledLimit:
    index: int
    id: str
    parts: tuple[KeyPart, ...]
    when: Condition | None
    count_if: Condition | None
    interval: float
    tolerance: float
    quota: int
    window: int
    enforce: bool
    backoff: float
    advertise: bool
    late: bool
    needs_body: bool
    hashed: bool  # store keys hash the value (Redis)
    prefix: str
    policy_item: bytes = field(init=False)  # '"per-client";q=20;w=2', for RateLimit-Policy
    name_item: bytes = field(init=False)  # '"per-client"', for RateLimit

    def __post_init__(self) -> None:
        self.name_item = b'"%s"' % self.id.encode("ascii")
        self.policy_item = self.name_item + b";q=%d;w=%d" % (self.quota, self.window)

    def key_value(self, facts: Facts) -> str | None:
        """The key value of this request, or None when the request is exempt."""
        notes = facts.notes
        if self.index in notes.keys:
            return notes.keys[self.index]
        value: str | None = None
        if self.when is None or self.when.holds(facts):
            parts = self.parts
            if len(parts) == 1:
                value = _text(parts[0].read(facts))
            else:
                texts = [_text(part.read(facts)) for part in parts]
                if all(t is not None for t in texts):
                    value = "\x1f".join(t or "" for t in texts)
        notes.keys[self.index] = value
        return value

    def storage_key(self, value: str) -> str:
        if self.hashed or len(value) > 200:
            value = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return self.prefix + value + ("}" if self.hashed else "")

    def call(self, value: str, cost: int, mode: int = CONSUME) -> LimitCall:
        return LimitCall(
            self.storage_key(value), self.interval, self.tolerance, cost, mode, self.enforce, self.backoff
        )


@dataclass
class OperationLimits:
    early_head: list[tuple[CompiledLimit, int]] = field(default_factory=list)
    early_body: list[tuple[CompiledLimit, int]] = field(default_factory=list)
    late_head: list[tuple[CompiledLimit, int]] = field(default_factory=list)
    late_body: list[tuple[CompiledLimit, int]] = field(default_factory=list)
    outcomes: list[tuple[CompiledLimit, int]] = field(default_factory=list)  # count_if limits


@dataclass
class RateLimitPlan:
    policy: RateLimitPolicy
    limits: list[CompiledLimit]
    operations: dict[str, OperationLimits]
    trusted: TrustedProxies
    local: MemoryStore | None  # None: the Redis store (decisions are effects)
    gate: InFlightGate | None = None
    queue_timeout: float = 0.0
    per_client: KeyedCounter | None = None
    per_client_key: KeyPart | None = None

    @property
    def has_late(self) -> bool:
        return self.per_client is not None or any(limit.late for limit in self.limits)

    @property
    def fail_open(self) -> bool:
        return self.policy.on_store_error == "fail_open"


def _compile_limit(index: int, spec: LimitSpec, policy: RateLimitPolicy) -> CompiledLimit:
    from apishield.config.ratelimit import LIMIT_VARIABLES, OUTCOME_VARIABLES

    count, period = parse_rate(spec.rate)
    burst = spec.burst if spec.burst is not None else count
    interval = period / count
    parts = tuple(KeyPart.compile(p) for p in spec.key_parts)
    when = Condition.compile(spec.when, LIMIT_VARIABLES) if spec.when else None
    count_if = Condition.compile(spec.count_if, OUTCOME_VARIABLES) if spec.count_if else None
    variables = frozenset().union(*(p.variables for p in parts), when.variables if when else frozenset())
    redis = policy.store != "memory"
    return CompiledLimit(
        index=index,
        id=spec.id,
        parts=parts,
        when=when,
        count_if=count_if,
        interval=interval,
        tolerance=burst * interval,
        quota=burst,
        window=max(1, round(burst * interval)),
        enforce=spec.mode == "enforce",
        backoff=spec.backoff or 0.0,
        advertise=spec.headers if spec.headers is not None else count_if is None,
        late=bool(variables & _PRINCIPAL),
        needs_body="body" in variables,
        hashed=redis,
        prefix=policy.key_prefix + "{" + spec.id + ":" if redis else spec.id + "\x1f",
    )


def compile_rate_limits(config: Config, operation_ids: list[str], trusted: TrustedProxies) -> RateLimitPlan:
    """The plan for a policy with ``rate_limits:``; unknown operationIds raise :class:`ConfigError`."""
    policy = config.rate_limits
    assert policy is not None
    issues: list[ConfigIssue] = []
    known = set(operation_ids)
    for i, spec in enumerate(policy.limits):
        for name in [*(spec.operations or []), *spec.costs]:
            if name not in known:
                path = (
                    "rate_limits",
                    "limits",
                    i,
                    "operations" if name in (spec.operations or []) else "costs",
                )
                issues.append(
                    ConfigIssue("policy", None, path, f"no operation {name!r} in the OpenAPI document")
                )
    if issues:
        raise ConfigError(issues)
    limits = [_compile_limit(i, spec, policy) for i, spec in enumerate(policy.limits)]
    operations: dict[str, OperationLimits] = {}
    for op_id in operation_ids:
        plan = OperationLimits()
        for limit, spec in zip(limits, policy.limits, strict=True):
            if spec.operations is not None and op_id not in spec.operations:
                continue
            cost = spec.costs.get(op_id, spec.cost)
            if cost == 0:
                continue
            if limit.late:
                (plan.late_body if limit.needs_body else plan.late_head).append((limit, cost))
            else:
                (plan.early_body if limit.needs_body else plan.early_head).append((limit, cost))
            if limit.count_if is not None:
                plan.outcomes.append((limit, cost))
        operations[op_id] = plan
    concurrency = policy.concurrency
    gate = per_client = per_client_key = None
    queue_timeout = 0.0
    if concurrency is not None:
        if concurrency.max_in_flight is not None:
            max_queue = concurrency.max_queue
            if max_queue is None:
                max_queue = concurrency.max_in_flight if concurrency.queue_timeout > 0 else 0
            gate = InFlightGate(concurrency.max_in_flight, max_queue)
            queue_timeout = concurrency.queue_timeout
        if concurrency.per_client is not None:
            per_client = KeyedCounter(concurrency.per_client.max)
            per_client_key = KeyPart.compile(concurrency.per_client.key)
    local = MemoryStore(policy.max_keys) if policy.store == "memory" else None
    return RateLimitPlan(
        policy, limits, operations, trusted, local, gate, queue_timeout, per_client, per_client_key
    )
