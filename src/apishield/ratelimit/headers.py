"""The RateLimit-Policy and RateLimit header fields (draft-ietf-httpapi-ratelimit-headers).

Both are Structured Field Lists (RFC 9651) of Items: the policy name as a
String, with Integer parameters. ``RateLimit-Policy`` describes each limit:
``q`` the quota (the burst, in units) and ``w`` the window in seconds over
which it is restored (burst × emission interval), so a limit of 10/s with
burst 20 reads ``"per-client";q=20;w=2``. ``RateLimit`` gives the state
after this request: ``r`` the units remaining and ``t`` the seconds until
the quota is whole again. On a 429 only the violated limits are listed, with
``r=0`` and ``t`` the seconds until the request would fit; ``Retry-After``
is the largest of those (never earlier than any ``t``, as the draft asks).
All values are integers (seconds rounded up).

``headers: legacy`` sends the draft -06 trio ``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset`` for the tightest limit instead
(what older clients and Spectral's ``owasp:api4:2023-rate-limit`` rule
recognise); ``both`` sends both forms. Partition keys (``pk``) are not sent:
they would reveal the key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from apishield.ratelimit.gcra import LimitResult

__all__ = ["Advertised", "refusal_fields", "reply_fields", "retry_after_seconds"]

Headers = list[tuple[bytes, bytes]]


class Advertised(Protocol):
    @property
    def policy_item(self) -> bytes: ...

    @property
    def name_item(self) -> bytes: ...

    @property
    def quota(self) -> int: ...


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def retry_after_seconds(results: Sequence[LimitResult]) -> int:
    return max(1, max((_seconds(r.retry_after) for r in results), default=1))


def reply_fields(style: str, entries: Sequence[tuple[Advertised, LimitResult]]) -> Headers:
    """The fields for an answer to a request that was within its limits."""
    if not entries or style == "off":
        return []
    out: Headers = []
    if style in ("ietf", "both"):
        out.append((b"ratelimit-policy", b", ".join(limit.policy_item for limit, _ in entries)))
        items = [
            limit.name_item + b";r=%d;t=%d" % (result.remaining, _seconds(result.reset_after))
            for limit, result in entries
        ]
        out.append((b"ratelimit", b", ".join(items)))
    if style in ("legacy", "both"):
        limit, result = min(entries, key=lambda e: e[1].remaining)
        out += [
            (b"ratelimit-limit", b"%d" % limit.quota),
            (b"ratelimit-remaining", b"%d" % result.remaining),
            (b"ratelimit-reset", b"%d" % _seconds(result.reset_after)),
        ]
    return out


def refusal_fields(style: str, violated: Sequence[tuple[Advertised, LimitResult]], retry: int) -> Headers:
    """The fields of a 429: ``Retry-After``, and the violated limits that are advertised."""
    out: Headers = [(b"retry-after", b"%d" % retry)]
    if not violated or style == "off":
        return out
    if style in ("ietf", "both"):
        out.append((b"ratelimit-policy", b", ".join(limit.policy_item for limit, _ in violated)))
        items = [
            limit.name_item + b";r=0;t=%d" % max(1, _seconds(result.retry_after))
            for limit, result in violated
        ]
        out.append((b"ratelimit", b", ".join(items)))
    if style in ("legacy", "both"):
        limit, _ = violated[0]
        out += [
            (b"ratelimit-limit", b"%d" % limit.quota),
            (b"ratelimit-remaining", b"0"),
            (b"ratelimit-reset", b"%d" % retry),
        ]
    return out
