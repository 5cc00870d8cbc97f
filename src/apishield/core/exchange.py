"""The facts of one request/response exchange: the state the pipeline passes along.

An :class:`Exchange` is plain data. Adapters (the gateway, the middleware)
fill in the request facts they read from the wire; stages read facts and
record decisions and the outgoing messages. Nothing here performs I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from apishield.auth.principal import ANONYMOUS, Principal
from apishield.problem import Problem

if TYPE_CHECKING:
    from apishield.core.effects import Effect
    from apishield.openapi.compile import MediaSpec, Operation

__all__ = ["Decision", "Exchange", "Reply", "RequestHead"]

Headers = list[tuple[bytes, bytes]]
Outcome = Literal["allow", "deny", "report", "modify", "error"]


@dataclass(slots=True)
class RequestHead:
    """What the adapter read before the body: method, target, headers, peers."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: Headers  # names lower-cased, in arrival order, duplicates kept
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    scheme: str = "http"
    http_version: str = "1.1"
    client_cert: bytes | None = None  # DER, when the listener verified one in an mTLS handshake

    def header(self, name: bytes) -> bytes | None:
        """The value of a header that must appear once (last one wins if repeated)."""
        value = None
        for k, v in self.headers:
            if k == name:
                value = v
        return value

    def header_values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]


@dataclass(slots=True)
class Decision:
    """One stage's verdict, kept for the audit trail."""

    stage: str
    outcome: Outcome
    reason: str
    rule: str | None = None
    details: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"stage": self.stage, "outcome": self.outcome, "reason": self.reason}
        if self.rule:
            out["rule"] = self.rule
        if self.details:
            out["details"] = self.details
        return out


_UNPARSED: Any = object()


@dataclass(slots=True)
class Reply:
    """A response on its way out: from the upstream, or made by the gateway.

    Stages that look into a JSON body share one parse (:meth:`json`); a stage
    that changes the parsed value calls :meth:`changed`, and the body is
    serialised once, by the response-headers stage, before it is sent.
    """

    status: int
    headers: Headers
    body: bytes
    problem: Problem | None = None  # set when the gateway made this reply
    from_upstream: bool = False
    value: Any = _UNPARSED
    dirty: bool = False

    def json(self) -> Any:
        """The parsed body (parsed once); raises ``orjson.JSONDecodeError``."""
        if self.value is _UNPARSED:
            self.value = orjson.loads(self.body)
        return self.value

    def changed(self) -> None:
        self.dirty = True

    def serialize(self) -> None:
        if self.dirty:
            self.body = orjson.dumps(self.value)
            self.dirty = False


@dataclass(slots=True)
class Exchange:
    request: RequestHead
    request_id: str
    started_ns: int
    operation: Operation | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    # body expectations set by the head stages
    body_expected: bool = False
    body_limit: int = 0
    media: MediaSpec | None = None
    content_length: int | None = None
    # what goes to the upstream
    forward_target: bytes = b""
    forward_headers: Headers = field(default_factory=list)
    forward_body: bytes = b""
    # who is calling (set by the authentication stage)
    principal: Principal = ANONYMOUS
    # I/O the core asked the adapter for (see apishield.core.effects)
    pending: Effect | None = None
    resolved: dict[Any, Any] = field(default_factory=dict)
    after_effects: list[Any] = field(default_factory=list)
    next_stage: int = 0
    phase: Literal["head", "body"] = "head"
    request_body: bytes = b""
    # typed values the validation stage produced, for rules: {"path": {...}, "query": {...}, ...}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_value: Any = None
    has_body_value: bool = False
    # outcome
    decisions: list[Decision] = field(default_factory=list)
    reply: Reply | None = None
    upstream_status: int | None = None
    # nanoseconds spent in each stage (all phases), for the audit event and the metrics
    stage_ns: dict[str, int] = field(default_factory=dict)
    # each stage call as (stage, start, end) in perf_counter ns, when the pipeline traces
    spans: list[tuple[str, int, int]] | None = None

    @property
    def operation_id(self) -> str | None:
        return self.operation.operation_id if self.operation else None

    def decide(
        self,
        stage: str,
        outcome: Outcome,
        reason: str,
        rule: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.decisions.append(Decision(stage, outcome, reason, rule, details))
