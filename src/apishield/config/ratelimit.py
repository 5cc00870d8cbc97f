"""The ``rate_limits:`` and ``trusted_proxies:`` sections of the policy (OWASP API4:2023).

Public contract (issue "rate limiting, quotas and abuse controls")::

    trusted_proxies: [10.0.0.0/8]          # or {networks: [...], header: forwarded}
    rate_limits:
      store: memory                        # memory | redis://127.0.0.1:6379/0
      on_store_error: fail_closed          # fail_closed | fail_open
      limits:
        - id: per-client
          key: principal.client_id
          rate: 10/s
          burst: 20

Everything else here extends it: ``when`` and ``count_if`` conditions and
compound keys (CEL, checked here so that errors carry the policy file's
line), per-operation ``costs``, ``backoff`` for abuse brakes, the response
``headers`` style, and ``concurrency`` (load shedding). See
``docs/rate-limits.md``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from apishield.config.duration import Duration

__all__ = [
    "LIMIT_VARIABLES",
    "OUTCOME_VARIABLES",
    "ConcurrencyPolicy",
    "LimitSpec",
    "PerClientConcurrency",
    "RateLimitPolicy",
    "TrustedProxies",
    "TrustedProxiesPolicy",
    "check_expression",
    "parse_rate",
]

# What a limit's key and `when` may read; `count_if` may also read the response.
LIMIT_VARIABLES = frozenset(
    {
        "principal",
        "token",
        "path",
        "query",
        "headers",
        "body",
        "client_ip",
        "client_net",
        "operation",
        "method",
    }
)
OUTCOME_VARIABLES = LIMIT_VARIABLES | {"response"}

_PERIODS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]+(?:\.[0-9]+)?)?\s*([a-z]+)\s*$")
_POLICY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def parse_rate(value: str) -> tuple[int, float]:
    """``"10/s"`` -> ``(10, 1.0)``; ``"5/15m"`` -> ``(5, 900.0)``; ``"10000/day"`` -> ``(10000, 86400.0)``."""
    m = _RATE.match(value)
    if m is None or m.group(3) not in _PERIODS:
        raise ValueError("a rate is COUNT/PERIOD such as 10/s, 100/min, 10000/day or 5/15m")
    count = int(m.group(1))
    period = float(m.group(2) or 1) * _PERIODS[m.group(3)]
    if count < 1 or period <= 0:
        raise ValueError("a rate needs a count of at least 1 over a period longer than 0")
    return count, period


def check_expression(source: str, variables: frozenset[str]) -> str:
    """Compile a CEL expression to report its errors at load time (with the policy line)."""
    from apishield.cel import CELCompileError, CELSyntaxError, compile_expression

    try:
        compile_expression(source, variables=variables)
    except (CELSyntaxError, CELCompileError) as exc:
        raise ValueError(f"CEL: {exc}") from None
    return source


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LimitSpec(_Model):
    """One limit: a budget of ``rate`` (with ``burst``) per distinct value of ``key``."""

    id: str
    # a CEL expression, or a list of them for a compound key; a null value exempts the request
    key: str | list[str]
    rate: str
    burst: Annotated[int, Field(ge=1)] | None = None  # default: the rate's count
    # only these operationIds (default: every operation)
    operations: list[str] | None = None
    # apply only when this CEL condition over the request holds
    when: str | None = None
    cost: Annotated[int, Field(ge=0)] = 1
    costs: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # count only the exchanges whose outcome matches (CEL over the request and `response`);
    # such a limit is checked before the request and charged after the answer
    count_if: str | None = None
    # refused attempts also count, extending the block up to this long (abuse brakes)
    backoff: Duration | None = None
    mode: Literal["enforce", "report"] = "enforce"
    # advertise the limit in RateLimit-Policy / RateLimit (default: yes, except count_if limits)
    headers: bool | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _POLICY_ID.fullmatch(value):
            raise ValueError("a limit id is 1-64 characters: letters, digits and . _ : - (not first)")
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | list[str]) -> str | list[str]:
        parts = [value] if isinstance(value, str) else value
        if not parts:
            raise ValueError("a key needs at least one expression")
        for part in parts:
            check_expression(part, LIMIT_VARIABLES)
        return value

    @field_validator("when")
    @classmethod
    def _when(cls, value: str | None) -> str | None:
        return None if value is None else check_expression(value, LIMIT_VARIABLES)

    @field_validator("count_if")
    @classmethod
    def _count_if(cls, value: str | None) -> str | None:
        return None if value is None else check_expression(value, OUTCOME_VARIABLES)

    @property
    def key_parts(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class PerClientConcurrency(_Model):
    """At most ``max`` requests in flight per value of ``key`` (per process); more answer 429."""

    key: str = "principal.client_id"
    max: Annotated[int, Field(ge=1)]

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_expression(value, LIMIT_VARIABLES)


class ConcurrencyPolicy(_Model):
    """Load shedding, per process: a global in-flight cap with a bounded wait, and a per-client cap."""

    max_in_flight: Annotated[int, Field(ge=1)] | None = None
    queue_timeout: Duration = 0.0  # how long a request over the cap waits for a slot, then 503
    max_queue: Annotated[int, Field(ge=0)] | None = None  # default: max_in_flight
    per_client: PerClientConcurrency | None = None


class RateLimitPolicy(_Model):
    store: str = "memory"
    on_store_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    limits: list[LimitSpec] = Field(default_factory=list)
    concurrency: ConcurrencyPolicy | None = None
    # RateLimit-Policy/RateLimit (IETF draft), the older RateLimit-Limit/-Remaining/-Reset, both, or none
    headers: Literal["ietf", "legacy", "both", "off"] = "ietf"
    key_prefix: str = "apishield:rl:"
    timeout: Duration = 0.25  # a Redis batch slower than this is a store error
    retry_interval: Duration = 1.0  # after a store error, decide by on_store_error this long, then retry
    cluster: bool = False  # Redis Cluster: one script call per hash slot
    max_keys: Annotated[int, Field(ge=1000)] = 1_000_000  # memory store bound

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value != "memory" and not re.match(r"^rediss?://", value):
            raise ValueError("store is 'memory' or a redis:// (rediss://) URL")
        return value

    @model_validator(mode="after")
    def _unique(self) -> RateLimitPolicy:
        seen: set[str] = set()
        for spec in self.limits:
            if spec.id in seen:
                raise ValueError(f"two limits are named {spec.id!r}; ids name policies and must be unique")
            seen.add(spec.id)
        return self


class TrustedProxiesPolicy(_Model):
    """The proxies whose forwarding headers are believed, and which header they maintain."""

    networks: list[str] = Field(default_factory=list)
    header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value


def _networks_list(value: object) -> object:
    """``trusted_proxies: [CIDR, ...]`` is short for ``{networks: [CIDR, ...]}``."""
    return {"networks": value} if isinstance(value, list) else value


TrustedProxies = Annotated[TrustedProxiesPolicy, BeforeValidator(_networks_list)]
