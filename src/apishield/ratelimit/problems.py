"""The answers of rate limiting and load shedding, as RFC 9457 problems.

Problem types are those registered for the RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers §5, IANA "HTTP Problem Types"):
``quota-exceeded`` for a 429 (RFC 6585 §4) with the ``violated-policies``
extension naming the limits, and ``temporary-reduced-capacity`` for a 503
(RFC 9110 §15.6.4) when the gateway sheds load or cannot reach its limit
store. Both carry ``Retry-After`` in delay-seconds (RFC 9110 §10.2.3).
"""

from __future__ import annotations

from apishield.problem import Problem

__all__ = ["IANA_PROBLEM_TYPES", "ReducedCapacity", "TooManyRequests"]

IANA_PROBLEM_TYPES = "https://iana.org/assignments/http-problem-types#"


class TooManyRequests(Problem):
    status = 429
    slug = "quota-exceeded"
    title = "Too many requests"

    @property
    def type_uri(self) -> str:
        return IANA_PROBLEM_TYPES + self.slug


class ReducedCapacity(Problem):
    status = 503
    slug = "temporary-reduced-capacity"
    title = "Service temporarily unavailable"

    @property
    def type_uri(self) -> str:
        return IANA_PROBLEM_TYPES + self.slug
