"""The typed model of the policy file, ``apishield.yaml``.

Keys named in the project's issues are a public contract: they keep their
names and meaning. Unknown keys are errors everywhere (``extra="forbid"``):
a typo such as ``validaton:`` must never silently switch a control off.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from apishield.config.audit import AdminPolicy, AuditPolicy
from apishield.config.auth import AuthPolicy
from apishield.config.authorization import AuthorizationPolicy
from apishield.config.detection import DetectionPolicy
from apishield.config.ratelimit import RateLimitPolicy, TrustedProxies, TrustedProxiesPolicy
from apishield.config.transport import (
    CorsPolicy,
    HeadersPolicy,
    ListenTLS,
    UpstreamTLS,
)

__all__ = [
    "Config",
    "Limits",
    "Listen",
    "OperationPolicy",
    "ProxySettings",
    "UniformFailurePolicy",
    "Validation",
]

RequestMode = Literal["enforce", "report", "off"]
ResponseMode = Literal["strip", "enforce", "report", "off"]

_STATUS_PATTERN = re.compile(r"(?:[1-5][0-9][0-9]|[1-5]XX)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Listen(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # TLS termination (docs/transport.md); without it `apishield serve` listens in plaintext only on a
    # loopback address, or anywhere when `plaintext: true` says so explicitly (with a warning)
    tls: ListenTLS | None = None
    plaintext: bool = False


class Validation(_Model):
    requests: RequestMode = "enforce"
    responses: ResponseMode = "strip"
    unknown_query_params: Literal["reject", "allow"] = "reject"


class Limits(_Model):
    max_body_bytes: Annotated[int, Field(ge=0)] = 1_048_576
    max_json_depth: Annotated[int, Field(ge=1, le=512)] = 64
    # Applied to strings whose schema sets no maxLength; null disables it.
    max_string_length: Annotated[int, Field(ge=1)] | None = 65_536
    max_response_bytes: Annotated[int, Field(ge=0)] = 16 * 1_048_576
    # request head limits (RFC 9110 §15.5.15 414, RFC 6585 §5 431)
    max_url_length: Annotated[int, Field(ge=16)] = 8_192
    max_header_count: Annotated[int, Field(ge=1)] = 100
    max_header_bytes: Annotated[int, Field(ge=256)] = 65_536


class ProxySettings(_Model):
    connect_timeout: Annotated[float, Field(gt=0)] = 5.0
    read_timeout: Annotated[float, Field(gt=0)] = 30.0
    max_connections: Annotated[int, Field(ge=1)] = 256
    # Replace the body of upstream 5xx answers (tracebacks, SQL) by a generic problem.
    replace_upstream_errors: bool = True
    # Forward the client's Host header (true) or send the upstream's authority (false).
    preserve_host: bool = False
    # TLS to an https:// upstream (verified always)
    tls: UpstreamTLS = UpstreamTLS()
    # method-override headers (X-HTTP-Method-Override, X-Method-Override, X-HTTP-Method) are removed
    # before anything reads them, unless named here
    method_override_headers: list[str] = Field(default_factory=list)

    @field_validator("method_override_headers")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]


class UniformFailurePolicy(_Model):
    """Make every failure of one operation look the same (anti-enumeration)."""

    status: Annotated[int, Field(ge=400, le=599)] = 400
    title: str = "Request failed"
    detail: str | None = None
    # Which upstream answers count as failures: status codes or classes ("4XX").
    when_status: list[str] = Field(default_factory=lambda: ["4XX", "5XX"])
    # A 2xx JSON answer also counts as a failure when this JSON pointer exists in it
    # (for apps that answer 200 with an error message).
    when_body_pointer: str | None = None

    @field_validator("when_status")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _STATUS_PATTERN.fullmatch(item)]
        if bad:
            listed = ", ".join(repr(b) for b in bad)
            verb = "is not a status code or class" if len(bad) == 1 else "are not status codes or classes"
            raise ValueError(f"{listed} {verb} such as 404 or 4XX")
        return value

    @field_validator("when_body_pointer")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        if value is not None and value and not value.startswith("/"):
            raise ValueError("a JSON pointer starts with '/'")
        return value


class OperationValidation(_Model):
    requests: RequestMode | None = None
    responses: ResponseMode | None = None


class OperationPolicy(_Model):
    """Per-operation settings, keyed by operationId under ``operations:``."""

    validation: OperationValidation = OperationValidation()
    uniform_failure: UniformFailurePolicy | None = None


class Config(_Model):
    version: Literal[1] = 1
    openapi: str
    overlays: list[str] = Field(default_factory=list)
    upstream: str
    listen: Listen = Listen()
    validation: Validation = Validation()
    limits: Limits = Limits()
    proxy: ProxySettings = ProxySettings()
    operations: dict[str, OperationPolicy] = Field(default_factory=dict)
    auth: AuthPolicy = AuthPolicy()
    authorization: AuthorizationPolicy = AuthorizationPolicy()
    rate_limits: RateLimitPolicy | None = None
    # proxies whose Forwarded / X-Forwarded-For are believed (the client IP, see core.client_ip)
    trusted_proxies: TrustedProxies = TrustedProxiesPolicy()
    # security response headers and CORS (core.stages.security_headers, core.stages.cors)
    headers: HeadersPolicy = HeadersPolicy()
    cors: CorsPolicy | None = None
    audit: AuditPolicy = AuditPolicy()
    admin: AdminPolicy | None = None
    detection: DetectionPolicy | None = None

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http:// or https:// URL such as http://127.0.0.1:9000")
        return value.rstrip("/")
