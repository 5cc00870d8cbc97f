"""Errors that render themselves as RFC 9457 problem details.

Every answer the gateway makes on its own (a rejection, an upstream failure)
is an instance of :class:`Problem`. It carries the HTTP status, the RFC 9457
members (§3.1: ``type``, ``title``, ``status``, ``detail``, ``instance``) and
extension members (§3.2): ``errors`` (one entry per violation, each a JSON
pointer and a reason, never the offending value) and ``request_id``.

The same object renders to the wire (``application/problem+json``, RFC 9457
§3) in the gateway and the middleware, and to text in the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

__all__ = [
    "BadGateway",
    "BadRequest",
    "GatewayTimeout",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "RequestFailed",
    "ResponseInvalid",
    "ServiceUnavailable",
    "UnsupportedMediaType",
    "UpstreamFailed",
    "ValidationFailed",
    "Violation",
]

PROBLEM_CONTENT_TYPE = b"application/problem+json"
TYPE_BASE = "https://apishield.dev/problems/"


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason a message was refused: where (JSON pointer) and why."""

    pointer: str
    reason: str
    location: str = "body"  # body | path | query | header | cookie | response
    rule: str = field(default="", compare=False)  # the schema keyword that failed; not rendered

    def as_dict(self) -> dict[str, str]:
        return {"in": self.location, "pointer": self.pointer, "reason": self.reason}


@dataclass(eq=False)
class Problem(Exception):
    """A gateway answer in RFC 9457 form. Subclasses fix status, type and title.

    ``status_override`` and ``title_override`` let one instance answer with
    another status (an upstream 503 keeps its status; a uniform failure uses
    the status the policy chose).
    """

    detail: str | None = None
    violations: list[Violation] = field(default_factory=list)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)
    status_override: int | None = None
    title_override: str | None = None

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.detail or self.title)

    @property
    def http_status(self) -> int:
        return self.status_override or self.status

    @property
    def type_uri(self) -> str:
        return TYPE_BASE + self.slug

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title_override or self.title,
            "status": self.http_status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.violations:
            body["errors"] = [v.as_dict() for v in self.violations]
        body.update(self.extensions)
        if request_id:
            body["request_id"] = request_id
        return body

    def body(self, request_id: str | None = None) -> bytes:
        return orjson.dumps(self.to_dict(request_id))

    def __str__(self) -> str:
        title = self.title_override or self.title
        lines = [f"{self.http_status} {title}" + (f": {self.detail}" if self.detail else "")]
        lines += [f"  {v.location} {v.pointer or '/'}: {v.reason}" for v in self.violations]
        return "\n".join(lines)


class BadRequest(Problem):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class ValidationFailed(Problem):
    status = 400
    slug = "validation-failed"
    title = "Request does not match the API description"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(Problem):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"

    @classmethod
    def for_methods(cls, allowed: Iterable[str]) -> MethodNotAllowed:
        allow = ", ".join(sorted(allowed)).encode()
        return cls(detail="This method is not documented for this path.", headers=[(b"allow", allow)])


class PayloadTooLarge(Problem):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(Problem):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class BadGateway(Problem):
    status = 502
    slug = "bad-gateway"
    title = "Bad gateway"


class GatewayTimeout(Problem):
    status = 504
    slug = "gateway-timeout"
    title = "Gateway timeout"


class ServiceUnavailable(Problem):
    """The gateway cannot take the request now (e.g. its audit event cannot be made durable)."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class UpstreamFailed(Problem):
    """An upstream 5xx whose body was replaced so internals never leave."""

    status = 502
    slug = "upstream-error"
    title = "The upstream service failed"


class ResponseInvalid(Problem):
    status = 502
    slug = "response-invalid"
    title = "The upstream response does not match the API description"


class RequestFailed(Problem):
    """The one answer of an operation whose failures must all look the same."""

    status = 400
    slug = "request-failed"
    title = "Request failed"
