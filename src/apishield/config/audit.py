"""Policy sections for the audit trail and the admin listener.

``audit`` says where the decision events go (one OCSF event per request,
:mod:`apishield.audit.event`), how durable they are and what is redacted;
``admin`` opens the separate listener for ``/metrics``, ``/healthz`` and
``/readyz``. Key names are a public contract.

Durability, in short (the writer's docstring has the whole argument):

* ``buffered`` (default): events leave the request path at once and reach the
  sink in batches every ``flush_interval``; a SIGKILL loses at most what was
  produced in the last ``flush_interval`` (plus a batch in flight), never
  more than ``queue_size`` events. SIGTERM and a normal stop flush everything.
* ``acknowledged``: a response is sent only after its event is in the
  fsync'd spill journal (group commit: one ``fsync`` for all the requests
  that finished meanwhile). Nothing acknowledged to a client is lost.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apishield.config.duration import Duration

__all__ = ["AdminPolicy", "AuditPolicy"]

_POINTER = re.compile(r"^(/([^~/]|~[01])*)+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AuditPolicy(_Model):
    """``audit:`` the decision events and their sink."""

    # sqlite: the embedded default (WAL, batched); postgresql: many instances (COPY, daily partitions);
    # jsonl: a file (or "-" for standard output) for a SIEM shipper; off: no events at all
    sink: Literal["sqlite", "postgresql", "jsonl", "off"] = "sqlite"
    # the SQLite database or the JSON-lines file; relative paths are read from the policy's folder
    path: str = "apishield-audit.db"
    # postgresql: a libpq URL; ``?schema=NAME`` picks the schema (default public)
    dsn: str | None = None
    # all: one event per request; decisions: only requests with a denial, finding or modification are
    # stored (metrics and detectors still see every request)
    events: Literal["all", "decisions"] = "all"
    # JSON pointers into the event whose values are replaced by a keyed hash (PII such as a subject)
    redact: list[str] = Field(default_factory=list)
    # where events go while the sink is down or the queue is full; replayed when the sink is back
    journal: str | None = None  # default: the sink's path (or "apishield-audit") + ".journal"
    durability: Literal["buffered", "acknowledged"] = "buffered"
    # short: events written while still in the CPU cache cost less (measured in bench/README.md)
    flush_interval: Duration = 0.05
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    queue_size: Annotated[int, Field(ge=100)] = 100_000
    # a SHA-256 hash chain over the events of each instance (``apishield events verify``)
    tamper_evidence: bool = False
    # events older than this are deleted (SQLite) or their daily partitions dropped (PostgreSQL)
    retention: Duration | None = None
    # OpenTelemetry: a span per request and one per stage call, through the process's tracer
    # provider (needs the opentelemetry-api package; configure the SDK and exporter as usual)
    traces: bool = False

    @field_validator("redact")
    @classmethod
    def _pointers(cls, value: list[str]) -> list[str]:
        for pointer in value:
            if not _POINTER.match(pointer):
                raise ValueError(f"{pointer!r} is not a JSON pointer (RFC 6901), e.g. /actor/user/uid")
            if pointer.split("/")[1] in {"metadata", "class_uid", "time", "type_uid"}:
                raise ValueError(f"{pointer!r} would redact a field the trail cannot work without")
        return value

    @model_validator(mode="after")
    def _sink(self) -> AuditPolicy:
        if self.sink == "postgresql" and not self.dsn:
            raise ValueError("sink: postgresql needs dsn (e.g. postgresql://127.0.0.1/apishield)")
        if self.sink == "jsonl" and self.path == "apishield-audit.db":
            raise ValueError("sink: jsonl needs path (a file, or - for standard output)")
        if self.durability == "acknowledged" and self.sink == "off":
            raise ValueError("durability: acknowledged needs a sink")
        return self


class AdminPolicy(_Model):
    """``admin:`` a separate listener for metrics, health and the console; loopback by default."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9090
    # the admin credential: a file holding it, or an environment variable; required off loopback
    token_file: str | None = None
    token_env: str | None = None
    metrics: bool = True

    @model_validator(mode="after")
    def _credential(self) -> AdminPolicy:
        if self.token_file and self.token_env:
            raise ValueError("give token_file or token_env, not both")
        loopback = self.host in {"127.0.0.1", "::1", "localhost"} or self.host.startswith("127.")
        if not loopback and not (self.token_file or self.token_env):
            raise ValueError(f"an admin listener on {self.host} needs token_file or token_env")
        return self
